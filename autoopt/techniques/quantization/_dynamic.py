"""Dynamic int8: weights to int8 ahead of time, activations quantized per batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from autoopt.artifacts import OnnxArtifact, TorchArtifact
from autoopt.errors import CandidateError
from autoopt.plugins import Technique, register
from autoopt.techniques._onnx import as_onnx, scratch_path
from autoopt.techniques.quantization._config import DynamicInt8Config, int8_refusal, with_roles
from autoopt.techniques.quantization._eager import torch_dynamic
from autoopt.techniques.quantization._graph import nodes_to_exclude, quiet, require_integer_ops
from autoopt.techniques.quantization._sensitivity import with_sensitive_exclusions

if TYPE_CHECKING:
    from autoopt.artifacts import Artifact, ArtifactKind
    from autoopt.plugins import Context


@register
class DynamicInt8Quantization(Technique[DynamicInt8Config]):
    """Weights to int8 ahead of time, activations quantized on the fly per batch.

    PyTorch: ``quantize_dynamic`` replaces ``nn.Linear`` (and GPT-2's Conv1D) with a dynamic
    quantized Linear (Conv has no dynamic kernel in PyTorch). ONNX:
    ``onnxruntime.quantization.quantize_dynamic`` (MatMulInteger / ConvInteger).
    """

    key = "quantization.dynamic_int8"
    family = "quantization"
    Config = DynamicInt8Config
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch", "onnx")
    kernel_fields = ("per_channel", "op_types", "weight_type")

    def check(self, config: DynamicInt8Config, ctx: Context) -> str | None:
        if reason := int8_refusal(config, ctx):
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

    def needs_torch(self, config: DynamicInt8Config) -> bool:
        return config.exclude_most_sensitive > 0

    def apply(self, artifact: Artifact, config: DynamicInt8Config, ctx: Context) -> Artifact:
        config = with_roles(config, ctx, self.key)
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
            return TorchArtifact(torch_dynamic(artifact.model, config, self.key))
        return _onnx_dynamic(as_onnx(artifact, ctx, "dynamic_int8"), config, ctx, self.key)


def _onnx_dynamic(
    artifact: OnnxArtifact, config: DynamicInt8Config, ctx: Context, stage: str
) -> OnnxArtifact:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(artifact.path))
    exclude, op_types = nodes_to_exclude(model.graph, config, stage, dynamic=True)
    out = scratch_path(ctx, "dynamic_int8")
    try:
        with quiet():
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
    require_integer_ops(out, stage)
    return OnnxArtifact(out)
