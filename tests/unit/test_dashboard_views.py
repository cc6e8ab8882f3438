"""What the dashboard's pages compute from a study record: no server, no browser."""

from __future__ import annotations

import dataclasses

from test_select import BASE_ACC, baseline, study, trial  # tests/unit/test_select.py

from autoopt.dashboard import _trial_views as T
from autoopt.dashboard import _views as V
from autoopt.study.records import TrialRecord


def repeat_of(number: int, prior: TrialRecord) -> TrialRecord:
    return dataclasses.replace(prior, number=number, duplicate_of=prior.number, on_front=False)


ONNX = {"backend": {"key": "backend.onnxruntime", "config": {}}}


def rejected(number: int) -> TrialRecord:
    """Refused by a method's check: told PRUNED, with its recipe and reason."""
    return dataclasses.replace(
        trial(number, 0.0, 0.0, state="PRUNED", failure="no bf16 kernels"),
        status="rejected",
        failure_stage="check",
        recipe=ONNX,
    )


def failed(number: int) -> TrialRecord:
    return dataclasses.replace(trial(number, 0.0, 0.0, state="FAIL", failure="boom"), recipe=ONNX)


def test_a_repeat_is_its_own_category_not_feasible() -> None:
    first = trial(1, 0.975, 0.5, on_front=True)
    again = repeat_of(2, first)
    assert again.feasible  # it carries the measurement of trial 1...
    assert V.trial_category(again) == "repeat"  # ...but is not a second feasible point
    assert V.trial_category(first) == "front"


def test_contributions_count_rejected_apart_from_failed_and_skip_repeats() -> None:
    first = trial(1, 0.975, 0.5, on_front=True)
    record = study(
        baseline(),
        first,
        repeat_of(2, first),
        rejected(3),
        failed(4),
    )
    rows = {r["method"]: r for r in V.contributions(record, ["backend"])}
    onnx = rows["onnxruntime"]
    assert onnx["n"] == 3 and onnx["measured"] == 1  # trials 1, 3, 4: the repeat is trial 1
    assert onnx["failed"] == 1 and onnx["rejected"] == 1


def test_flat_gives_no_row_for_empty_hardware() -> None:
    assert T.flat("", {}) == []
    assert T.flat("", {"versions": {}, "cpu": "x"}) == [("cpu", "x")]


def test_metric_changes_read_as_words_and_never_as_an_inverted_ratio() -> None:
    assert T._change("latency_p50_ms@b64", 0.2, 0.72) == "3.60× faster"
    assert T._change("latency_p99_ms", 0.9, 0.3) == "3.00× slower"
    assert T._change("speedup@b64", 0.07, 1.0) == "14.29× slower"
    assert T._change("speedup", 5.12, 1.0) == "5.12× faster"
    assert T._change("size_ratio", 2.0, 1.0) == "2.00× smaller"
    assert T._change("accuracy", 0.97, BASE_ACC) == "-1.00 pts"
    # A metric without a better direction (a flag, a share, a workload's own) has no ratio.
    assert T._change("cpu_share", 0.07, 1.0) is None
    assert T._change("host_loaded", 1.0, 0.0) is None


def test_metric_rows_of_the_baseline_compare_nothing() -> None:
    base = baseline()
    record = study(base, trial(1, 0.975, 0.5))
    assert all(r["change"] is None for r in T.metric_rows(record, base))
    rows = {r["name"]: r for r in T.metric_rows(record, record.trial(1))}
    assert rows["latency_p50_ms"]["change"] == "2.00× faster"


def test_compare_rows_label_the_workloads_metric() -> None:
    record = study(baseline(), trial(1, 0.975, 0.5))
    record.metric_name = "fidelity"
    labels = [r["label"] for r in T.compare_rows(record, record.trials)]
    assert "fidelity change" in labels and "fidelity" in labels
    assert not any("accuracy" in label for label in labels)
