"""Metrics per group of the evaluation split, with the worst group as the workload's metric.

A mean over one pooled evaluation set hides a group of inputs the candidate gets wrong: a
student distilled on documentation keeps a mean cosine of 0.95 on documentation and 0.89 on
news. When the evaluation :class:`~autoopt.workloads.Split` names each sample's group
(``groups``), :func:`grouped_fidelity` reports every group and makes the workload's metric
the *worst* group's, so the accuracy floor (``constraint.max_drop``, applied to the
workload's metric) holds on every group.

Metric names: ``<name>`` (the worst group's mean; the overall mean without groups),
``<name>_mean``, ``<name>_p5``, ``<name>_min`` (all samples), ``<name>_worst_p5`` (the lowest
group 5th percentile), ``knn_agreement`` (all samples), and per group ``<name>/<group>``,
``<name>_p5/<group>``, ``knn_agreement/<group>``.
"""

from __future__ import annotations

import numpy as np

from autoopt.workloads._base import Split, cosine_similarity

#: How many nearest neighbours :func:`neighbour_agreement` compares.
NEIGHBOURS = 10


def _normalized(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1).astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _nearest(x: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` most cosine-similar other rows (as a boolean matrix)."""
    sim = _normalized(x) @ _normalized(x).T
    np.fill_diagonal(sim, -np.inf)
    idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    out = np.zeros(sim.shape, dtype=bool)
    np.put_along_axis(out, idx, True, axis=1)
    return out


def neighbour_agreement(
    outputs: np.ndarray, reference: np.ndarray, k: int = NEIGHBOURS
) -> np.ndarray:
    """Per sample, the share of its ``k`` nearest neighbours under ``reference`` (the
    teacher's embeddings) that are still among its ``k`` nearest under ``outputs``: what a
    search over these samples would return. 1.0 for a single sample."""
    k = min(k, len(outputs) - 1)
    if k < 1:
        return np.ones(len(outputs))
    return (_nearest(outputs, k) & _nearest(reference, k)).sum(1) / k


def group_names(groups: np.ndarray) -> list[str]:
    """The distinct groups, sorted (the order metrics are reported in)."""
    return sorted({str(g) for g in groups})


def grouped_fidelity(
    outputs: np.ndarray,
    split: Split,
    teacher_outputs: np.ndarray,
    *,
    name: str = "fidelity",
    neighbours: int = NEIGHBOURS,
) -> dict[str, float]:
    """Cosine similarity to the teacher's embeddings and nearest-neighbour agreement, overall
    and per group of ``split.groups``; ``name`` is the worst group's mean cosine.

    Neighbours are searched within each group for the group's figure (a user searches their
    own documents) and within the whole split for the overall one.
    """
    cos = cosine_similarity(outputs, teacher_outputs)
    out = {
        f"{name}_mean": float(np.mean(cos)),
        f"{name}_p5": float(np.percentile(cos, 5)),
        f"{name}_min": float(np.min(cos)),
        "knn_agreement": float(np.mean(neighbour_agreement(outputs, teacher_outputs, neighbours))),
    }
    if split.groups is None:
        out[name] = out[f"{name}_mean"]
        return out
    groups = np.asarray([str(g) for g in split.groups])
    means, p5s = [], []
    for group in group_names(groups):
        rows = groups == group
        means.append(float(np.mean(cos[rows])))
        p5s.append(float(np.percentile(cos[rows], 5)))
        agreement = neighbour_agreement(outputs[rows], teacher_outputs[rows], neighbours)
        out[f"{name}/{group}"] = means[-1]
        out[f"{name}_p5/{group}"] = p5s[-1]
        out[f"knn_agreement/{group}"] = float(np.mean(agreement))
    out[name] = min(means)
    out[f"{name}_worst_p5"] = min(p5s)
    return out
