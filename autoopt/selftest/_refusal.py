"""Refusing a candidate whose path failed the host self-test, before it is built."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from autoopt.selftest._paths import path_key

if TYPE_CHECKING:
    from autoopt.recipe import Recipe
    from autoopt.selftest._result import PathResult


def refusal_reason(results: Iterable[PathResult], recipe: Recipe) -> str | None:
    """A one-line reason to refuse ``recipe`` when its path failed the self-test, else None.

    ``recipe`` may be any candidate: its distillation, pruning and non-kernel settings do not
    change its path (:func:`path_key`). Only a *failed* path refuses: a refused path is
    refused by ``check()`` anyway, and an inconclusive one is left to the candidate's own
    verification. For example: ``host self-test: torch_compile(max-autotune-no-cudagraphs,
    freezing) + static_int8(per_channel) gives mean cosine 0.591 (int8 paths need 0.95) at
    batch 1 on the probe (BertLayer, 1x128x384 + 1x1x128x128) on AMD EPYC 9B14
    (avx512_vnni, avx512_bf16, no avx512_fp16, no amx) with torch 2.13.0, torchao 0.18.0``.
    """
    key = path_key(recipe)
    failed = next((r for r in results if r.key == key and r.status == "fail"), None)
    if failed is None:
        return None
    return (
        f"host self-test: {failed.label} gives {_finding(failed)} on {failed.host} with "
        f"{_versions(failed)}"
    )


def _finding(result: PathResult) -> str:
    """What went wrong, at the batch size where it went most wrong."""
    if not result.batches:  # a result without numbers: its verdict's own words
        return result.reason
    nonfinite = [b for b in result.batches if b.nonfinite]
    if nonfinite:
        b = nonfinite[0]
        what = f"{b.nonfinite} NaN/inf values"
    else:
        b = min(result.batches, key=lambda b: (b.mean_cosine, b.min_cosine))
        if b.mean_cosine < result.threshold_mean:
            what = (
                f"mean cosine {b.mean_cosine:.3f} ({result.precision_class} paths need "
                f"{result.threshold_mean})"
            )
        else:
            b = min(result.batches, key=lambda b: b.min_cosine)
            what = (
                f"a sample cosine of {b.min_cosine:.3f} ({result.precision_class} paths need "
                f"{result.threshold_min} for every sample)"
            )
    return f"{what} at batch {b.batch_size} on the probe ({result.probe}, {b.shapes})"


def _versions(result: PathResult) -> str:
    """The versions of the libraries that made the path's kernels."""
    onnx = (result.recipe.get("backend") or {}).get("key") == "backend.onnxruntime"
    names = ("onnxruntime", "torch") if onnx else ("torch", "torchao")
    return ", ".join(f"{n} {result.versions.get(n, '?')}" for n in names)
