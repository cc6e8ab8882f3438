"""NNCF post-training int8 quantization of OpenVINO IRs: what Optimum-Intel and
sentence-transformers' efficiency guide recommend for transformer encoders on x86 CPUs.

``nncf.quantize`` calibrates activation ranges on the workload's calibration split and inserts
FakeQuantize nodes on the inputs of MatMul/Convolution with int8 weights; OpenVINO's CPU
plugin turns those into int8 kernels (VNNI where the CPU has it). For a transformer it also
applies SmoothQuant (moves activation outliers into the weights) and keeps the attention's
softmax path as NNCF's transformer preset says.

Exclusions are PyTorch module names, as for the other int8 methods (``exclude``,
``exclude_most_sensitive``); they are mapped to the IR's node names through the module path
OpenVINO's converter writes into each name.

``quantization.nncf_accuracy_control`` is the same quantization under a metric bound
(``nncf.quantize_with_accuracy_control``): the peers' way of meeting a floor. NNCF validates
the quantized model on a slice of the train split (never the evaluation split a trial is
scored on) with the workload's own metric against the float model's outputs, and returns the
layers that cost it most to float, one group at a time, until the drop is within ``max_drop``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from autoopt.artifacts import OpenVinoArtifact, TorchArtifact
from autoopt.errors import CandidateError, failing_the_candidate
from autoopt.plugins import Context, Technique, register
from autoopt.techniques._names import matches
from autoopt.techniques._openvino import (
    as_openvino,
    is_transformer,
    layer_path,
    read_model,
    scratch_ir,
    weighted_layers,
)
from autoopt.techniques.quantization import DynamicInt8Config, sensitivity_ranking
from autoopt.techniques.quantization._config import ExclusionsConfig, with_roles
from autoopt.techniques.quantization._layers import unknown_layers_error

if TYPE_CHECKING:
    import openvino as ov

    from autoopt.artifacts import Artifact, ArtifactKind
    from autoopt.workloads import Split

logger = logging.getLogger(__name__)


class NncfInt8Config(ExclusionsConfig):
    #: NNCF's preset: ``performance`` quantizes activations symmetrically, ``mixed``
    #: asymmetrically (better for activations that are not centred, like GELU's); ``auto`` is
    #: NNCF's default (mixed for transformers, performance otherwise).
    preset: Literal["auto", "performance", "mixed"] = "auto"
    #: ``transformer`` turns on NNCF's transformer handling (SmoothQuant, attention kept as
    #: NNCF's transformer rules say); ``auto`` turns it on where the graph holds attention.
    model_type: Literal["auto", "transformer", "default"] = "auto"
    #: Calibration samples NNCF collects statistics on (NNCF's default 300; at most the
    #: calibration split).
    subset_size: int = Field(default=300, ge=1, le=100_000)
    #: SmoothQuant's migration strength for MatMul on transformers (NNCF's default 0.95); a
    #: negative value turns SmoothQuant off.
    smooth_quant_alpha: float = Field(default=0.95, ge=-1.0, le=1.0)
    #: NNCF's fast bias correction (its default) or the slower full bias correction.
    fast_bias_correction: bool = True
    #: Also keep in float the k Linears whose quantization alone moves the outputs most on the
    #: calibration split (:func:`~autoopt.techniques.quantization.sensitivity_ranking`, int8
    #: per-channel weights on the PyTorch model); needs the PyTorch model.
    exclude_most_sensitive: int = Field(default=0, ge=0, le=10_000)
    sensitivity_samples: int = Field(default=64, ge=1, le=100_000)


class _Forward(logging.Handler):
    """Re-emits NNCF's records on this module's logger (its INFO chatter at DEBUG)."""

    def emit(self, record: logging.LogRecord) -> None:
        level = logging.DEBUG if record.levelno <= logging.INFO else record.levelno
        logger.log(level, "nncf: %s", record.getMessage())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """NNCF draws progress bars on stdout and logs there through its own handler, and stdout
    carries results in the CLI (``autoopt export`` builds in-process): for the call only, the
    bars are captured and its records go to autoopt's log instead."""
    from nncf.common.logging import nncf_logger

    buffer = io.StringIO()
    handlers = nncf_logger.handlers[:]
    nncf_logger.handlers = [_Forward()]
    try:
        with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        nncf_logger.handlers = handlers
    if buffer.getvalue().strip():
        logger.debug("nncf: %s", buffer.getvalue().strip())


def calibration_items(ctx: Context, samples: int) -> list[dict[str, np.ndarray]]:
    """One feed per calibration sample (batch 1), cut by the workload's ``trim_batch`` where it
    has one: the padding a sample carries is masked out of every real output, so its
    activations would only widen the calibrated ranges (and cost time)."""
    return feeds(ctx, ctx.workload.calibration.take(min(samples, len(ctx.workload.calibration))))


def feeds(ctx: Context, split: Split) -> list[dict[str, np.ndarray]]:
    """One named feed per sample of ``split`` (batch 1), trimmed as the workload says."""
    import torch

    items = []
    for inputs, _ in split.batches(1):
        if ctx.workload.trim_batch is not None:
            tensors = tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in inputs)
            inputs = tuple(t.numpy() for t in ctx.workload.trim_batch(tensors))
        items.append(dict(zip(ctx.workload.input_names, inputs, strict=True)))
    return items


def ignored_nodes(model: ov.Model, exclude: list[str], stage: str) -> list[str]:
    """The weighted nodes of the excluded layers; raises naming the layers if an exclusion
    matches no node of the graph."""
    paths = {layer_path(op.get_friendly_name()) for op in model.get_ops()} - {""}
    unknown = [e for e in exclude if not any(matches(p, e) for p in paths)]
    layers = weighted_layers(model)
    if unknown:
        raise unknown_layers_error(stage, unknown, layers)
    return sorted(
        name
        for path, names in layers.items()
        if any(matches(path, e) for e in exclude)
        for name in names
    )


def fake_quantize_count(model: ov.Model) -> int:
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


@register
class NncfInt8Quantization(Technique[NncfInt8Config]):
    """Static int8 by NNCF on an OpenVINO IR, served by ``backend.openvino``."""

    key = "quantization.nncf_int8"
    family = "quantization"
    Config = NncfInt8Config
    #: The PyTorch model only when layers are ranked on it (``exclude_most_sensitive``).
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("openvino", "torch")
    kernel_fields = ("preset",)

    def check(self, config: NncfInt8Config, ctx: Context) -> str | None:
        if ctx.backend_kind != "openvino":
            return (
                f"NNCF quantizes OpenVINO IRs, and {ctx.recipe.backend.key} serves "
                f"{ctx.backend_kind} models: use backend openvino, or quantization.dynamic_int8 "
                "or static_int8 on the other backends"
            )
        from autoopt.techniques._roles import exclusion_refusal

        return exclusion_refusal(config.exclude, ctx)

    def needs_torch(self, config: NncfInt8Config) -> bool:
        return config.exclude_most_sensitive > 0

    def apply(self, artifact: Artifact, config: NncfInt8Config, ctx: Context) -> Artifact:
        # Roles (ffn_out, attn_out, ...) become the model layout's module patterns.
        config = with_roles(config, ctx, self.key)
        if config.exclude_most_sensitive:
            if not isinstance(artifact, TorchArtifact):
                raise CandidateError(
                    f"{self.key}.exclude_most_sensitive ranks layers on the PyTorch model, and "
                    f"this stage received a {artifact.kind} model; list the layers in exclude",
                    stage=self.key,
                )
            ranking = sensitivity_ranking(
                artifact.model,
                DynamicInt8Config(
                    exclude=config.exclude,
                    per_channel=True,
                    sensitivity_samples=config.sensitivity_samples,
                ),
                ctx,
            )
            top = [name for name, _ in ranking[: config.exclude_most_sensitive]]
            logger.info("nncf_int8: keeping the most sensitive layers in float: %s", top)
            config = config.model_copy(update={"exclude": sorted({*config.exclude, *top})})
        source = as_openvino(artifact, ctx, "nncf_int8")
        quantized = self._quantize(read_model(source), config, ctx)
        if not fake_quantize_count(quantized):
            raise CandidateError(
                f"{self.key}: NNCF quantized nothing (no MatMul or Convolution left after the "
                f"exclusions {config.exclude})",
                stage=self.key,
            )
        from autoopt.openvino_export import save

        out = save(quantized, scratch_ir(ctx, "nncf_int8"))
        return OpenVinoArtifact(out, source.inference_precision)

    def _quantize(self, model: ov.Model, config: NncfInt8Config, ctx: Context) -> ov.Model:
        import nncf

        items, kwargs, advanced = self._arguments(model, config, ctx)
        with failing_the_candidate("NNCF quantization failed", self.key), _quiet():
            return nncf.quantize(
                model, nncf.Dataset(items), advanced_parameters=advanced, **kwargs
            )

    def _arguments(
        self, model: ov.Model, config: NncfInt8Config, ctx: Context
    ) -> tuple[list[dict[str, np.ndarray]], dict[str, Any], Any]:
        """The calibration feeds, the keyword arguments both of NNCF's quantize functions take
        for ``config``, and the advanced quantization parameters (None: NNCF's), which they
        take under different names."""
        import nncf
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            AdvancedSmoothQuantParameters,
        )

        ignored = ignored_nodes(model, config.exclude, self.key)
        transformer = config.model_type == "transformer" or (
            config.model_type == "auto" and is_transformer(model)
        )
        items = calibration_items(ctx, config.subset_size)
        kwargs: dict[str, Any] = {
            "subset_size": len(items),
            "fast_bias_correction": config.fast_bias_correction,
            "ignored_scope": nncf.IgnoredScope(names=ignored),
        }
        if config.preset != "auto":
            kwargs["preset"] = nncf.QuantizationPreset(config.preset)
        advanced = None
        if transformer:
            kwargs["model_type"] = nncf.ModelType.TRANSFORMER
            advanced = AdvancedQuantizationParameters(
                smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=config.smooth_quant_alpha)
            )
        logger.info(
            "%s: model_type %s, %d nodes kept in float",
            self.key,
            "transformer" if transformer else "default",
            len(ignored),
        )
        return items, kwargs, advanced


class NncfAccuracyControlConfig(NncfInt8Config):
    #: The largest drop of the workload's metric (on the validation slice, against the float
    #: model) NNCF may leave; absolute, or relative to the float model's value.
    max_drop: float = Field(default=0.01, gt=0.0, le=1.0)
    drop_type: Literal["absolute", "relative"] = "absolute"
    #: Samples of the train split NNCF validates on (disjoint from the evaluation split).
    validation_size: int = Field(default=128, ge=2, le=100_000)
    #: Rounds of returning layers to float before NNCF gives up (each validates once).
    max_num_iterations: int = Field(default=20, ge=1, le=10_000)


@register
class NncfAccuracyControl(NncfInt8Quantization):
    """NNCF int8 on an OpenVINO IR with layers returned to float until the workload's metric
    drops at most ``max_drop`` on a validation slice of the train split."""

    key = "quantization.nncf_accuracy_control"
    Config = NncfAccuracyControlConfig  # type: ignore[assignment]
    #: The self-test checks the int8 kernels on its probe: one round on a few samples.
    selftest_config: ClassVar[dict[str, Any]] = {"validation_size": 8, "max_num_iterations": 1}

    def _quantize(self, model: ov.Model, config: NncfInt8Config, ctx: Context) -> ov.Model:
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

        assert isinstance(config, NncfAccuracyControlConfig)
        items, kwargs, advanced = self._arguments(model, config, ctx)
        split = ctx.workload.train.take(min(config.validation_size, len(ctx.workload.train)))
        validation = feeds(ctx, split)
        reference = run_feeds(_compile(model), validation)
        metric, name = ctx.workload.metric, ctx.workload.metric_name

        def validate(compiled: Any, data: Any) -> float:
            return float(metric(run_feeds(compiled, list(data)), split, reference)[name])

        with failing_the_candidate("NNCF quantization failed", self.key), _quiet():
            quantized = nncf.quantize_with_accuracy_control(
                model,
                nncf.Dataset(items),
                nncf.Dataset(validation),
                validate,
                max_drop=config.max_drop,
                drop_type=nncf.DropType(config.drop_type),
                advanced_quantization_parameters=advanced,
                advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    max_num_iterations=config.max_num_iterations
                ),
                **kwargs,
            )
        logger.info(
            "%s: %d FakeQuantize nodes left within a %s drop of %s",
            self.key,
            fake_quantize_count(quantized),
            config.drop_type,
            config.max_drop,
        )
        return quantized


def _compile(model: ov.Model) -> ov.CompiledModel:
    """The float model at f32 (a plugin whose default is bf16 would move the reference) on the
    build's threads."""
    import openvino as ov
    import torch

    from autoopt.backends.openvino import plugin_properties

    return ov.Core().compile_model(model, "CPU", plugin_properties(torch.get_num_threads(), "f32"))


def run_feeds(compiled: Any, items: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The first output of ``compiled`` for each feed, stacked along the batch axis."""
    return np.concatenate([np.asarray(compiled(item)[0], dtype=np.float32) for item in items])
