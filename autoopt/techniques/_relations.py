"""Self-attention relation distillation (MiniLM v2, Wang et al. 2021), on any model layout.

A block's *relations* are, for its queries, keys and values each, the scaled dot products of
every position with every other, split into relation heads and turned into distributions by a
softmax over the (unpadded) positions. The student learns the teacher's relations by
minimizing their KL divergence: the teacher's attention behaviour itself, where hidden-state
losses only see its results. The relation heads split the projections' width the same way in
both models, so a student whose blocks keep fewer heads or another width is still compared.

The query, key and value projections are found through the model's layout
(:mod:`autoopt.layouts`) and caught by forward hooks during a forward pass the caller runs
anyway (:func:`capture_qkv`), so the loss costs no extra pass through the student.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from autoopt.errors import CandidateError
from autoopt.layouts import TEACHER_BLOCKS, find_layout, missing_layout_reason

#: ``(queries, keys, values)`` of each block, in block order.
QKV = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@contextlib.contextmanager
def capture_qkv(model: nn.Module) -> Iterator[QKV]:
    """Within the block, every forward pass of ``model`` appends each block's query, key and
    value projections' outputs to the yielded list (block by block). The hooks are removed
    on leaving, so the model still pickles."""
    found = find_layout(model)
    if found is None:
        raise CandidateError(f"attention relations need a model layout: "
                             f"{missing_layout_reason(model)}")  # fmt: skip
    paths = found.layout.qkv_paths()
    blocks = found.blocks()
    caught: dict[tuple[int, int], torch.Tensor] = {}
    out: QKV = []

    def hook(block: int, which: int) -> Any:
        def catch(_module: nn.Module, _args: Any, output: torch.Tensor) -> None:
            caught[(block, which)] = output

        return catch

    handles = [
        block.get_submodule(path).register_forward_hook(hook(b, i))
        for b, block in enumerate(blocks)
        for i, path in enumerate(paths)
    ]
    try:
        yield out
    finally:
        for handle in handles:
            handle.remove()
    for b in range(len(blocks)):
        if (b, 0) not in caught:
            continue
        if len(paths) == 1:  # one fused projection: queries, keys and values side by side
            q, k, v = caught[(b, 0)].chunk(3, dim=-1)
        else:
            q, k, v = (caught[(b, i)] for i in range(3))
        out.append((q, k, v))


def teacher_blocks(student: nn.Module, n_blocks: int) -> list[int]:
    """The teacher block each of the student's blocks stands for (its own index when the
    student is not a layer-dropped copy)."""
    return list(getattr(student, TEACHER_BLOCKS, None) or range(n_blocks))


def _log_relation(x: torch.Tensor, heads: int, mask: torch.Tensor) -> torch.Tensor:
    """``log softmax(x_h x_h^T / sqrt(d))`` per relation head over the unmasked positions:
    (batch, heads, positions, positions)."""
    b, t, width = x.shape
    if width % heads:
        raise CandidateError(f"attention relations: width {width} is not a multiple of "
                             f"{heads} relation heads")  # fmt: skip
    d = width // heads
    h = x.float().reshape(b, t, heads, d).transpose(1, 2)
    scores = h @ h.transpose(-1, -2) / math.sqrt(d)
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return torch.log_softmax(scores, dim=-1)


def relation_kl(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, heads: int
) -> torch.Tensor:
    """KL(teacher relations || student relations), summed over positions, averaged over the
    unmasked query positions and the relation heads."""
    ls = _log_relation(student, heads, mask)
    lt = _log_relation(teacher, heads, mask)
    keys = mask[:, None, None, :]
    # Masked keys have probability 0 under both: their terms are 0 (and -inf - -inf is NaN).
    kl = torch.where(keys, lt.exp() * (lt - ls), torch.zeros((), device=lt.device)).sum(-1)
    queries = mask[:, None, :].to(kl.dtype)
    return (kl * queries).sum() / (queries.sum() * heads).clamp_min(1)


def relation_loss(
    student: QKV,
    teacher: QKV,
    pairs: Sequence[tuple[int, int]],
    mask: torch.Tensor,
    heads: int,
) -> torch.Tensor:
    """The mean of the query-query, key-key and value-value relation KLs over the
    ``(student block, teacher block)`` pairs."""
    if not pairs:
        raise CandidateError("attention relations: no student block to match")
    total = torch.zeros((), device=mask.device)
    for s_block, t_block in pairs:
        for s, t in zip(student[s_block], teacher[t_block], strict=True):
            total = total + relation_kl(s, t.detach(), mask, heads)
    return total / (3 * len(pairs))


def relation_heads(model: nn.Module) -> int:
    """The number of relation heads: the model's attention heads (its first block's)."""
    found = find_layout(model)
    if found is None:
        raise CandidateError(f"attention relations need a model layout: "
                             f"{missing_layout_reason(model)}")  # fmt: skip
    return found.heads(found.blocks()[0])
