"""fp8 precision: every eligible linear layer multiplies in float8 (e4m3), the rest in bf16.

What an fp8 tensor core runs (NVIDIA Ada and Hopper, compute capability 8.9+): weights are
stored in e4m3 with one scale per output row, taken once from the fp32 weights; activations
are cast to e4m3 on the fly with one scale per row (token), and ``torch._scaled_mm``
multiplies the two and applies both scales, writing bf16. Everything else (embeddings, norms,
attention's own matrix products, convolutions) runs in bf16. The scheme is torchao's
"float8 dynamic activation, float8 weight, row-wise", written here against PyTorch alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from autoopt.artifacts import TorchArtifact
from autoopt.errors import CandidateError
from autoopt.plugins import MethodConfig, Technique, register

if TYPE_CHECKING:
    from autoopt.artifacts import Artifact, ArtifactKind
    from autoopt.plugins import Context

MIN_CAPABILITY = (8, 9)


class Fp8Config(MethodConfig):
    #: Linears kept in bf16, by module path (``*`` = one name component, as in
    #: quantization's ``exclude``), e.g. ``bert.encoder.layer.*.output.dense``, or by role for
    #: a model with a layout (``ffn_out``, ``attn_qkv``, ...).
    exclude: list[str] = Field(default_factory=list)


@register
class Fp8Precision(Technique[Fp8Config]):
    """fp8 (e4m3) matrix products on an NVIDIA GPU with fp8 tensor cores; bf16 elsewhere."""

    key = "precision.fp8"
    family = "precision"
    Config = Fp8Config
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch",)

    def check(self, config: Fp8Config, ctx: Context) -> str | None:
        from autoopt.techniques._roles import exclusion_refusal

        if reason := exclusion_refusal(config.exclude, ctx):
            return reason
        if ctx.backend_kind != "torch":
            return (
                f"fp8 runs on PyTorch (torch._scaled_mm); {ctx.recipe.backend.method} serves "
                "ONNX graphs: use torch_eager or torch_compile"
            )
        if ctx.device != "cuda":
            return (
                "fp8 matrix products need an NVIDIA GPU with fp8 tensor cores (compute "
                f"capability 8.9+: Ada, Hopper); this target's device is {ctx.device}, where "
                "PyTorch would emulate them far slower than fp32: use a cuda target"
            )
        import torch

        capability = torch.cuda.get_device_capability()
        if capability < MIN_CAPABILITY:
            return (
                f"this GPU ({torch.cuda.get_device_name()}, compute capability "
                f"{capability[0]}.{capability[1]}) has no fp8 tensor cores (needs 8.9+)"
            )
        return None

    def apply(self, artifact: Artifact, config: Fp8Config, ctx: Context) -> Artifact:
        from autoopt.techniques._float8 import to_float8
        from autoopt.techniques._roles import exclusion_patterns

        if not isinstance(artifact, TorchArtifact):
            raise CandidateError("fp8 takes a PyTorch model", stage=self.key)
        exclude = exclusion_patterns(config.exclude, ctx, self.key)
        model, names = to_float8(artifact.model, exclude)
        if not names:
            raise CandidateError(
                "fp8: no linear layer with both dimensions multiples of 16 is left to convert "
                f"(exclude: {exclude})",
                stage=self.key,
            )
        return TorchArtifact(model)
