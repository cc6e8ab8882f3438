"""Early rejection: a candidate clearly below the accuracy floor on a first slice of the
evaluation split is stopped before the full evaluation and the timing.

The rule is a one-sided upper confidence bound on the candidate's mean score, computed from
the slice's per-sample scores; the candidate is rejected when even that bound is below the
floor. The slice is the split's first ``n`` samples (the splits are shuffled, so a slice is a
sample of the split; drawing without replacement from a finite split only tightens the truth
around the slice mean, so the bounds below stay valid).

* **Top-1 accuracy** (every per-sample score is 0 or 1): the exact Clopper–Pearson bound, the
  ``1 - alpha`` quantile of Beta(k + 1, n - k) for k correct of n. A candidate whose accuracy
  on the whole split meets the floor is rejected with probability at most ``alpha``.
* **Continuous scores** (cosine fidelity, any other mean of per-sample scores): the one-sided
  Student-t bound ``mean + t(1 - alpha, n - 1) * s / sqrt(n)`` from the per-sample spread ``s``.
  Its false-rejection rate is ``alpha`` as far as the slice mean is normal; per-sample
  cosines are skewed (a few sentences far below the rest), which the tests check: with 5% of
  the samples at 0.7 and the rest at 0.995, a candidate exactly at the floor is rejected
  below 1% of the time at the default ``alpha`` of 0.001. Distribution-free bounds for
  scores in [-1, 1] (Hoeffding, empirical Bernstein) need thousands of samples to reject
  anything at these floors.

A metric that is not the mean of its per-sample values (an F1 score, a percentile) cannot be
bounded so: such workloads are never rejected early. Nor is the baseline, ever: the caller
passes no floor for it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from autoopt.workloads import Split, Workload

Rule = Literal["clopper-pearson", "student-t"]


@dataclass(frozen=True)
class SliceVerdict:
    """What the first slice showed: its mean score, the bound, and whether it rejects."""

    samples: int
    score: float
    bound: float
    floor: float
    rule: Rule
    alpha: float

    @property
    def rejects(self) -> bool:
        return self.bound < self.floor

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"scored {self.score:.4f} on the first {self.samples} evaluation samples; the "
            f"one-sided {1 - self.alpha:.1%} upper bound ({self.rule}) is {self.bound:.4f}, "
            f"below the floor {self.floor:.4f}"
        )


def clopper_pearson_upper(successes: int, n: int, alpha: float) -> float:
    """The exact one-sided ``1 - alpha`` upper bound of a binomial proportion."""
    from scipy.stats import beta

    if successes >= n:
        return 1.0
    return float(beta.ppf(1.0 - alpha, successes + 1, n - successes))


def student_t_upper(values: np.ndarray, alpha: float) -> float:
    """``mean + t(1 - alpha, n - 1) * s / sqrt(n)``: the one-sided upper bound of a mean."""
    from scipy.stats import t

    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return math.inf
    spread = float(np.std(values, ddof=1))
    return mean + float(t.ppf(1.0 - alpha, n - 1)) * spread / math.sqrt(n)


def bound(values: np.ndarray, alpha: float) -> tuple[float, Rule]:
    """The upper bound the rule uses for these per-sample scores."""
    values = np.asarray(values, dtype=np.float64)
    if np.all((values == 0.0) | (values == 1.0)):
        return clopper_pearson_upper(int(values.sum()), len(values), alpha), "clopper-pearson"
    return student_t_upper(values, alpha), "student-t"


def judge(values: np.ndarray, floor: float, alpha: float) -> SliceVerdict:
    upper, rule = bound(values, alpha)
    return SliceVerdict(len(values), float(np.mean(values)), upper, floor, rule, alpha)


def per_sample_scores(
    workload: Workload, outputs: np.ndarray, split: Split, teacher: np.ndarray
) -> np.ndarray | None:
    """The workload's metric on each sample of ``split``, or None when the metric is not the
    mean of those (then no bound on a slice says anything about the whole split)."""
    name = workload.metric_name
    scores = np.array(
        [
            float(workload.metric(outputs[i : i + 1], _one(split, i), teacher[i : i + 1])[name])
            for i in range(len(split))
        ]
    )
    whole = float(workload.metric(outputs, split, teacher)[name])
    if not np.all(np.isfinite(scores)) or abs(float(np.mean(scores)) - whole) > 1e-6:
        return None
    return scores


def _one(split: Split, i: int) -> Split:
    from autoopt.workloads import Split

    targets = None if split.targets is None else split.targets[i : i + 1]
    return Split(tuple(x[i : i + 1] for x in split.inputs), targets)
