"""Structured pruning of transformer blocks: attention heads and FFN neurons, really removed.

The model's layout (:mod:`autoopt.layouts`) says where its blocks are and which linear layers
are each block's query/key/value, attention output, FFN input and FFN output. In every block
the least important heads and intermediate neurons are sliced out of those weight matrices, so
the model gets smaller and its matmuls narrower. Importance is either the weights' magnitude
or the mean activation magnitude on a few train batches (better: it sees the data).
Recovery fine-tunes the pruned model against the teacher, as the other pruning methods do.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from autoopt.artifacts import Artifact, ArtifactKind, TorchArtifact
from autoopt.errors import CandidateError
from autoopt.layouts import (
    ModelLayout,
    find_layout,
    missing_layout_reason,
    prune_block,
    qkv_segments,
    weight_out_in,
)
from autoopt.plugins import Technique, register
from autoopt.techniques._objective import feature_refusal
from autoopt.techniques._training import RecoveryConfig, recover

if TYPE_CHECKING:
    from collections.abc import Iterator

    from autoopt.plugins import Context


class AttentionFfnPruningConfig(RecoveryConfig):
    #: Fraction of attention heads removed in every layer (at least one head stays).
    heads: float = Field(default=0.25, ge=0.0, le=0.9)
    #: Fraction of FFN intermediate neurons removed in every layer.
    ffn: float = Field(default=0.5, ge=0.0, le=0.95)
    importance: Literal["magnitude", "activation"] = "activation"
    #: Train samples the activation importance is averaged over.
    importance_samples: int = Field(default=64, ge=1, le=100_000)


def encoder_layers(model: nn.Module) -> list[nn.Module]:
    """The blocks of a model with a layout, in order ([] without one)."""
    found = find_layout(model)
    return found.blocks() if found is not None else []


def _magnitude_scores(found: ModelLayout, block: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Per head: the norms of its query, key and value rows and of its attention-output
    columns; per neuron: ||FFN-in row|| · ||FFN-out column||."""
    layout, d = found.layout, found.head_size(block)
    w_o = weight_out_in(block.get_submodule(layout.attn_out))  # (hidden, heads*d)
    segments = [(weight_out_in(layer), offset) for layer, offset in qkv_segments(found, block)]
    heads = torch.stack(
        [
            sum(w[offset + h * d : offset + (h + 1) * d].norm() for w, offset in segments)
            + w_o[:, h * d : (h + 1) * d].norm()
            for h in range(found.heads(block))
        ]
    )
    w_in = weight_out_in(block.get_submodule(layout.ffn_in))
    w_out = weight_out_in(block.get_submodule(layout.ffn_out))
    neurons = w_in.norm(dim=1) * w_out.norm(dim=0)
    return heads.detach(), neurons.detach()


def _activation_scores(
    model: nn.Module, found: ModelLayout, ctx: Context, samples: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Mean |head context| · ||W_o head block|| and mean |FFN activation| · ||W_out column||."""
    blocks = found.blocks()
    sums: list[list[torch.Tensor | None]] = [[None, None] for _ in blocks]
    hooks = []

    def catch(i: int, j: int):  # the input of the attention output / FFN output layer
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach().abs().flatten(0, -2).mean(0)
            seen = sums[i][j]
            sums[i][j] = x if seen is None else seen + x

        return hook

    layout = found.layout
    for i, block in enumerate(blocks):
        hooks.append(block.get_submodule(layout.attn_out).register_forward_pre_hook(catch(i, 0)))
        hooks.append(block.get_submodule(layout.ffn_out).register_forward_pre_hook(catch(i, 1)))
    try:
        with torch.inference_mode():
            for batch, _ in _batches(ctx, samples):
                model(*batch)
    finally:
        for h in hooks:
            h.remove()
    scores = []
    for block, (ctx_sum, ffn_sum) in zip(blocks, sums, strict=True):
        d = found.head_size(block)
        w_o = weight_out_in(block.get_submodule(layout.attn_out)).detach()
        per_dim = ctx_sum * w_o.norm(dim=0)  # type: ignore[operator]
        heads = per_dim.view(-1, d).sum(1)
        w_out = weight_out_in(block.get_submodule(layout.ffn_out)).detach()
        neurons = ffn_sum * w_out.norm(dim=0)  # type: ignore[operator]
        scores.append((heads, neurons))
    return scores


def _batches(ctx: Context, samples: int) -> Iterator[tuple[list[torch.Tensor], None]]:
    split = ctx.workload.train.take(samples)
    for inputs, _ in split.batches(16):
        yield [torch.from_numpy(np.ascontiguousarray(x)) for x in inputs], None


@register
class AttentionFfnPruning(Technique[AttentionFfnPruningConfig]):
    """Remove attention heads and FFN neurons of every encoder layer by importance."""

    key = "pruning.attention_ffn"
    family = "pruning"
    Config = AttentionFfnPruningConfig
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch",)

    def check(self, config: AttentionFfnPruningConfig, ctx: Context) -> str | None:
        found = find_layout(ctx.workload.model)
        if found is None:
            return (
                "heads and FFN neurons are found through the model's layout: "
                f"{missing_layout_reason(ctx.workload.model)}; or use pruning.structured"
            )
        if config.heads > 0 and found.layout.no_head_pruning:
            return f"{found.layout.no_head_pruning}; set heads: 0 to prune FFN neurons only"
        return feature_refusal(ctx.workload, config.recovery_feature_weight)

    def apply(
        self, artifact: Artifact, config: AttentionFfnPruningConfig, ctx: Context
    ) -> Artifact:
        if not isinstance(artifact, TorchArtifact):
            raise CandidateError("pruning.attention_ffn needs a PyTorch model", stage=self.key)
        model = copy.deepcopy(artifact.model).eval()
        found = find_layout(model)
        if found is None:
            raise CandidateError(missing_layout_reason(model), stage=self.key)
        blocks = found.blocks()
        if config.importance == "activation":
            scores = _activation_scores(model, found, ctx, config.importance_samples)
        else:
            scores = [_magnitude_scores(found, block) for block in blocks]
        for block, (head_scores, neuron_scores) in zip(blocks, scores, strict=True):
            n_heads, n_neurons = len(head_scores), len(neuron_scores)
            keep_h = max(1, n_heads - int(round(config.heads * n_heads)))
            keep_n = max(1, n_neurons - int(round(config.ffn * n_neurons)))
            heads = torch.sort(torch.topk(head_scores, keep_h).indices).values
            neurons = torch.sort(torch.topk(neuron_scores, keep_n).indices).values
            prune_block(found, block, heads, neurons)
        recover(model, config, ctx)
        return TorchArtifact(model.eval())
