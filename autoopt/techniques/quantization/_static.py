"""Static int8: weights and activations to int8, ranges calibrated on the calibration split."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from autoopt.artifacts import OnnxArtifact, TorchArtifact
from autoopt.errors import CandidateError
from autoopt.plugins import Technique, register
from autoopt.techniques._onnx import as_onnx, scratch_path
from autoopt.techniques.quantization._config import StaticInt8Config, int8_refusal, with_roles
from autoopt.techniques.quantization._graph import (
    graph_inputs,
    nodes_to_exclude,
    quiet,
    require_integer_ops,
)

if TYPE_CHECKING:
    import onnx

    from autoopt.artifacts import Artifact, ArtifactKind
    from autoopt.plugins import Context

logger = logging.getLogger(__name__)


class _CalibrationReader:
    """Feeds the calibration split to ONNX Runtime's calibrator, batch by batch.

    ONNX Runtime's ``CalibrationDataReader`` accepts any object with ``get_next`` (duck-typed
    ``__subclasshook__``), so this module does not import onnxruntime at import time.
    """

    def __init__(self, model: onnx.ModelProto, ctx: Context, samples: int, batch: int) -> None:
        split = ctx.workload.calibration
        split = split.take(min(samples, len(split)))
        inputs = graph_inputs(model)
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
class StaticInt8Quantization(Technique[StaticInt8Config]):
    """Weights and activations to int8 with ranges calibrated on the calibration split.

    ONNX Runtime: QDQ format; activations are unsigned (QUInt8) because signed activations run
    several times slower on x86 CPUs without VNNI-friendly kernels, weights are signed (QInt8).
    PyTorch: PT2E quantization for Inductor (:mod:`._pt2e`), served by ``torch_compile`` with
    ``freezing``, which lowers it to oneDNN's int8 Linear and Conv.
    """

    key = "quantization.static_int8"
    family = "quantization"
    Config = StaticInt8Config
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch", "onnx")
    kernel_fields = ("per_channel", "op_types")
    #: Calibration batch: small enough for big models, large enough to be quick.
    CALIBRATION_BATCH = 32
    #: Calibration methods per path (PT2E's are observers of the activations).
    ONNX_CALIBRATION = ("minmax", "entropy", "percentile")
    PT2E_CALIBRATION = ("minmax", "histogram")

    def check(self, config: StaticInt8Config, ctx: Context) -> str | None:
        if reason := int8_refusal(config, ctx):
            return reason
        if ctx.device != "cpu":
            return (
                f"static int8 runs on the CPU (ONNX Runtime's and oneDNN's int8 kernels), and "
                f"this target's device is {ctx.device}; use precision fp8, fp16 or bf16 on a "
                "cuda target"
            )
        if ctx.backend_kind == "onnx":
            if config.smooth_quant_alpha is not None:
                return (
                    "smooth_quant_alpha smooths the PyTorch model before PT2E capture, and "
                    "ONNX Runtime's static int8 calibrates the ONNX graph: use backend "
                    "torch_compile (freezing), or quantization.nncf_int8 on openvino (NNCF's "
                    "own SmoothQuant)"
                )
            if config.calibration_method not in self.ONNX_CALIBRATION:
                return (
                    f"calibration_method {config.calibration_method} is PyTorch's (PT2E); "
                    f"ONNX Runtime calibrates with {', '.join(self.ONNX_CALIBRATION)}"
                )
            return None
        return self._check_pt2e(config, ctx)

    def _check_pt2e(self, config: StaticInt8Config, ctx: Context) -> str | None:
        backend = ctx.recipe.backend
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

    def apply(self, artifact: Artifact, config: StaticInt8Config, ctx: Context) -> Artifact:
        config = with_roles(config, ctx, self.key)
        if isinstance(artifact, TorchArtifact) and ctx.backend_kind == "torch":
            from autoopt.techniques.quantization._pt2e import pt2e_static

            return TorchArtifact(pt2e_static(artifact.model, config, ctx, self.key))
        return self._onnx(artifact, config, ctx)

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
            exclude, op_types = nodes_to_exclude(model.graph, config, self.key, dynamic=False)
            reader = _CalibrationReader(
                model, ctx, config.calibration_samples, self.CALIBRATION_BATCH
            )
            method = {
                "minmax": CalibrationMethod.MinMax,
                "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile,
            }[config.calibration_method]
            with quiet():
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
        require_integer_ops(out, self.key)
        return OnnxArtifact(out)


def _preprocess(source: Path, target: Path) -> None:
    """ONNX Runtime's recommended pre-processing (shape inference, basic graph optimization).

    Symbolic shape inference handles transformer graphs better but fails on some graphs; then
    ONNX's own shape inference is used alone.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Where symbolic inference fails, ONNX Runtime saves the half-inferred model (90 MB for
    # MiniLM) as sym_shape_infer_temp.onnx in the working directory: the user's checkout.
    # The scratch directory takes it instead (the build runs alone in its process).
    source, target = source.resolve(), target.resolve()
    with contextlib.chdir(target.parent):
        try:
            quant_pre_process(str(source), str(target))
        except Exception as e:  # noqa: BLE001 - retry below with the simpler inference
            logger.debug("symbolic shape inference failed (%s); retrying without it", e)
            quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
