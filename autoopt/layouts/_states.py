"""Per-block hidden states, for feature and layer distillation on any model with a layout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from autoopt.errors import WorkloadError
from autoopt.layouts._registry import find_layout, missing_layout_reason
from autoopt.layouts._students import TEACHER_BLOCKS

#: The input Hugging Face tokenizers name the padding mask by.
MASK_INPUT = "attention_mask"


def _state(output: Any) -> torch.Tensor:
    """A block's hidden state: its output, or the first element of the tuple it returns."""
    while isinstance(output, tuple | list):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise WorkloadError(f"a block returned {type(output).__name__}, not a hidden state")
    return output


def block_states(
    model: nn.Module, inputs: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``model(*inputs)`` and the hidden state after each of its blocks, in order. The states
    are caught by forward hooks removed right after (so that the model still pickles)."""
    found = find_layout(model)
    if found is None:
        raise WorkloadError(f"per-block hidden states need a model layout: "
                            f"{missing_layout_reason(model)}")  # fmt: skip
    states: list[torch.Tensor] = []

    def catch(_module: nn.Module, _args: Any, output: Any) -> None:
        states.append(_state(output))

    handles = [block.register_forward_hook(catch) for block in found.blocks()]
    try:
        out = model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return out, states


@dataclass(frozen=True)
class LayoutFeatures:
    """A workload's ``features`` and ``layer_features`` hooks, read from its model's layout:
    the per-position features are the last block's hidden states (for BERT, the tokens' last
    hidden states), masked by the ``attention_mask`` input where the workload has one."""

    #: Position of the attention-mask input (None: every position counts).
    mask_input: int | None = None

    @classmethod
    def for_inputs(cls, input_names: Sequence[str]) -> LayoutFeatures:
        names = list(input_names)
        return cls(names.index(MASK_INPUT) if MASK_INPUT in names else None)

    def _mask(self, inputs: Sequence[torch.Tensor], state: torch.Tensor) -> torch.Tensor:
        if self.mask_input is not None:
            mask = inputs[self.mask_input]
            if tuple(mask.shape) == tuple(state.shape[:2]):
                return mask.bool()
        # A mask of another shape (a model that adds a class token) covers other positions.
        return torch.ones(state.shape[:2], dtype=torch.bool, device=state.device)

    def features(
        self, model: nn.Module, inputs: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(outputs, last block's states, mask)``."""
        out, features, mask, _, _ = self.layer_features(model, inputs)
        return out, features, mask

    def layer_features(
        self, model: nn.Module, inputs: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor], list[int]]:
        """``features`` plus every block's states and the teacher block each stands for."""
        out, states = block_states(model, inputs)
        sources = getattr(model, TEACHER_BLOCKS, None) or range(len(states))
        return out, states[-1], self._mask(inputs, states[-1]), states, list(sources)
