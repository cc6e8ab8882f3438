"""Structured pruning of BERT-style encoders: attention heads and FFN neurons, really removed.

For every encoder layer (a module with ``attention.self.{query,key,value}``,
``attention.output.dense``, ``intermediate.dense`` and ``output.dense``, as in Hugging Face's
BERT family) the least important heads and intermediate neurons are sliced out of the weight
matrices, so the model gets smaller and its matmuls narrower. Importance is either the weights'
magnitude or the mean activation magnitude on a few train batches (better: it sees the data).
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
from autoopt.plugins import Technique, register
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
    """The BERT-style layers of a model, in order."""
    layers = []
    for module in model.modules():
        att = getattr(module, "attention", None)
        if (
            att is not None
            and hasattr(getattr(att, "self", None), "query")
            and hasattr(getattr(att, "output", None), "dense")
            and hasattr(getattr(module, "intermediate", None), "dense")
            and hasattr(getattr(module, "output", None), "dense")
        ):
            layers.append(module)
    return layers


def _rows(linear: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    out = nn.Linear(linear.in_features, len(keep), bias=linear.bias is not None)
    out.weight.data = linear.weight.data[keep].clone()
    if linear.bias is not None:
        out.bias.data = linear.bias.data[keep].clone()
    return out


def _cols(linear: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    out = nn.Linear(len(keep), linear.out_features, bias=linear.bias is not None)
    out.weight.data = linear.weight.data[:, keep].clone()
    if linear.bias is not None:
        out.bias.data = linear.bias.data.clone()
    return out


def _head_dim(layer: nn.Module) -> int:
    return int(layer.attention.self.attention_head_size)


def _magnitude_scores(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    sa, d = layer.attention.self, _head_dim(layer)
    n_heads = sa.query.out_features // d
    w_o = layer.attention.output.dense.weight  # (hidden, heads*d)
    heads = torch.stack(
        [
            sum(m.weight[h * d : (h + 1) * d].norm() for m in (sa.query, sa.key, sa.value))
            + w_o[:, h * d : (h + 1) * d].norm()
            for h in range(n_heads)
        ]
    )
    w_in, w_out = layer.intermediate.dense.weight, layer.output.dense.weight
    neurons = w_in.norm(dim=1) * w_out.norm(dim=0)
    return heads.detach(), neurons.detach()


def _activation_scores(
    model: nn.Module, layers: list[nn.Module], ctx: Context, samples: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Mean |head context| · ||W_o head block|| and mean |FFN activation| · ||W_out column||."""
    sums: list[list[torch.Tensor | None]] = [[None, None] for _ in layers]
    hooks = []

    def head_hook(i: int):  # the input of attention.output.dense is the heads' context
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach().abs().flatten(0, -2).mean(0)
            sums[i][0] = x if sums[i][0] is None else sums[i][0] + x

        return hook

    def ffn_hook(i: int):  # the input of output.dense is the activated intermediate
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach().abs().flatten(0, -2).mean(0)
            sums[i][1] = x if sums[i][1] is None else sums[i][1] + x

        return hook

    for i, layer in enumerate(layers):
        hooks.append(layer.attention.output.dense.register_forward_pre_hook(head_hook(i)))
        hooks.append(layer.output.dense.register_forward_pre_hook(ffn_hook(i)))
    try:
        with torch.inference_mode():
            for batch, _ in _batches(ctx, samples):
                model(*batch)
    finally:
        for h in hooks:
            h.remove()
    scores = []
    for layer, (ctx_sum, ffn_sum) in zip(layers, sums, strict=True):
        d = _head_dim(layer)
        w_o = layer.attention.output.dense.weight.detach()
        per_dim = ctx_sum * w_o.norm(dim=0)  # type: ignore[operator]
        heads = per_dim.view(-1, d).sum(1)
        neurons = ffn_sum * layer.output.dense.weight.detach().norm(dim=0)  # type: ignore[operator]
        scores.append((heads, neurons))
    return scores


def _batches(ctx: Context, samples: int) -> Iterator[tuple[list[torch.Tensor], None]]:
    split = ctx.workload.train.take(samples)
    for inputs, _ in split.batches(16):
        yield [torch.from_numpy(np.ascontiguousarray(x)) for x in inputs], None


def prune_layer(layer: nn.Module, keep_heads: torch.Tensor, keep_neurons: torch.Tensor) -> None:
    """Slice one encoder layer in place to the given heads and FFN neurons."""
    sa, d = layer.attention.self, _head_dim(layer)
    dims = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep_heads.tolist()])
    sa.query, sa.key, sa.value = (_rows(m, dims) for m in (sa.query, sa.key, sa.value))
    sa.num_attention_heads = len(keep_heads)
    sa.all_head_size = len(dims)
    layer.attention.output.dense = _cols(layer.attention.output.dense, dims)
    layer.intermediate.dense = _rows(layer.intermediate.dense, keep_neurons)
    layer.output.dense = _cols(layer.output.dense, keep_neurons)


@register
class AttentionFfnPruning(Technique[AttentionFfnPruningConfig]):
    """Remove attention heads and FFN neurons of every encoder layer by importance."""

    key = "pruning.attention_ffn"
    family = "pruning"
    Config = AttentionFfnPruningConfig
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch",)

    def check(self, config: AttentionFfnPruningConfig, ctx: Context) -> str | None:
        if not encoder_layers(ctx.workload.model):
            return (
                "the model has no BERT-style encoder layers (attention.self.query, "
                "intermediate.dense, output.dense); use pruning.structured"
            )
        return None

    def apply(
        self, artifact: Artifact, config: AttentionFfnPruningConfig, ctx: Context
    ) -> Artifact:
        if not isinstance(artifact, TorchArtifact):
            raise CandidateError("pruning.attention_ffn needs a PyTorch model", stage=self.key)
        model = copy.deepcopy(artifact.model).eval()
        layers = encoder_layers(model)
        if config.importance == "activation":
            scores = _activation_scores(model, layers, ctx, config.importance_samples)
        else:
            scores = [_magnitude_scores(layer) for layer in layers]
        for layer, (head_scores, neuron_scores) in zip(layers, scores, strict=True):
            n_heads, n_neurons = len(head_scores), len(neuron_scores)
            keep_h = max(1, n_heads - int(round(config.heads * n_heads)))
            keep_n = max(1, n_neurons - int(round(config.ffn * n_neurons)))
            heads = torch.sort(torch.topk(head_scores, keep_h).indices).values
            neurons = torch.sort(torch.topk(neuron_scores, keep_n).indices).values
            prune_layer(layer, heads, neurons)
        recover(model, config, ctx)
        return TorchArtifact(model.eval())
