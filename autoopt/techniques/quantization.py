"""Quantization to int8: dynamic (PyTorch or ONNX Runtime) and static, calibrated (ONNX
Runtime QDQ, or PyTorch 2 export quantization compiled by Inductor: :mod:`.pt2e`).

Layer exclusions are given as PyTorch module names (``fc2``, ``encoder.layer.0.output.dense``)
whatever the artifact kind. On ONNX graphs they are matched to the nodes the TorchScript
exporter names after the module path (``/fc2/Gemm``, ``/encoder/layer.0/output/dense/MatMul``);
a name that matches nothing fails the candidate rather than being silently ignored.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from autoopt.artifacts import OnnxArtifact, TorchArtifact
from autoopt.errors import CandidateError
from autoopt.registry import register
from autoopt.techniques._base import Context, MethodConfig, Technique
from autoopt.techniques._onnx import as_onnx, scratch_path

if TYPE_CHECKING:
    import onnx
    import torch

    from autoopt.artifacts import Artifact, ArtifactKind

logger = logging.getLogger(__name__)

#: Op types ONNX Runtime can quantize that matter for the models we target. Gemm and MatMul are
#: one kind for dynamic quantization (ONNX Runtime rewrites Gemm as MatMul + Add first).
OpType = Literal["MatMul", "Gemm", "Conv", "Gather", "Attention"]
DEFAULT_OP_TYPES: list[OpType] = ["Conv", "Gemm", "MatMul"]
#: Ops whose presence shows that a graph really computes in integers.
INTEGER_OPS = frozenset(
    {
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "ConvInteger",
        "QLinearConv",
        "QLinearMatMul",
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeMatMul",
        "QAttention",
        "QGemm",
    }
)


class ExclusionsConfig(MethodConfig):
    """Layers an int8 method keeps in float, by PyTorch module name, whatever the artifact."""

    #: PyTorch module names kept in float (a name also covers its submodules). A ``*`` stands
    #: for one name component, so a layer *type* can be excluded in every block:
    #: ``bert.encoder.layer.*.output.dense`` (the FFN output projections, not the attention's).
    exclude: list[str] = Field(default_factory=list)

    # Sorted and deduplicated, so that equal candidates hash equally in the stage cache.
    @field_validator("exclude")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not name or name != name.strip() or name.startswith(".") or name.endswith("."):
                raise ValueError(f"'{name}' is not a module name like 'fc2' or 'encoder.layer.0'")
        return sorted(set(v))


class _QuantizationConfig(ExclusionsConfig):
    #: Which ONNX op types to quantize (on PyTorch, MatMul/Gemm mean ``nn.Linear``).
    op_types: list[OpType] = Field(default_factory=lambda: list(DEFAULT_OP_TYPES), min_length=1)
    per_channel: bool = False

    @field_validator("op_types")
    @classmethod
    def _canonical(cls, v: list[str]) -> list[str]:
        return sorted(set(v))


class DynamicInt8Config(_QuantizationConfig):
    #: Weight type (ONNX only: PyTorch's dynamic Linear stores signed int8 weights).
    weight_type: Literal["QInt8", "QUInt8"] = "QInt8"
    #: Also keep in float the k layers whose quantization alone moves the outputs most, measured
    #: on the calibration split (:func:`sensitivity_ranking`); needs the PyTorch model.
    exclude_most_sensitive: int = Field(default=0, ge=0, le=10_000)
    #: Calibration samples the sensitivity ranking runs on.
    sensitivity_samples: int = Field(default=64, ge=1, le=100_000)


class StaticInt8Config(_QuantizationConfig):
    calibration_samples: int = Field(default=128, ge=1, le=100_000)
    #: ONNX Runtime: minmax, entropy, percentile. PyTorch (PT2E): minmax, histogram.
    calibration_method: Literal["minmax", "entropy", "percentile", "histogram"] = "minmax"


def _openvino_refusal(ctx: Context) -> str | None:
    if ctx.backend_kind == "openvino":
        return (
            "this method builds ONNX Runtime or PyTorch int8 graphs, and backend openvino "
            "quantizes with NNCF: use quantization.nncf_int8 on backend openvino"
        )
    return None


def _precision_conflict(ctx: Context) -> str | None:
    precision = ctx.recipe.precision.method
    if precision in ("fp16", "bf16", "fp8"):
        return (
            f"int8 quantization cannot be combined with precision {precision}: the quantized "
            "model keeps float32 scales and float32 layers between the int8 ones; use precision "
            f"fp32 with quantization, or {precision} without quantization"
        )
    return None


def _pattern(name: str) -> re.Pattern[str]:
    parts = [("[^.]+" if part == "*" else re.escape(part)) for part in name.split(".")]
    return re.compile(r"\.".join(parts) + r"(\..+)?")


def matches(path: str, name: str) -> bool:
    """Whether module ``path`` is ``name`` or inside it (``*`` = one name component)."""
    return _pattern(name).fullmatch(path) is not None


def _covered(name: str, excluded: Iterable[str]) -> bool:
    return any(matches(name, e) for e in excluded)


def _unknown_layers_error(
    stage: str, unknown: list[str], available: Iterable[str]
) -> CandidateError:
    shown = sorted(set(available))
    listing = ", ".join(shown[:40]) + (f", ... ({len(shown)} in all)" if len(shown) > 40 else "")
    return CandidateError(
        f"{stage}.exclude: no layer named {', '.join(repr(u) for u in unknown)} in the model; "
        f"quantizable layers: {listing or '(none)'}",
        stage=stage,
    )


def _require_known_modules(
    model: torch.nn.Module, exclude: list[str], stage: str, quantizable: list[str]
) -> None:
    """Raises if an exclusion names no module of ``model`` (a typo must not pass silently)."""
    modules = {name for name, _ in model.named_modules() if name}
    unknown = [e for e in exclude if not any(_covered(n, [e]) for n in modules)]
    if unknown:
        raise _unknown_layers_error(stage, unknown, quantizable)


# ---------------------------------------------------------------------------------------------
# ONNX helpers


def onnx_layer_path(node_name: str) -> str:
    """The PyTorch module path of the layer that a TorchScript-exported node belongs to.

    The exporter scopes nodes by module (``/encoder/layer.0/attention/self/query/MatMul``);
    container children may appear with the container's prefix repeated
    (``/layers.0/layers.0.0/Gemm`` for ``layers.0.0``). Returns ``""`` for root-level nodes.
    """
    parts = [p for p in node_name.split("/")[:-1] if p]
    path: list[str] = []
    for part in parts:
        if path and part.startswith(path[-1] + "."):
            # ``layers.0`` then ``layers.0.0``: the second name repeats the first's prefix.
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path)


def _layer_nodes(graph: onnx.GraphProto, exclude: list[str], stage: str) -> list[onnx.NodeProto]:
    """The nodes belonging to the excluded layers; raises if a name matches no node."""
    found: set[str] = set()
    nodes = []
    for node in graph.node:
        path = onnx_layer_path(node.name)
        hits = [e for e in exclude if matches(path, e)]
        if hits:
            nodes.append(node)
            found.update(hits)
    unknown = [e for e in exclude if e not in found]
    if unknown:
        available = {
            onnx_layer_path(n.name)
            for n in graph.node
            if n.op_type in ("Conv", "Gemm", "MatMul", "Gather", "Attention")
        }
        raise _unknown_layers_error(stage, unknown, available - {""})
    return nodes


def _nodes_to_exclude(
    graph: onnx.GraphProto, config: _QuantizationConfig, stage: str, dynamic: bool
) -> tuple[list[str], list[str]]:
    """(node names to exclude, op types to quantize), as ONNX Runtime wants them."""
    op_types = set(config.op_types)
    excluded = {n.name for n in _layer_nodes(graph, config.exclude, stage)}
    if dynamic:
        # Dynamic quantization rewrites every Gemm as MatMul (+ Add), naming the MatMul
        # "<gemm name>_MatMul", and has no Gemm kernel: quantize "MatMul" and keep the op type
        # that was not chosen in float by node name.
        if "Gemm" in op_types and "MatMul" not in op_types:
            excluded |= {n.name for n in graph.node if n.op_type == "MatMul"}
        elif "MatMul" in op_types and "Gemm" not in op_types:
            excluded |= {n.name for n in graph.node if n.op_type == "Gemm"}
        gemms = {n.name for n in graph.node if n.op_type == "Gemm"}
        excluded |= {f"{name}_MatMul" for name in excluded & gemms}
        if "Gemm" in op_types:
            op_types = (op_types - {"Gemm"}) | {"MatMul"}
    return sorted(excluded), sorted(op_types)


def _graph_inputs(model: onnx.ModelProto) -> list[tuple[str, np.dtype]]:
    from onnx import helper

    initializers = {i.name for i in model.graph.initializer}
    return [
        (i.name, np.dtype(helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)))
        for i in model.graph.input
        if i.name not in initializers
    ]


def count_integer_ops(path: Path) -> int:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return sum(n.op_type in INTEGER_OPS for n in graph.node)


def _require_integer_ops(path: Path, stage: str) -> None:
    if count_integer_ops(path) == 0:
        raise CandidateError(
            f"{stage}: nothing was quantized (no layer of the chosen op types is left after "
            "the exclusions); widen op_types or exclude fewer layers",
            stage=stage,
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantizer prints progress to stdout, which carries results in the CLI."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    if buffer.getvalue().strip():
        logger.debug("onnxruntime.quantization: %s", buffer.getvalue().strip())


# ---------------------------------------------------------------------------------------------
# Dynamic int8


@register
class DynamicInt8Quantization(Technique):
    """Weights to int8 ahead of time, activations quantized on the fly per batch.

    PyTorch: ``quantize_dynamic`` replaces ``nn.Linear`` with a dynamic quantized Linear (Conv
    has no dynamic kernel in PyTorch). ONNX: ``onnxruntime.quantization.quantize_dynamic``
    (MatMulInteger / ConvInteger).
    """

    key = "quantization.dynamic_int8"
    family = "quantization"
    Config = DynamicInt8Config
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch", "onnx")

    def check(self, config: MethodConfig, ctx: Context) -> str | None:
        assert isinstance(config, DynamicInt8Config)  # noqa: S101 - registry's contract
        if reason := _openvino_refusal(ctx) or _precision_conflict(ctx):
            return reason
        if ctx.device != "cpu":
            return (
                "dynamic int8 runs on the CPU (PyTorch's quantized Linear and ONNX Runtime's "
                f"CPU kernels), and this target's device is {ctx.device}; use precision fp8, "
                "fp16 or bf16 on a cuda target"
            )
        if ctx.backend_kind == "torch":
            if config.weight_type != "QInt8":
                return (
                    "PyTorch dynamic quantization stores weights as signed int8 only; use "
                    "weight_type QInt8, or backend onnxruntime for QUInt8 weights"
                )
            if not {"MatMul", "Gemm"} & set(config.op_types):
                return (
                    f"PyTorch dynamic quantization only quantizes nn.Linear (MatMul/Gemm), and "
                    f"op_types is {config.op_types}; add MatMul or Gemm, or use backend "
                    "onnxruntime to quantize Conv"
                )
        return None

    def needs_torch(self, config: MethodConfig) -> bool:
        return isinstance(config, DynamicInt8Config) and config.exclude_most_sensitive > 0

    def apply(self, artifact: Artifact, config: MethodConfig, ctx: Context) -> Artifact:
        assert isinstance(config, DynamicInt8Config)  # noqa: S101 - registry's contract
        if config.exclude_most_sensitive:
            if not isinstance(artifact, TorchArtifact):
                raise CandidateError(
                    f"{self.key}.exclude_most_sensitive ranks layers on the PyTorch model, and "
                    f"this stage received a {artifact.kind} model; put quantization before "
                    "any stage that converts the model, or list the layers in exclude",
                    stage=self.key,
                )
            config = with_sensitive_exclusions(artifact.model, config, ctx)
        if isinstance(artifact, TorchArtifact) and ctx.backend_kind == "torch":
            return TorchArtifact(_torch_dynamic(artifact.model, config, self.key))
        return _onnx_dynamic(as_onnx(artifact, ctx, "dynamic_int8"), config, ctx, self.key)


def sensitivity_ranking(
    model: torch.nn.Module, config: DynamicInt8Config, ctx: Context
) -> list[tuple[str, float]]:
    """Every quantizable ``nn.Linear`` with the error that quantizing it *alone* causes.

    The error is the outputs' relative squared distance to the float model's,
    ``‖q(x) − f(x)‖² / ‖f(x)‖²``, on the first ``sensitivity_samples`` calibration samples
    (never the evaluation split), with the candidate's own settings (per-channel or not).
    Sorted from the most sensitive layer down. Each Linear is swapped for its quantized copy
    in ``model`` itself and put back, so no copy of the whole model is made; batches are
    trimmed by the workload's ``trim_batch`` (a ranking, not a measurement).
    """
    from torch import nn

    from autoopt.workloads import predict_torch

    split = ctx.workload.calibration.take(config.sensitivity_samples)

    def outputs() -> np.ndarray:
        out = predict_torch(model, split, batch_size=32, trim=ctx.workload.trim_batch)
        return out.astype(np.float64)

    reference = outputs()
    norm = float(np.sum(reference**2)) or 1.0
    parents = dict(model.named_modules())
    errors = []
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear) or _covered(name, config.exclude):
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = parents[parent_name]
        setattr(parent, attr, _quantized_linear(module, config.per_channel))
        try:
            errors.append((name, float(np.sum((outputs() - reference) ** 2)) / norm))
        finally:
            setattr(parent, attr, module)
    return sorted(errors, key=lambda item: -item[1])


def _quantized_linear(module: torch.nn.Module, per_channel: bool) -> torch.nn.Module:
    """A dynamic int8 copy of one ``nn.Linear``, as ``quantize_dynamic`` would make it."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    float_copy = copy.deepcopy(module)
    float_copy.qconfig = _dynamic_qconfig(per_channel)
    with _torch_ao_quiet():
        return DynamicLinear.from_float(float_copy)


@contextlib.contextmanager
def _torch_ao_quiet() -> Iterator[None]:
    # torch.ao.quantization is deprecated in favour of torchao, which is not a dependency;
    # the eager dynamic path still works and is what we measure.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantiz.*", category=UserWarning)
        yield


def _dynamic_qconfig(per_channel: bool) -> object:
    with _torch_ao_quiet():
        from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    return per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig


def with_sensitive_exclusions(
    model: torch.nn.Module, config: DynamicInt8Config, ctx: Context
) -> DynamicInt8Config:
    """``config`` with its ``exclude_most_sensitive`` layers added to ``exclude``."""
    ranking = sensitivity_ranking(model, config, ctx)
    top = [name for name, _ in ranking[: config.exclude_most_sensitive]]
    logger.info(
        "dynamic_int8: keeping the %d most sensitive layers in float: %s",
        len(top), ", ".join(f"{n} ({e:.2e})" for n, e in ranking[: len(top)]),
    )  # fmt: skip
    return config.model_copy(update={"exclude": sorted({*config.exclude, *top})})


def _torch_dynamic(
    model: torch.nn.Module,
    config: DynamicInt8Config,
    stage: str,
) -> torch.nn.Module:
    """``model`` with its Linears (those not excluded) in dynamic int8."""
    import torch
    from torch import nn

    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    _require_known_modules(model, config.exclude, stage, linears)
    chosen = [n for n in linears if not _covered(n, config.exclude)]
    if not chosen:
        raise CandidateError(
            f"{stage}: the model has no nn.Linear left to quantize after the exclusions "
            f"{config.exclude}; PyTorch dynamic quantization only covers nn.Linear",
            stage=stage,
        )
    with _torch_ao_quiet():
        from torch.ao.quantization import quantize_dynamic

        qconfig = _dynamic_qconfig(config.per_channel)
        # Naming each chosen Linear (rather than the nn.Linear type) is how exclusions stay float.
        quantized = quantize_dynamic(
            copy.deepcopy(model).eval(),
            {name: qconfig for name in chosen},
            dtype=torch.qint8,
        )
    return quantized.eval()


def _onnx_dynamic(
    artifact: OnnxArtifact, config: DynamicInt8Config, ctx: Context, stage: str
) -> OnnxArtifact:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(artifact.path))
    exclude, op_types = _nodes_to_exclude(model.graph, config, stage, dynamic=True)
    out = scratch_path(ctx, "dynamic_int8")
    try:
        with _quiet():
            quantize_dynamic(
                str(artifact.path),
                str(out),
                weight_type=getattr(QuantType, config.weight_type),
                per_channel=config.per_channel,
                op_types_to_quantize=op_types,
                nodes_to_exclude=exclude,
            )
    except Exception as e:  # noqa: BLE001 - any quantizer failure fails this candidate only
        raise CandidateError(
            f"onnxruntime dynamic quantization failed: {type(e).__name__}: {e}", stage=stage
        ) from e
    _require_integer_ops(out, stage)
    return OnnxArtifact(out)


# ---------------------------------------------------------------------------------------------
# Static int8 (QDQ)


class _CalibrationReader:
    """Feeds the calibration split to ONNX Runtime's calibrator, batch by batch.

    ONNX Runtime's ``CalibrationDataReader`` accepts any object with ``get_next`` (duck-typed
    ``__subclasshook__``), so this module does not import onnxruntime at import time.
    """

    def __init__(self, model: onnx.ModelProto, ctx: Context, samples: int, batch: int) -> None:
        split = ctx.workload.calibration
        split = split.take(min(samples, len(split)))
        inputs = _graph_inputs(model)
        if len(inputs) != len(split.inputs):
            raise CandidateError(
                f"the ONNX graph has {len(inputs)} inputs but the calibration split has "
                f"{len(split.inputs)}",
                stage="quantization.static_int8",
            )
        self._feeds = [
            {
                name: np.ascontiguousarray(x, dtype=dtype)
                for (name, dtype), x in zip(inputs, xs, strict=True)
            }
            for xs, _ in split.batches(batch)
        ]
        self._iter = iter(self._feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter(self._feeds)


@register
class StaticInt8Quantization(Technique):
    """Weights and activations to int8 with ranges calibrated on the calibration split.

    ONNX Runtime: QDQ format; activations are unsigned (QUInt8) because signed activations run
    several times slower on x86 CPUs without VNNI-friendly kernels, weights are signed (QInt8).
    PyTorch: PT2E quantization for Inductor (:mod:`autoopt.techniques.pt2e`), served by
    ``torch_compile`` with ``freezing``, which lowers it to oneDNN's int8 Linear and Conv.
    """

    key = "quantization.static_int8"
    family = "quantization"
    Config = StaticInt8Config
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch", "onnx")
    #: Calibration batch: small enough for big models, large enough to be quick.
    CALIBRATION_BATCH = 32
    #: Calibration methods per path (PT2E's are observers of the activations).
    ONNX_CALIBRATION = ("minmax", "entropy", "percentile")
    PT2E_CALIBRATION = ("minmax", "histogram")

    def check(self, config: MethodConfig, ctx: Context) -> str | None:
        assert isinstance(config, StaticInt8Config)  # noqa: S101 - registry's contract
        if reason := _openvino_refusal(ctx) or _precision_conflict(ctx):
            return reason
        if ctx.device != "cpu":
            return (
                f"static int8 runs on the CPU (ONNX Runtime's and oneDNN's int8 kernels), and "
                f"this target's device is {ctx.device}; use precision fp8, fp16 or bf16 on a "
                "cuda target"
            )
        backend = ctx.recipe.backend
        if ctx.backend_kind == "onnx":
            if config.calibration_method not in self.ONNX_CALIBRATION:
                return (
                    f"calibration_method {config.calibration_method} is PyTorch's (PT2E); "
                    f"ONNX Runtime calibrates with {', '.join(self.ONNX_CALIBRATION)}"
                )
            return None
        if backend.method != "torch_compile" or not backend.params.get("freezing"):
            return (
                "static int8 on PyTorch is a PT2E graph that only Inductor turns into int8 "
                "kernels (eager runs it in float): use backend torch_compile with "
                "backend.torch_compile.freezing: true, or backend onnxruntime"
            )
        if not config.per_channel:
            return (
                "PT2E quantization for Inductor scales weights per output channel only: set "
                "per_channel: true, or use backend onnxruntime for per-tensor weights"
            )
        if config.calibration_method not in self.PT2E_CALIBRATION:
            return (
                f"calibration_method {config.calibration_method} is ONNX Runtime's; PyTorch "
                f"(PT2E) calibrates with {', '.join(self.PT2E_CALIBRATION)}"
            )
        if not {"MatMul", "Gemm", "Conv"} & set(config.op_types):
            return (
                f"PT2E quantization covers nn.Linear (MatMul/Gemm) and nn.Conv2d (Conv), and "
                f"op_types is {config.op_types}"
            )
        return None

    def apply(self, artifact: Artifact, config: MethodConfig, ctx: Context) -> Artifact:
        assert isinstance(config, StaticInt8Config)  # noqa: S101 - registry's contract
        if isinstance(artifact, TorchArtifact) and ctx.backend_kind == "torch":
            return TorchArtifact(self._pt2e(artifact.model, config, ctx))
        return self._onnx(artifact, config, ctx)

    def _pt2e(
        self, model: torch.nn.Module, config: StaticInt8Config, ctx: Context
    ) -> torch.nn.Module:
        from torch import nn

        from autoopt.techniques import pt2e

        kinds: list[type[nn.Module]] = []
        if {"MatMul", "Gemm"} & set(config.op_types):
            kinds.append(nn.Linear)
        if "Conv" in config.op_types:
            kinds.append(nn.Conv2d)
        layers = [n for n, m in model.named_modules() if isinstance(m, tuple(kinds))]
        _require_known_modules(model, config.exclude, self.key, layers)
        # Layers of a kind not chosen stay float like the excluded ones.
        excluded = [
            n
            for n, m in model.named_modules()
            if isinstance(m, nn.Linear | nn.Conv2d)
            and (n not in layers or _covered(n, config.exclude))
        ]
        quantized = pt2e.quantize_static(model, config, excluded, ctx, self.key)
        if not pt2e.quantized_op_count(quantized):
            raise CandidateError(
                f"{self.key}: PT2E quantized no layer of this model (exclusions "
                f"{config.exclude}, op_types {config.op_types})",
                stage=self.key,
            )
        return quantized

    def _onnx(self, artifact: Artifact, config: StaticInt8Config, ctx: Context) -> Artifact:
        import onnx
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        source = as_onnx(artifact, ctx, "static_int8")
        prepared = scratch_path(ctx, "static_int8-pre")
        out = scratch_path(ctx, "static_int8")
        try:
            _preprocess(source.path, prepared)
            model = onnx.load(str(prepared))
            exclude, op_types = _nodes_to_exclude(model.graph, config, self.key, dynamic=False)
            reader = _CalibrationReader(
                model, ctx, config.calibration_samples, self.CALIBRATION_BATCH
            )
            method = {
                "minmax": CalibrationMethod.MinMax,
                "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile,
            }[config.calibration_method]
            with _quiet():
                quantize_static(
                    str(prepared),
                    str(out),
                    reader,
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=config.per_channel,
                    calibrate_method=method,
                    op_types_to_quantize=op_types,
                    nodes_to_exclude=exclude,
                )
        except CandidateError:
            raise
        except Exception as e:  # noqa: BLE001 - any quantizer failure fails this candidate only
            raise CandidateError(
                f"onnxruntime static quantization failed: {type(e).__name__}: {e}",
                stage=self.key,
            ) from e
        finally:
            prepared.unlink(missing_ok=True)
        _require_integer_ops(out, self.key)
        return OnnxArtifact(out)


def _preprocess(source: Path, target: Path) -> None:
    """ONNX Runtime's recommended pre-processing (shape inference, basic graph optimization).

    Symbolic shape inference handles transformer graphs better but fails on some graphs; then
    ONNX's own shape inference is used alone.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with _quiet():
        try:
            quant_pre_process(str(source), str(target))
        except Exception as e:  # noqa: BLE001 - retry below with the simpler inference
            logger.debug("symbolic shape inference failed (%s); retrying without it", e)
            quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
