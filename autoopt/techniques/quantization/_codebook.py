"""Non-linear weight quantization: k-means codebooks per layer (``quantization.codebook``)."""

from __future__ import annotations

import copy
import logging
import math
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from autoopt.artifacts import TorchArtifact
from autoopt.errors import CandidateError
from autoopt.plugins import Technique, register
from autoopt.techniques._names import covered
from autoopt.techniques.quantization._codebook_layers import (
    CodebookConv2d,
    CodebookEmbedding,
    CodebookLinear,
)
from autoopt.techniques.quantization._config import ExclusionsConfig, with_roles
from autoopt.techniques.quantization._kmeans import cells, kmeans
from autoopt.techniques.quantization._layers import require_known_modules

if TYPE_CHECKING:
    import torch
    from torch import nn

    from autoopt.artifacts import Artifact, ArtifactKind
    from autoopt.plugins import Context

logger = logging.getLogger(__name__)

LayerKind = Literal["linear", "conv", "embedding"]


class CodebookConfig(ExclusionsConfig):
    #: Index bits per weight: each codebook has ``2**bits`` centroids.
    bits: int = Field(default=4, ge=1, le=8)
    #: Weights per codebook along a layer's input dimension (a Conv2d's kernel flattened);
    #: None: one codebook per output channel (an Embedding's row).
    group_size: int | None = Field(default=None, ge=2, le=1_000_000)
    #: Layers (module names, ``*`` for one component) given 8-bit codebooks instead.
    eight_bit: list[str] = Field(default_factory=list)
    #: Layer kinds replaced by codebook layers.
    layers: list[LayerKind] = Field(
        default_factory=lambda: ["conv", "embedding", "linear"], min_length=1
    )
    #: Lloyd iterations at most (1-D k-means converges in a few dozen).
    iterations: int = Field(default=30, ge=0, le=1000)

    @field_validator("eight_bit", "layers")
    @classmethod
    def _canonical(cls, v: list[str]) -> list[str]:
        return sorted(set(v))


@register
class CodebookQuantization(Technique[CodebookConfig]):
    """Every chosen Linear, Conv2d and Embedding stored as ``bits``-bit indices into k-means
    codebooks (per output channel or per group), float32 computation.

    The artifact holds the packed indices and fp16 codebooks, so its size on disk is the
    compressed size; at load the weights are decoded once into float32 (no runtime here
    computes from a codebook): it buys size, not speed, and the trial's runner says so.
    """

    key = "quantization.codebook"
    family = "quantization"
    Config = CodebookConfig
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch",)

    def check(self, config: CodebookConfig, ctx: Context) -> str | None:
        if ctx.backend_kind != "torch":
            other = (
                "; on OpenVINO, quantization.nncf_weights stores NF4/int4 weights its CPU "
                "plugin runs"
                if ctx.backend_kind == "openvino"
                else ""
            )
            return (
                f"codebook layers are PyTorch modules, and {ctx.recipe.backend.key} serves "
                f"{ctx.backend_kind} models (an exported graph would hold the decoded float "
                f"weights): use backend torch_eager or torch_compile{other}"
            )
        precision = ctx.recipe.precision.method
        if precision != "fp32":
            return (
                f"codebook layers decode to float32 and precision {precision} would cast the "
                "fp16 codebooks: use precision fp32 with quantization.codebook"
            )
        return None

    def apply(self, artifact: Artifact, config: CodebookConfig, ctx: Context) -> Artifact:
        if not isinstance(artifact, TorchArtifact):
            raise CandidateError(
                f"{self.key} works on PyTorch models, not {artifact.kind}", stage=self.key
            )
        config = with_roles(config, ctx, self.key)
        return TorchArtifact(codebook_model(artifact.model, config, self.key))


def _kinds(config: CodebookConfig) -> tuple[type[nn.Module], ...]:
    from torch import nn

    table: dict[str, type[nn.Module]] = {
        "linear": nn.Linear,
        "conv": nn.Conv2d,
        "embedding": nn.Embedding,
    }
    return tuple(table[k] for k in config.layers)


def _bits(bits: int, weight: torch.Tensor, config: CodebookConfig) -> int:
    """``bits``, or fewer where a cell holds fewer weights than ``2**bits`` (a 3x3 kernel of
    one input channel has 9): more centroids than weights would only store them again."""
    _, size = cells(*weight.shape, config.group_size)
    return min(bits, max(1, math.ceil(math.log2(size))))


def codebook_model(model: nn.Module, config: CodebookConfig, stage: str) -> nn.Module:
    """A copy of ``model`` with its chosen layers replaced by codebook layers."""
    from torch import nn

    kinds = _kinds(config)
    names = [n for n, m in model.named_modules() if isinstance(m, kinds)]
    require_known_modules(model, [*config.exclude, *config.eight_bit], stage, names)
    chosen = [n for n in names if not covered(n, config.exclude)]
    if not chosen:
        raise CandidateError(
            f"{stage}: no {'/'.join(config.layers)} layer left to quantize after the "
            f"exclusions {config.exclude}",
            stage=stage,
        )
    out = copy.deepcopy(model).eval()
    modules = dict(out.named_modules())
    for name in chosen:
        layer = modules[name]
        weight = layer.weight.detach().float().reshape(layer.weight.shape[0], -1)
        bits = _bits(8 if covered(name, config.eight_bit) else config.bits, weight, config)
        codes = kmeans(weight, bits, config.group_size, config.iterations)
        replacement: nn.Module
        if isinstance(layer, nn.Linear):
            replacement = CodebookLinear(layer, codes, bits)
        elif isinstance(layer, nn.Conv2d):
            replacement = CodebookConv2d(layer, codes, bits)
        else:
            replacement = CodebookEmbedding(layer, codes, bits)
        parent, _, attr = name.rpartition(".")
        setattr(modules[parent] if parent else out, attr, replacement)
    eight = sum(covered(n, config.eight_bit) for n in chosen)
    logger.info("codebook: %d layers at %d bits, %d at 8", len(chosen) - eight, config.bits, eight)
    return out.eval()
