"""Early rejection on a first slice of the evaluation split: the bounds, their
false-rejection rates, and measure() stopping a clearly bad candidate but never the baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autoopt.artifacts import TorchArtifact
from autoopt.config import LatencyConfig, VerifyConfig
from autoopt.errors import CandidateBelowFloor
from autoopt.measure import measure
from autoopt.recipe import Recipe
from autoopt.resolve import baseline_recipe, make_step
from autoopt.screening import clopper_pearson_upper, judge, per_sample_scores, student_t_upper

LATENCY = LatencyConfig(warmup=1, runs=10, rounds=2)


def test_clopper_pearson_upper_bound_matches_known_values() -> None:
    # 0 successes of 10: the exact one-sided 95% bound is 1 - 0.05**(1/10).
    assert clopper_pearson_upper(0, 10, 0.05) == pytest.approx(1 - 0.05 ** (1 / 10))
    assert clopper_pearson_upper(10, 10, 0.05) == 1.0
    assert clopper_pearson_upper(80, 100, 0.001) > 0.88  # wide at 99.9%


def test_binomial_rule_rejects_a_candidate_at_the_floor_at_most_alpha_of_the_time() -> None:
    rng = np.random.default_rng(0)
    floor, alpha, n, draws = 0.97, 0.01, 100, 20_000
    correct = rng.random((draws, n)) < floor  # a candidate exactly at the floor
    rejected = sum(judge(row.astype(float), floor, alpha).rejects for row in correct[:4000])
    assert rejected / 4000 <= alpha
    # A clearly worse one (0.85) is rejected nearly always.
    bad = rng.random((500, n)) < 0.85
    assert np.mean([judge(row.astype(float), floor, alpha).rejects for row in bad]) > 0.9


def test_student_t_rule_keeps_its_rate_on_skewed_cosines() -> None:
    # Per-sample cosines as a student's look: most near 0.995, 5% of sentences far off at 0.7.
    # The mean is the floor exactly; the default alpha is 0.001.
    rng = np.random.default_rng(1)
    floor = 0.95 * 0.995 + 0.05 * 0.7
    rejected = 0
    draws = 5000
    for _ in range(draws):
        outlier = rng.random(100) < 0.05
        values = np.where(outlier, 0.7, 0.995 + rng.normal(0, 0.002, 100))
        rejected += judge(values, floor, 0.001).rejects
    assert rejected / draws < 0.01
    # A candidate at 0.90 on the same spread is rejected.
    values = np.where(rng.random(100) < 0.05, 0.6, 0.915 + rng.normal(0, 0.01, 100))
    assert judge(values, floor, 0.001).rejects


def test_student_t_bound_of_identical_scores_is_their_value() -> None:
    assert student_t_upper(np.full(50, 0.9), 0.001) == pytest.approx(0.9)


def test_per_sample_scores_average_to_the_metric(workload) -> None:
    from autoopt.measure import teacher_outputs

    part = workload.evaluation.take(40)
    teacher = teacher_outputs(workload)[:40]
    noisy = teacher + np.random.default_rng(0).normal(0, 3.0, teacher.shape).astype(np.float32)
    scores = per_sample_scores(workload, noisy, part, teacher)
    assert scores is not None and set(np.unique(scores)) <= {0.0, 1.0}
    whole = workload.metric(noisy, part, teacher)["accuracy"]
    assert np.mean(scores) == pytest.approx(whole)


class _Scrambled(torch.nn.Module):
    """The teacher with its logits rolled by one class: a confidently wrong candidate that
    still agrees with the teacher often enough to pass verification (min_agreement 0)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        keep = torch.rand(out.shape[0], generator=torch.Generator().manual_seed(0)) < 0.5
        return torch.where(keep[:, None], out, out.roll(1, dims=1))


def _eager(precision: str = "fp32") -> Recipe:
    return Recipe(
        precision=make_step(f"precision.{precision}"), backend=make_step("backend.torch_eager")
    )


def test_measure_stops_a_clearly_bad_candidate_before_timing(workload, tmp_path: Path) -> None:
    verify = VerifyConfig(min_agreement=0.0)
    artifact = TorchArtifact(_Scrambled(workload.model).eval())
    # A recipe that is not the baseline's (the baseline is never screened); its model here is
    # the scrambled one, about half right.
    recipe = Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step("backend.torch_eager"),
        pruning=make_step("pruning.unstructured", {"amount": 0.0}),
    )
    with pytest.raises(CandidateBelowFloor) as e:
        measure(artifact, recipe, workload, LATENCY, verify, tmp_path, floor=0.95)
    verdict = e.value.verdict
    assert verdict["rule"] == "clopper-pearson" and verdict["samples"] == 100
    assert verdict["score"] < 0.7 and verdict["bound"] < 0.95
    assert "below the floor 0.9500" in str(e.value)


def test_measure_never_rejects_the_baseline_early(workload, tmp_path: Path) -> None:
    # A floor no model could meet: the baseline is still measured in full.
    m = measure(
        TorchArtifact(workload.model), baseline_recipe(), workload, LATENCY, VerifyConfig(),
        tmp_path, floor=2.0,
    )  # fmt: skip
    assert m.metrics["accuracy"] > 0.9 and m.metrics["latency_runs"] == 10


def test_measure_keeps_a_good_candidate_and_can_be_switched_off(workload, tmp_path: Path) -> None:
    recipe = Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step("backend.torch_eager"),
        pruning=make_step("pruning.unstructured", {"amount": 0.0}),
    )
    floor = 0.95
    m = measure(TorchArtifact(workload.model), recipe, workload, LATENCY, VerifyConfig(),
                tmp_path, floor=floor)  # fmt: skip
    assert m.metrics["accuracy"] >= floor
    off = VerifyConfig(min_agreement=0.0, early_reject=False)
    bad = TorchArtifact(_Scrambled(workload.model).eval())
    m = measure(bad, recipe, workload, LATENCY, off, tmp_path, floor=floor)
    assert m.metrics["accuracy"] < floor  # measured in full, since early rejection is off
