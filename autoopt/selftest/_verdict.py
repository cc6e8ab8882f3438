"""Pass or fail: a path's outputs against the fp32 probe's, by precision class.

The thresholds come from what correct builds give on the probes (per-sample cosine to the
fp32 probe; AMD EPYC with AVX-512 VNNI/BF16, torch 2.13, torchao 0.18, onnxruntime 1.32; the
MiniLM probe is two BertLayers, the digits probe the whole CNN):

* fp32 paths (eager, torch.compile, ONNX Runtime with or without BERT fusions and flushed
  denormals) agree to within rounding: lowest sample 0.9999999999992 on MiniLM. A reordered
  sum cannot move a cosine by 1e-4; a wrong kernel moves it by far more.
* half paths keep 8 (bf16) or 11 (fp16) bits of mantissa: bf16 gave a lowest sample of
  0.99998 on MiniLM and 0.99999 on digits. 0.99 leaves room for deeper or wider blocks.
* int8 paths only need to be far from garbage. Correct int8 ranges from 0.99 (PT2E on
  Inductor, ONNX Runtime dynamic) down to 0.946 mean / 0.942 lowest sample for ONNX
  Runtime's static QDQ int8 on MiniLM (its activation-by-activation MatMuls are int8 too;
  0.937 / 0.904 on the whole model). The broken path this self-test was built for (PT2E int8
  under ``max-autotune-no-cudagraphs`` on that EPYC) gives 0.037, and random outputs give
  about 0. A mean of 0.80 and a lowest sample of 0.60 sit well clear of both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from autoopt.recipe import Recipe
    from autoopt.selftest._result import BatchResult, Status

PrecisionClass = Literal["fp32", "half", "int8"]


@dataclass(frozen=True)
class Threshold:
    #: Each batch size's mean cosine must reach this...
    mean: float
    #: ...and every sample's cosine this.
    min: float


THRESHOLDS: dict[PrecisionClass, Threshold] = {
    "fp32": Threshold(mean=0.9999, min=0.9999),
    "half": Threshold(mean=0.99, min=0.99),
    "int8": Threshold(mean=0.80, min=0.60),
}


def precision_class(recipe: Recipe) -> PrecisionClass:
    if recipe.quantization is not None:
        return "int8"
    return "fp32" if recipe.precision.method == "fp32" else "half"


def judge(batches: Sequence[BatchResult], threshold: Threshold) -> tuple[Status, str]:
    """``("pass" | "fail", reason)`` for a path's outputs at each batch size."""
    for b in batches:
        if b.nonfinite:
            return "fail", f"{b.nonfinite} NaN/inf values in the outputs at batch {b.batch_size}"
    for b in batches:
        if b.mean_cosine < threshold.mean:
            return "fail", (
                f"mean cosine {b.mean_cosine:.3f} at batch {b.batch_size}, below {threshold.mean}"
            )
        if b.min_cosine < threshold.min:
            return "fail", (
                f"a sample's cosine is {b.min_cosine:.3f} at batch {b.batch_size}, below "
                f"{threshold.min}"
            )
    worst = min(batches, key=lambda b: b.mean_cosine)
    lowest = min(b.min_cosine for b in batches)
    sizes = ", ".join(str(b.batch_size) for b in batches)
    return "pass", (
        f"mean cosine >= {worst.mean_cosine:.6f} and every sample >= {lowest:.6f} at batch {sizes}"
    )
