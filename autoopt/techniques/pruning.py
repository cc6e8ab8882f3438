"""Pruning: zero out (unstructured) or physically remove (structured) weights, then optionally
recover accuracy by fine-tuning against the teacher on the train split.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field

from autoopt.artifacts import TorchArtifact
from autoopt.errors import CandidateError
from autoopt.plugins import Technique, register
from autoopt.techniques._objective import feature_refusal
from autoopt.techniques._training import RecoveryConfig, recover

if TYPE_CHECKING:
    import torch

    from autoopt.artifacts import Artifact, ArtifactKind
    from autoopt.layouts import ModelLayout
    from autoopt.plugins import Context


class UnstructuredPruningConfig(RecoveryConfig):
    #: Fraction of weights set to zero (per layer, or over all layers together).
    amount: float = Field(default=0.5, ge=0.0, le=0.95)
    #: ``layer``: the same fraction in every Conv/Linear; ``global``: the smallest weights of the
    #: whole model, so layers with many small weights lose more.
    scope: Literal["layer", "global"] = "layer"


class StructuredPruningConfig(RecoveryConfig):
    #: Fraction of output channels / hidden units removed from each prunable layer (and of
    #: the attention heads, for a model whose layout gives them).
    amount: float = Field(default=0.3, ge=0.0, le=0.9)
    #: Channel ranking: L1 or L2 norm of the weights coupled to each channel.
    norm: Literal["l1", "l2"] = "l1"


def _prunable(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    from torch import nn

    from autoopt.layouts import is_linear

    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d) or is_linear(m)
    ]


def weight_sparsity(model: torch.nn.Module) -> float:
    """Fraction of exact zeros among the Conv/Linear weights (GPT-2's Conv1D included)."""
    weights: list[torch.Tensor] = [m.weight for _, m in _prunable(model)]  # type: ignore[misc]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / total if total else 0.0


def _trace_inputs(ctx: Context, batch_size: int) -> tuple[torch.Tensor, ...]:
    """A few train samples to trace the model with (the evaluation split stays unseen)."""
    import torch

    split = ctx.workload.train.take(batch_size)
    return tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in split.inputs)


@register
class UnstructuredPruning(Technique[UnstructuredPruningConfig]):
    """Magnitude (L1) pruning of Conv/Linear weights with ``torch.nn.utils.prune``.

    The zeros only make the model faster on sparse kernels (few CPU backends have them); they do
    make it compress well. The search measures whether it pays off.
    """

    key = "pruning.unstructured"
    family = "pruning"
    Config = UnstructuredPruningConfig
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch",)

    def check(self, config: UnstructuredPruningConfig, ctx: Context) -> str | None:
        return feature_refusal(ctx.workload, config.recovery_feature_weight)

    def apply(
        self, artifact: Artifact, config: UnstructuredPruningConfig, ctx: Context
    ) -> Artifact:
        import torch
        from torch.nn.utils import prune

        model = _copy_model(artifact, self.key)
        layers = _prunable(model)
        if not layers:
            raise CandidateError(
                "unstructured pruning found no Conv/Linear layers to prune", stage=self.key
            )
        with torch.inference_mode(False), torch.no_grad():
            if config.scope == "layer":
                for _, m in layers:
                    prune.l1_unstructured(m, "weight", amount=config.amount)
            else:
                prune.global_unstructured(
                    [(m, "weight") for _, m in layers],
                    pruning_method=prune.L1Unstructured,
                    amount=config.amount,
                )
        # Recovery trains through the pruning parametrization (weight = weight_orig * mask),
        # so the pruned weights stay exactly zero; prune.remove then makes the zeros permanent.
        recover(model, config, ctx)
        with torch.no_grad():
            for _, m in layers:
                prune.remove(m, "weight")
        return TorchArtifact(model.eval())


@register
class StructuredPruning(Technique[StructuredPruningConfig]):
    """Remove whole conv channels / linear units, with their dependents, via torch-pruning.

    torch-pruning traces the model's dependency graph, so coupled layers (the next layer's
    inputs, batch norms, residual additions, flattens) are sliced consistently for any model.
    The layers that produce the model's output are never pruned, so its shape is unchanged.
    For a model with a layout, the attention's query, key and value layers are pruned by
    whole heads (``amount`` of them in every block, rounded up), which their reshapes need;
    GPT-2's Conv1D layers are pruned as the equal ``nn.Linear``, its heads kept.
    """

    key = "pruning.structured"
    family = "pruning"
    Config = StructuredPruningConfig
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch",)

    def check(self, config: StructuredPruningConfig, ctx: Context) -> str | None:
        try:
            import torch_pruning  # noqa: F401
        except ImportError as e:
            return f"structured pruning needs torch-pruning (pip install torch-pruning): {e}"
        return feature_refusal(ctx.workload, config.recovery_feature_weight)

    def apply(self, artifact: Artifact, config: StructuredPruningConfig, ctx: Context) -> Artifact:
        import torch
        import torch_pruning as tp

        from autoopt.layouts import find_layout, linear_copy, sync_heads

        if not isinstance(artifact, TorchArtifact):
            raise CandidateError(
                f"{self.key} needs a PyTorch model, got a {artifact.kind} artifact"
            )
        model = linear_copy(artifact.model).eval()
        example = _trace_inputs(ctx, 2)
        with torch.no_grad():
            reference_shape = tuple(model(*example).shape)
        ignored = _output_layers(model, example)
        found = find_layout(model)
        heads = _heads(found, ignored)
        if config.amount > 0:
            try:
                with torch.inference_mode(False):
                    pruner = tp.pruner.MetaPruner(
                        model,
                        example,
                        importance=tp.importance.MagnitudeImportance(
                            p=1 if config.norm == "l1" else 2
                        ),
                        pruning_ratio=config.amount,
                        ignored_layers=ignored,
                        # Fresh dicts: torch-pruning mutates some of its default arguments.
                        in_channel_groups={},
                        out_channel_groups={},
                        num_heads=heads,
                        # Whole heads, never a head's dimensions: the attention reshapes its
                        # projections to (heads, head size), and the head size stays.
                        prune_num_heads=bool(heads),
                        prune_head_dims=not heads,
                        head_pruning_ratio=config.amount if heads else 0.0,
                    )
                    pruner.step()
                if found is not None:
                    sync_heads(found)
            except Exception as e:  # noqa: BLE001 - any tracing failure fails this candidate
                raise CandidateError(
                    f"torch-pruning could not prune this model: {type(e).__name__}: {e}",
                    stage=self.key,
                ) from e
        with torch.no_grad():
            shape = tuple(model(*example).shape)
        if shape != reference_shape:
            raise CandidateError(
                f"structured pruning changed the output shape from {reference_shape} to {shape}",
                stage=self.key,
            )
        recover(model, config, ctx)
        return TorchArtifact(model.eval())


def _heads(found: ModelLayout | None, ignored: list) -> dict:
    """torch-pruning's ``num_heads``: each query, key and value layer with its head count.

    Where heads cannot be pruned this way, the q/k/v layers join ``ignored`` instead (their
    outputs keep every head; their inputs still follow the hidden width): a layout that says
    heads cannot be removed (MPNet), and a fused q/k/v layer, whose split outputs
    torch-pruning 1.6 indexes wrongly (IndexError on GPT-2; ``pruning.attention_ffn`` removes
    GPT-2's heads).
    """
    if found is None:
        return {}
    heads = {}
    for block in found.blocks():
        layers = [block.get_submodule(p) for p in found.layout.qkv_paths()]
        if found.layout.no_head_pruning or found.layout.fused_qkv:
            ignored.extend(layers)
        else:
            heads.update({layer: found.heads(block) for layer in layers})
    return heads


def _copy_model(artifact: Artifact, stage: str) -> torch.nn.Module:
    if not isinstance(artifact, TorchArtifact):
        raise CandidateError(f"{stage} needs a PyTorch model, got a {artifact.kind} artifact")
    return copy.deepcopy(artifact.model).eval()


def _output_layers(model: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> list:
    """The Conv/Linear layer(s) run last: the ones whose outputs are the model's outputs
    (a classifier head, an embedding projection). Pruning them would change the output shape.
    """
    import torch

    prunable = {id(m): m for _, m in _prunable(model)}
    order: list[torch.nn.Module] = []

    def hook(module: torch.nn.Module, _inputs: object, _output: object) -> None:
        order.append(module)

    handles = [m.register_forward_hook(hook) for m in prunable.values()]
    try:
        with torch.no_grad():
            model(*example)
    finally:
        for h in handles:
            h.remove()
    return order[-1:]
