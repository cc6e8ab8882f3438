"""Per-group metrics, the worst group as the workload's metric, and the floor it sets."""

from __future__ import annotations

import numpy as np
import pytest

from autoopt.study.schema import derive, spec
from autoopt.workloads import Split, grouped_fidelity, neighbour_agreement


def _embeddings(n: int = 60, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim))


def test_neighbour_agreement_is_one_for_the_same_embeddings_and_falls_with_noise() -> None:
    x = _embeddings()
    assert np.all(neighbour_agreement(x, x, k=5) == 1.0)
    noisy = x + np.random.default_rng(1).normal(0, 1.0, x.shape)
    agreement = neighbour_agreement(noisy, x, k=5)
    assert agreement.shape == (60,) and 0.0 <= agreement.mean() < 0.9
    # Scaling an embedding changes no cosine, so no neighbour.
    assert np.all(neighbour_agreement(3.0 * x, x, k=5) == 1.0)


def test_grouped_fidelity_reports_each_group_and_makes_the_worst_the_metric() -> None:
    teacher = _embeddings(90)
    groups = np.array(["a"] * 30 + ["b"] * 30 + ["c"] * 30, dtype=object)
    outputs = teacher.copy()
    outputs[30:60] += np.random.default_rng(2).normal(0, 0.3, (30, 16))  # group b only
    split = Split((np.zeros((90, 1)),), groups=groups)
    m = grouped_fidelity(outputs, split, teacher)
    assert m["fidelity/a"] == pytest.approx(1.0) and m["fidelity/c"] == pytest.approx(1.0)
    assert m["fidelity"] == m["fidelity/b"] < 0.99
    assert m["fidelity_mean"] == pytest.approx((2 + m["fidelity/b"]) / 3)
    assert m["fidelity_worst_p5"] == m["fidelity_p5/b"] <= m["fidelity/b"]
    assert m["knn_agreement/a"] == 1.0 and m["knn_agreement/b"] < 1.0
    # The accuracy drop the constraint uses is the worst group's.
    base = grouped_fidelity(teacher, split, teacher)
    drop = derive({"accuracy": m["fidelity"]}, {"accuracy": base["fidelity"]}, relative=False)
    assert drop["accuracy_drop"] == pytest.approx(1.0 - m["fidelity/b"])


def test_grouped_fidelity_without_groups_is_the_overall_mean() -> None:
    teacher = _embeddings()
    outputs = teacher + 0.1
    m = grouped_fidelity(outputs, Split((np.zeros((60, 1)),)), teacher)
    assert m["fidelity"] == m["fidelity_mean"]
    assert not [k for k in m if "/" in k]


def test_split_groups_travel_with_take_and_change_the_fingerprint() -> None:
    x = (np.arange(12).reshape(6, 2),)
    plain = Split(x)
    grouped = Split(x, groups=np.array(list("aabbcc"), dtype=object))
    assert list(grouped.take(3).groups) == ["a", "a", "b"]
    assert plain.fingerprint() == Split(x).fingerprint()  # unchanged without groups
    assert grouped.fingerprint() != plain.fingerprint()


def test_group_metrics_are_labelled_after_the_workload_metric_and_group() -> None:
    assert spec("fidelity_p5/news", "fidelity").label == "fidelity, 5th percentile (news)"
    assert spec("fidelity_mean", "fidelity").label == "fidelity, overall mean"
    assert spec("knn_agreement/dialog", "fidelity").direction == "maximize"
    assert spec("latency_p50_ms@b64").label == "p50 latency (batch 64)"


def test_measured_accuracy_and_the_floor_are_the_worst_groups() -> None:
    """Through what a trial's measurement and its record do: ``score`` makes the worst
    group's fidelity the accuracy, and the recorder's constraint holds that one to the floor
    while the overall mean would pass it."""
    import dataclasses

    from autoopt.backends.torch_eager import TorchRunner
    from autoopt.config import AccuracyConstraint
    from autoopt.measure import score
    from autoopt.study.recorder import TrialRecorder
    from autoopt.testing import tiny_bert

    workload = tiny_bert(layers=3)
    groups = np.array(["short" if m.sum() <= 9 else "long" for m in workload.evaluation.inputs[1]],
                      dtype=object)  # fmt: skip
    assert set(groups) == {"short", "long"}
    workload = dataclasses.replace(
        workload, evaluation=dataclasses.replace(workload.evaluation, groups=groups)
    )
    baseline = score(TorchRunner(workload.model, threads=1), workload)
    assert baseline["accuracy"] == pytest.approx(1.0)
    student = workload.make_student({"keep": [0, 2]})
    m = score(TorchRunner(student, threads=1), workload)
    worst = min(m["fidelity/short"], m["fidelity/long"])
    assert m["accuracy"] == m["fidelity"] == worst < m["fidelity_mean"]
    m.update(derive(m, baseline, relative=False))
    # A floor between the worst group's drop and the overall mean's: the worst group fails it.
    top = baseline["accuracy"]
    assert m["accuracy_drop"] == pytest.approx(top - worst)

    def feasible(max_drop: float) -> bool:
        recorder = TrialRecorder(None, AccuracyConstraint(max_drop=max_drop), ["accuracy"])  # type: ignore[arg-type]
        return recorder.feasible(m)

    assert not feasible(((top - worst) + (top - m["fidelity_mean"])) / 2)
    assert feasible(top - worst + 1e-9)
