"""Non-linear (codebook) weight quantization: 1-D k-means per codebook, and bit packing.

A weight matrix (rows = output channels, a Conv2d's kernel flattened into its row) is cut
into *cells*, each of which gets its own codebook of ``2**bits`` centroids: a whole row
(per channel) or ``group_size`` consecutive weights of a row (per group). Every weight is
replaced by the index of its nearest centroid. The indices are packed ``bits`` to a weight,
so a 3-bit layer stores 3 bits per weight plus its codebooks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Codes:
    """One weight matrix as codebooks and indices.

    ``codebook``: (rows, groups, 2**bits), sorted ascending within each cell. ``indices``:
    (rows, columns) int64, column ``j`` indexing cell ``j // group_size`` of its row.
    """

    codebook: torch.Tensor
    indices: torch.Tensor
    group_size: int


def cells(rows: int, columns: int, group_size: int | None) -> tuple[int, int]:
    """(groups per row, group size): a whole row when ``group_size`` is None or not smaller."""
    if group_size is None or group_size >= columns:
        return 1, columns
    return math.ceil(columns / group_size), group_size


def kmeans(weight: torch.Tensor, bits: int, group_size: int | None, iterations: int) -> Codes:
    """Lloyd's k-means on every cell of ``weight`` (2-D) at once.

    Centroids start at the cell's quantiles (deterministic: the same weights give the same
    codebook on any host), so no cluster starts empty where the cell has ``2**bits``
    distinct values. In one dimension the nearest centroid is found by binary search among
    the midpoints of the sorted centroids. A cluster that empties keeps its centroid.
    Padding (the last group of a row whose length is not a multiple of ``group_size``) is
    masked out of every mean.
    """
    w = weight.detach().to(torch.float64)
    rows, columns = w.shape
    groups, size = cells(rows, columns, group_size)
    k = 2**bits
    padded = torch.zeros(rows, groups * size, dtype=torch.float64)
    padded[:, :columns] = w
    valid = torch.zeros(rows, groups * size, dtype=torch.bool)
    valid[:, :columns] = True
    x = padded.reshape(rows * groups, size)
    mask = valid.reshape(rows * groups, size).to(torch.float64)
    # Quantile initialisation over each cell's real values: padding sorts to the end.
    ordered = torch.where(mask.bool(), x, torch.inf).sort(dim=1).values
    real = mask.sum(1, keepdim=True).clamp_min(1)
    positions = ((torch.arange(k, dtype=torch.float64) + 0.5) / k * real).long()
    centroids = ordered.gather(1, positions)
    for _ in range(iterations):
        idx = _nearest(x, centroids)
        sums = torch.zeros_like(centroids).scatter_add_(1, idx, x * mask)
        counts = torch.zeros_like(centroids).scatter_add_(1, idx, mask)
        updated = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
        updated = updated.sort(dim=1).values
        if torch.equal(updated, centroids):
            break
        centroids = updated
    idx = _nearest(x, centroids)
    return Codes(
        codebook=centroids.reshape(rows, groups, k).to(torch.float32),
        indices=idx.reshape(rows, groups * size)[:, :columns].contiguous(),
        group_size=size,
    )


def _nearest(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest (sorted) centroid for every value, cell by cell."""
    midpoints = (centroids[:, 1:] + centroids[:, :-1]) / 2
    return torch.searchsorted(midpoints.contiguous(), x.contiguous())


def decode(codebook: torch.Tensor, indices: torch.Tensor, group_size: int) -> torch.Tensor:
    """The (rows, columns) weight that ``indices`` (rows, columns) stand for, each column
    looked up in its group's codebook, in the codebook's dtype."""
    rows, groups, k = codebook.shape
    columns = indices.shape[1]
    cell = torch.arange(columns, device=indices.device) // group_size
    return codebook.reshape(rows, groups * k).gather(1, cell * k + indices)


def pack(indices: torch.Tensor, bits: int) -> torch.Tensor:
    """Indices (any shape, values < 2**bits) as a flat uint8 bit stream, ``bits`` per value,
    least significant bit first: ``ceil(n * bits / 8)`` bytes."""
    flat = indices.reshape(-1).to(torch.int64)
    shifts = torch.arange(bits, dtype=torch.int64)
    stream = ((flat[:, None] >> shifts) & 1).reshape(-1).to(torch.uint8)
    stream = torch.cat([stream, stream.new_zeros(-len(stream) % 8)])
    weights = (1 << torch.arange(8, dtype=torch.int64)).to(torch.uint8)
    return (stream.reshape(-1, 8) * weights).sum(1, dtype=torch.int64).to(torch.uint8)


def unpack(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """The first ``count`` indices of a stream written by :func:`pack`, as int64."""
    shifts = torch.arange(8, dtype=torch.int64)
    stream = ((packed.to(torch.int64)[:, None] >> shifts) & 1).reshape(-1)[: count * bits]
    values = stream.reshape(count, bits) << torch.arange(bits, dtype=torch.int64)
    return values.sum(1)
