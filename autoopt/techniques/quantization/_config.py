"""The int8 methods' configs, and what every int8 method refuses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import Field, field_validator

from autoopt.plugins import MethodConfig

if TYPE_CHECKING:
    from autoopt.plugins import Context

#: Op types ONNX Runtime can quantize that matter for the models we target. Gemm and MatMul are
#: one kind for dynamic quantization (ONNX Runtime rewrites Gemm as MatMul + Add first).
OpType = Literal["MatMul", "Gemm", "Conv", "Gather", "Attention"]
DEFAULT_OP_TYPES: list[OpType] = ["Conv", "Gemm", "MatMul"]


class ExclusionsConfig(MethodConfig):
    """Layers an int8 method keeps in float, by PyTorch module name, whatever the artifact."""

    #: PyTorch module names kept in float (a name also covers its submodules). A ``*`` stands
    #: for one name component, so a layer *type* can be excluded in every block:
    #: ``bert.encoder.layer.*.output.dense`` (the FFN output projections, not the attention's).
    #: Or a role, for a model with a layout (:mod:`autoopt.layouts`): ``ffn_out``, ``ffn_in``,
    #: ``attn_out``, ``attn_qkv``, ``attn_q``, ``attn_k``, ``attn_v``, in every block.
    exclude: list[str] = Field(default_factory=list)

    # Sorted and deduplicated, so that equal candidates hash equally in the stage cache.
    @field_validator("exclude")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not name or name != name.strip() or name.startswith(".") or name.endswith("."):
                raise ValueError(f"'{name}' is not a module name like 'fc2' or 'encoder.layer.0'")
        return sorted(set(v))


class QuantizationConfig(ExclusionsConfig):
    """What both ONNX Runtime / PyTorch int8 methods take."""

    #: Which ONNX op types to quantize (on PyTorch, MatMul/Gemm mean ``nn.Linear``).
    op_types: list[OpType] = Field(default_factory=lambda: list(DEFAULT_OP_TYPES), min_length=1)
    per_channel: bool = False

    @field_validator("op_types")
    @classmethod
    def _canonical(cls, v: list[str]) -> list[str]:
        return sorted(set(v))


ConfigT = TypeVar("ConfigT", bound=ExclusionsConfig)


class DynamicInt8Config(QuantizationConfig):
    #: Weight type (ONNX only: PyTorch's dynamic Linear stores signed int8 weights).
    weight_type: Literal["QInt8", "QUInt8"] = "QInt8"
    #: Also keep in float the k layers whose quantization alone moves the outputs most, measured
    #: on the calibration split (:func:`sensitivity_ranking`); needs the PyTorch model.
    exclude_most_sensitive: int = Field(default=0, ge=0, le=10_000)
    #: Calibration samples the sensitivity ranking runs on.
    sensitivity_samples: int = Field(default=64, ge=1, le=100_000)


class SmoothingConfig(QuantizationConfig):
    """What the PT2E int8 methods (static and QAT) add: SmoothQuant before capture."""

    #: SmoothQuant's migration strength (:mod:`._smooth`): each quantized Linear's input
    #: channels divided by ``max|x|^a / max|W|^(1-a)`` and its weight columns multiplied by
    #: it, ranges from the calibration split; null: off. PyTorch (PT2E) only.
    smooth_quant_alpha: float | None = Field(default=None, ge=0.0, le=1.0)


class StaticInt8Config(SmoothingConfig):
    calibration_samples: int = Field(default=128, ge=1, le=100_000)
    #: ONNX Runtime: minmax, entropy, percentile. PyTorch (PT2E): minmax, histogram.
    calibration_method: Literal["minmax", "entropy", "percentile", "histogram"] = "minmax"


class QatInt8Config(SmoothingConfig):
    #: Weights per output channel: the only scheme Inductor's int8 path takes.
    per_channel: bool = True
    #: Fine-tuning: Adam steps (cosine-decayed learning rate) on the train split.
    steps: int = Field(default=300, ge=1, le=1_000_000)
    lr: float = Field(default=1e-5, gt=0.0, le=1.0)
    batch_size: int = Field(default=32, ge=1, le=65_536)
    #: The distillation loss against the fp32 teacher, as ``distillation.kd`` takes it.
    temperature: float = Field(default=4.0, ge=1.0, le=20.0)
    alpha: float = Field(default=0.9, ge=0.0, le=1.0)
    #: After this fraction of the steps the observers stop (activation and weight ranges are
    #: then fixed and the weights adapt to them); 1: never.
    freeze_observers: float = Field(default=0.5, ge=0.0, le=1.0)
    #: After this fraction of the steps batch norm normalizes with its running statistics
    #: and stops updating them (models without batch norm ignore it); 1: never.
    freeze_batchnorm: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Calibration samples that set the initial ranges before training.
    calibration_samples: int = Field(default=128, ge=1, le=100_000)

    @property
    def training_steps(self) -> int:
        return self.steps


def int8_refusal(config: QuantizationConfig, ctx: Context) -> str | None:
    """What every ONNX Runtime / PyTorch int8 method refuses: backend openvino (NNCF's), a
    precision it cannot combine with, exclusions by a role the model cannot name."""
    from autoopt.techniques._roles import exclusion_refusal

    return (
        openvino_refusal(ctx) or precision_conflict(ctx) or exclusion_refusal(config.exclude, ctx)
    )


def with_roles(config: ConfigT, ctx: Context, stage: str) -> ConfigT:
    """``config`` with the roles in its ``exclude`` replaced by module patterns."""
    from autoopt.techniques._roles import exclusion_patterns

    return config.model_copy(update={"exclude": exclusion_patterns(config.exclude, ctx, stage)})


def precision_conflict(ctx: Context) -> str | None:
    precision = ctx.recipe.precision.method
    if precision in ("fp16", "bf16", "fp8"):
        return (
            f"int8 quantization cannot be combined with precision {precision}: the quantized "
            "model keeps float32 scales and float32 layers between the int8 ones; use precision "
            f"fp32 with quantization, or {precision} without quantization"
        )
    return None


def openvino_refusal(ctx: Context) -> str | None:
    if ctx.backend_kind == "openvino":
        return (
            "this method builds ONNX Runtime or PyTorch int8 graphs, and backend openvino "
            "quantizes with NNCF: use quantization.nncf_int8 on backend openvino"
        )
    return None
