"""Layer-dropped students: a copy of the teacher that keeps some of its blocks."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from autoopt.errors import WorkloadError
from autoopt.layouts._layout import ModelLayout

#: Attribute of a layer-dropped student (on the model given): the teacher block each of its
#: blocks was copied from. The teacher's own blocks stand for themselves.
TEACHER_BLOCKS = "teacher_layers"


def kept_blocks(options: Mapping[str, Any], n_blocks: int) -> list[int]:
    """Which of ``n_blocks`` teacher blocks a student keeps, from distillation's config.

    ``keep`` (explicit indices) wins over ``layers`` (a count), which wins over ``width``
    (the fraction of blocks: 0.5 → 3 of 6). A count ``k`` keeps the first and the last block
    and spreads the rest evenly between them (2 → [0, 5], 3 → [0, 3, 5], 4 → [0, 2, 3, 5]);
    1 keeps the last, whose output space the model's outputs are read from. On MiniLM, before
    any training, [0, 3, 5] is the best 3-layer choice (mean fidelity 0.70, against 0.54 for
    [1, 3, 5], 0.65 for [3, 4, 5] and 0.38 for [0, 2, 4]).
    """
    keep = options.get("keep")
    if keep is not None:
        indices = [int(i) for i in keep]
        if (
            not indices
            or len(set(indices)) != len(indices)
            or not all(0 <= i < n_blocks for i in indices)
        ):
            raise WorkloadError(
                f"'keep' must list distinct layer indices in 0..{n_blocks - 1}; got {list(keep)}"
            )
        if options.get("layers") is not None and int(options["layers"]) != len(indices):
            raise WorkloadError(
                f"'layers' is {options['layers']} but 'keep' lists {len(indices)} layers "
                f"({list(keep)}); give one of them"
            )
        return sorted(indices)
    layers = options.get("layers")
    if layers is None:
        layers = max(1, int(float(options.get("width", 0.5)) * n_blocks + 0.5))
    k = int(layers)
    if not 1 <= k <= n_blocks:
        raise WorkloadError(f"'layers' must be in 1..{n_blocks}; got {layers}")
    if k == 1:
        return [n_blocks - 1]
    # round(i * (n - 1) / (k - 1)), halves up, in integers.
    return [(2 * i * (n_blocks - 1) + k - 1) // (2 * (k - 1)) for i in range(k)]


def drop_blocks(found: ModelLayout, keep: Sequence[int]) -> nn.Module:
    """A copy of ``found.model`` with only the blocks ``keep`` (teacher indices, in order).

    Everything else (embeddings, heads, wrappers) is copied as it is. The kept blocks are
    renumbered ``0..k-1`` where they carry an index (``layer_idx``, which a KV cache is
    addressed by), the backbone's config counts ``k`` layers, and the copy records
    ``teacher_layers``: module paths keep the teacher's pattern, so a per-layer exclusion
    names a student's block by its new index. The teacher is not modified.
    """
    blocks = found.model.get_submodule(found.blocks_path)
    assert isinstance(blocks, nn.ModuleList | nn.Sequential)  # noqa: S101 - Layout.mismatch
    # One memo for the kept blocks and the rest: what they share (a config) stays shared,
    # and the dropped blocks are never copied.
    memo: dict[int, Any] = {}
    with torch.inference_mode(False):
        kept = nn.Sequential() if isinstance(blocks, nn.Sequential) else nn.ModuleList()
        for i in keep:
            kept.append(copy.deepcopy(blocks[i], memo))
        memo[id(blocks)] = kept
        student = copy.deepcopy(found.model, memo)
    for new, block in enumerate(kept):
        for module in block.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                setattr(module, "layer_idx", new)  # noqa: B010 - not a tensor attribute
    backbone = student.get_submodule(found.path) if found.path else student
    config = getattr(backbone, "config", None)
    if isinstance(getattr(config, "num_hidden_layers", None), int):
        config.num_hidden_layers = len(kept)  # type: ignore[union-attr]
    setattr(student, TEACHER_BLOCKS, list(keep))
    return student.eval()
