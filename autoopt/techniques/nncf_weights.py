"""NNCF weight compression of OpenVINO IRs: NF4 / int4 weights (``nncf.compress_weights``).

Weights only: each compressed MatMul (and Embedding gather) keeps its weight as 4-bit codes
(NF4: the 16 quantiles of a normal distribution; int4: a uniform grid) with an fp16 scale per
``group_size`` inputs, and activations stay in the inference precision. OpenVINO's CPU plugin
runs such a MatMul as a FullyConnected that decompresses the weights in its kernel (the
runner reports ``FullyConnected:nf4``), so the IR is smaller on disk and in memory. By
default NNCF keeps the embeddings and the last MatMul in int8 (its "backup" precision), and
``ratio`` moves only the least sensitive share of the rest to 4 bits; Convolutions keep float
weights (on the digits CNN: conv1/conv2 ``Convolution:f32``, fc1 ``FullyConnected:nf4``, fc2
``FullyConnected:u8``). Weight-only compression buys size, and speed only where a MatMul is
bound by reading its weights (large layers at batch 1), not in a small model's compute.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from autoopt.artifacts import OpenVinoArtifact
from autoopt.errors import CandidateError, failing_the_candidate
from autoopt.plugins import Context, Technique, register
from autoopt.techniques._openvino import as_openvino, read_model, scratch_ir, weighted_layers
from autoopt.techniques.nncf_quantization import _quiet, ignored_nodes
from autoopt.techniques.quantization._config import ExclusionsConfig

if TYPE_CHECKING:
    import openvino as ov

    from autoopt.artifacts import Artifact, ArtifactKind

logger = logging.getLogger(__name__)

#: Element types of compressed weight constants, by mode.
WEIGHT_TYPES = {"nf4": "nf4", "int4_sym": "i4", "int4_asym": "u4"}


class NncfWeightsConfig(ExclusionsConfig):
    #: The primary weight format (4 bits: NF4 or int4, symmetric or with zero points).
    mode: Literal["nf4", "int4_sym", "int4_asym"] = "nf4"
    #: Inputs sharing one scale; None: one scale per output channel.
    group_size: int | None = Field(default=64, ge=2, le=1_000_000)
    #: A layer whose input size ``group_size`` does not divide (a student's or a pruned
    #: model's narrower layer): NNCF's ``group_size_fallback_mode``. ``adjust`` gives it the
    #: largest power-of-two group (at least 32) that divides it, else int8; ``ignore``
    #: leaves it uncompressed; ``error`` fails the candidate.
    group_size_fallback: Literal["adjust", "ignore", "error"] = "adjust"
    #: Share of the eligible layers (by parameters) compressed to 4 bits; NNCF keeps the
    #: most sensitive rest in int8.
    ratio: float = Field(default=1.0, gt=0.0, le=1.0)
    #: Also the embeddings and the last MatMul in 4 bits (NNCF keeps them in int8 by default).
    all_layers: bool = False
    #: MatMul/Conv layers (PyTorch module names, ``*`` for one component) kept in int8
    #: whatever the ratio.
    eight_bit: list[str] = Field(default_factory=list)

    @field_validator("eight_bit")
    @classmethod
    def _sorted(cls, v: list[str]) -> list[str]:
        return sorted(set(v))


def weight_types(model: ov.Model) -> dict[str, int]:
    """Element type of every weight constant (float, 8- or 4-bit), with how many there are."""
    counts: dict[str, int] = {}
    for op in model.get_ops():
        if op.get_type_name() == "Constant":
            kind = op.get_output_element_type(0).get_type_name()
            counts[kind] = counts.get(kind, 0) + 1
    return counts


@register
class NncfWeightCompression(Technique[NncfWeightsConfig]):
    """NF4 / int4 weights by NNCF on an OpenVINO IR, served by ``backend.openvino``."""

    key = "quantization.nncf_weights"
    family = "quantization"
    Config = NncfWeightsConfig
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("openvino",)
    kernel_fields = ("mode",)

    def check(self, config: NncfWeightsConfig, ctx: Context) -> str | None:
        if ctx.backend_kind != "openvino":
            return (
                f"NNCF compresses the weights of OpenVINO IRs, and {ctx.recipe.backend.key} "
                f"serves {ctx.backend_kind} models: use backend openvino, or "
                "quantization.codebook on PyTorch"
            )
        return None

    def apply(self, artifact: Artifact, config: NncfWeightsConfig, ctx: Context) -> Artifact:
        source = as_openvino(artifact, ctx, "nncf_weights")
        compressed = self._compress(read_model(source), config)
        primary = WEIGHT_TYPES[config.mode]
        if not weight_types(compressed).get(primary):
            raise CandidateError(
                f"{self.key}: NNCF compressed no weight to {config.mode} (exclusions "
                f"{config.exclude}, 8-bit layers {config.eight_bit}, ratio {config.ratio})",
                stage=self.key,
            )
        from autoopt.openvino_export import save

        out = save(compressed, scratch_ir(ctx, "nncf_weights"))
        return OpenVinoArtifact(out, source.inference_precision)

    def _compress(self, model: ov.Model, config: NncfWeightsConfig) -> ov.Model:
        import nncf
        from nncf.quantization.advanced_parameters import GroupSizeFallbackMode

        excluded = ignored_nodes(model, config.exclude, self.key)
        eight = ignored_nodes(model, config.eight_bit, self.key)
        with (
            failing_the_candidate("NNCF weight compression failed", self.key),
            _quiet(),
        ):
            if eight:
                # NNCF takes no per-layer precision: a first pass compresses only the
                # 8-bit layers (everything else ignored), and the second ignores them.
                others = [
                    name
                    for names in weighted_layers(model).values()
                    for name in names
                    if name not in eight
                ]
                model = nncf.compress_weights(
                    model,
                    mode=nncf.CompressWeightsMode.INT8_ASYM,
                    ignored_scope=nncf.IgnoredScope(
                        names=others, types=["Gather"], validate=False
                    ),
                )
            kwargs: dict[str, Any] = {
                "mode": nncf.CompressWeightsMode(config.mode),
                "group_size": config.group_size or -1,
                "ratio": config.ratio,
                "all_layers": config.all_layers,
                "ignored_scope": nncf.IgnoredScope(names=sorted({*excluded, *eight})),
                "advanced_parameters": nncf.AdvancedCompressionParameters(
                    group_size_fallback_mode=GroupSizeFallbackMode(config.group_size_fallback)
                ),
            }
            return nncf.compress_weights(model, **kwargs)
