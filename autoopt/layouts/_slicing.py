"""Removing attention heads and FFN neurons from a block, as its layout describes it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from autoopt.layouts._layout import ModelLayout
from autoopt.layouts._linear import sliced


def qkv_segments(found: ModelLayout, block: nn.Module) -> list[tuple[nn.Module, int]]:
    """``(layer, first output)`` of the block's queries, keys and values: three layers from
    0, or GPT-2's fused layer at 0, W and 2W (W: the width of all heads)."""
    layers = [block.get_submodule(p) for p in found.layout.qkv_paths()]
    if not found.layout.fused_qkv:
        return [(layer, 0) for layer in layers]
    width = found.qkv_width(block)
    return [(layers[0], i * width) for i in range(3)]


def head_channels(found: ModelLayout, block: nn.Module, heads: Sequence[int]) -> torch.Tensor:
    """The channels (of the queries, and of the attention output's input) of ``heads``."""
    d = found.head_size(block)
    if not heads:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat([torch.arange(h * d, (h + 1) * d) for h in heads])


def prune_block(
    found: ModelLayout, block: nn.Module, keep_heads: torch.Tensor, keep_neurons: torch.Tensor
) -> None:
    """Slice ``block`` in place to the given heads and FFN neurons (sorted indices)."""
    layout = found.layout
    d = found.head_size(block)
    channels = head_channels(found, block, keep_heads.tolist())
    segments = qkv_segments(found, block)
    if layout.fused_qkv:
        rows = torch.cat([offset + channels for _, offset in segments])
        block.set_submodule(layout.qkv_paths()[0], sliced(segments[0][0], outputs=rows))
    else:
        for path, (layer, _) in zip(layout.qkv_paths(), segments, strict=True):
            block.set_submodule(path, sliced(layer, outputs=channels))
    block.set_submodule(
        layout.attn_out, sliced(block.get_submodule(layout.attn_out), inputs=channels)
    )
    layout.set_heads(found.attention(block), len(keep_heads), d)
    block.set_submodule(
        layout.ffn_in, sliced(block.get_submodule(layout.ffn_in), outputs=keep_neurons)
    )
    block.set_submodule(
        layout.ffn_out, sliced(block.get_submodule(layout.ffn_out), inputs=keep_neurons)
    )


def sync_heads(found: ModelLayout) -> None:
    """Record on every block's attention module the head count its q/k/v widths now hold
    (after torch-pruning removed whole heads)."""
    for block in found.blocks():
        found.layout.set_heads(found.attention(block), found.heads(block), found.head_size(block))
