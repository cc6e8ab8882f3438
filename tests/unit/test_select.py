"""Selection policies on hand-made study records: no database, no Ray, no models."""

from __future__ import annotations

import math

import pytest

import autoopt
from autoopt.errors import ConfigError
from autoopt.study.records import StudyRecord, TrialRecord
from autoopt.study.selection import (
    Policy,
    fastest,
    knee,
    make_policy,
    most_accurate,
    select,
    smallest,
)

BASE_ACC = 0.98
MAX_DROP = 0.02


def trial(
    number: int,
    accuracy: float,
    p50: float,
    size: float = 1.0,
    *,
    state: str = "COMPLETE",
    baseline: bool = False,
    feasible: bool | None = None,
    on_front: bool = False,
    failure: str = "",
) -> TrialRecord:
    complete = state == "COMPLETE"
    metrics = (
        {
            "accuracy": accuracy,
            "latency_p50_ms": p50,
            "latency_p90_ms": p50 * 1.2,
            "latency_p99_ms": p50 * 1.5,
            "size_mb": size,
        }
        if complete
        else {}
    )
    drop = BASE_ACC - accuracy
    if feasible is None:
        feasible = complete and drop - MAX_DROP <= 1e-12
    return TrialRecord(
        number=number,
        state=state,
        status=state.lower(),
        is_baseline=baseline,
        recipe={"backend": {"key": "backend.onnxruntime", "config": {}}} if complete else None,
        recipe_str=f"recipe-{number}",
        params={},
        metrics=metrics,
        values=[accuracy, p50] if complete else None,
        constraint=drop - MAX_DROP if complete else None,
        feasible=feasible,
        on_front=on_front,
        failure_stage="build" if failure else "",
        failure_reason=failure,
    )


def study(*trials: TrialRecord, name: str = "s") -> StudyRecord:
    return StudyRecord(
        name=name,
        storage="sqlite:///:memory:",
        directions=["maximize", "minimize"],
        objectives=["accuracy", "latency_p50_ms"],
        metric_name="accuracy",
        workload="digits_cnn",
        constraint={"max_drop": MAX_DROP, "mode": "absolute"},
        trials=list(trials),
    )


def baseline() -> TrialRecord:
    return trial(0, BASE_ACC, 1.0, 4.0, baseline=True)


@pytest.fixture()
def sweep() -> StudyRecord:
    """Baseline + a spread of candidates; trial 5 is infeasible but fastest."""
    return study(
        baseline(),
        trial(1, 0.975, 0.50, 2.0, on_front=True),
        trial(2, 0.970, 0.30, 1.5, on_front=True),
        trial(3, 0.965, 0.20, 1.0, on_front=True),
        trial(4, 0.962, 0.18, 0.8, on_front=True),
        trial(5, 0.900, 0.05, 0.3),
        trial(6, 0.0, 0.0, state="FAIL", failure="boom"),
    )


# ---- fastest ------------------------------------------------------------------------------


def test_fastest_picks_lowest_latency_within_study_constraint(sweep: StudyRecord) -> None:
    sel = fastest(sweep)
    assert sel.found and sel.trial.number == 4
    assert sel.candidates == 5  # baseline + 1..4
    assert "study's accuracy constraint" in sel.reason


def test_fastest_with_absolute_drop_is_stricter(sweep: StudyRecord) -> None:
    assert fastest(sweep, max_drop=0.01).trial.number == 2  # 0.98 - 0.97 = 0.01 (float slack)
    assert fastest(sweep, max_drop=0.0).trial.number == 0  # only the baseline loses nothing


def test_fastest_with_relative_drop(sweep: StudyRecord) -> None:
    # 1% of 0.98 = 0.0098: trial 2 (drop 0.010) misses, trial 1 (0.005) meets.
    assert fastest(sweep, max_drop=0.01, relative=True).trial.number == 1
    # A loose drop admits the study-infeasible trial 5.
    assert fastest(sweep, max_drop=0.1, relative=True).trial.number == 5


def test_fastest_on_p99(sweep: StudyRecord) -> None:
    sel = fastest(sweep, latency_metric="latency_p99_ms")
    assert sel.trial.number == 4 and "latency_p99_ms" in sel.reason


def test_fastest_tie_prefers_more_accurate() -> None:
    s = study(baseline(), trial(1, 0.970, 0.2), trial(2, 0.975, 0.2))
    assert fastest(s).trial.number == 2


def test_fastest_when_none_feasible_shows_most_accurate_as_nearest() -> None:
    s = study(
        trial(0, BASE_ACC, 1.0, baseline=True, feasible=False),  # e.g. NaN constraint
        trial(1, 0.95, 0.5),
        trial(2, 0.90, 0.2),
    )
    sel = fastest(s)
    assert not sel.found
    assert "no trial of study 's' meets" in sel.reason
    assert [n.trial.number for n in sel.less_accurate] == [0, 1, 2]
    assert sel.slower == ()
    assert "below the floor 0.9600" in sel.less_accurate[1].misses
    assert "nearest: trial 0" in sel.summary()


def test_fastest_with_max_drop_needs_baseline() -> None:
    s = study(trial(1, 0.97, 0.5), trial(2, 0.96, 0.3))
    sel = fastest(s, max_drop=0.01)
    assert not sel.found and "no complete baseline" in sel.reason
    # Without max_drop the recorded feasibility still works.
    assert fastest(s).trial.number == 2


# ---- latency-budget policies --------------------------------------------------------------


def test_smallest_within_latency_budget(sweep: StudyRecord) -> None:
    sel = smallest(sweep, max_latency_ms=0.35)
    assert sel.trial.number == 4  # trials 2, 3, 4 fit; 4 is 0.8 MB (5 is infeasible)
    assert smallest(sweep, max_latency_ms=0.25, max_drop=0.016).trial.number == 3


def test_most_accurate_within_latency_budget(sweep: StudyRecord) -> None:
    assert most_accurate(sweep, max_latency_ms=0.35).trial.number == 2
    assert most_accurate(sweep, max_latency_ms=10).trial.number == 0


def test_budget_policy_with_nothing_meeting_shows_both_sides(sweep: StudyRecord) -> None:
    sel = smallest(sweep, max_latency_ms=0.1)
    assert not sel.found
    # Slower side: feasible but over budget, the fastest first.
    assert [n.trial.number for n in sel.slower] == [4, 3, 2]
    assert "0.08 ms over the 0.1 ms budget" in sel.slower[0].misses
    # Less accurate side: within the budget but below the floor.
    assert [n.trial.number for n in sel.less_accurate] == [5]
    assert "below the floor 0.9600" in sel.less_accurate[0].misses
    text = sel.summary()
    assert "trial 4" in text and "trial 5" in text
    payload = sel.to_dict()
    assert payload["found"] is False and payload["slower"][0]["trial"] == 4


def test_budget_policy_when_every_trial_misses_both_bounds() -> None:
    s = study(
        trial(0, BASE_ACC, 1.0, baseline=True, feasible=False),
        trial(1, 0.90, 0.6, feasible=False),
    )
    sel = most_accurate(s, max_latency_ms=0.5)
    assert not sel.found
    assert [n.trial.number for n in sel.slower] == [1, 0]
    assert [n.trial.number for n in sel.less_accurate] == [0, 1]
    assert " and " in sel.slower[0].misses


# ---- knee ---------------------------------------------------------------------------------


def test_knee_of_convex_front_is_the_bend() -> None:
    s = study(
        baseline(),
        trial(1, 0.980, 1.00, on_front=True),
        trial(2, 0.975, 0.30, on_front=True),  # the bend: almost all speed, little accuracy lost
        trial(3, 0.965, 0.25, on_front=True),
        trial(4, 0.960, 0.22, on_front=True),
    )
    sel = knee(s)
    assert sel.trial.number == 2
    assert "farthest from the line joining its extremes" in sel.reason
    assert sel.candidates == 4


def test_knee_with_one_or_two_points_uses_ideal_point() -> None:
    one = study(baseline(), trial(1, 0.97, 0.3, on_front=True))
    assert knee(one).trial.number == 1
    two = study(baseline(), trial(1, 0.98, 1.0, on_front=True), trial(2, 0.97, 0.2, on_front=True))
    sel = knee(two)  # no knee on two points: a tie, which goes to the faster trial
    assert sel.trial.number == 2
    assert "nearest the ideal point (a tie of 2: the fastest)" in sel.reason


def test_knee_when_front_empty() -> None:
    s = study(trial(0, BASE_ACC, 1.0, baseline=True, feasible=False), trial(1, 0.5, 0.1))
    sel = knee(s)
    assert not sel.found and "front is empty" in sel.reason
    assert [n.trial.number for n in sel.less_accurate] == [0, 1]


# ---- named edge cases ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [
        make_policy("fastest"),
        make_policy("smallest", max_latency_ms=1.0),
        make_policy("most-accurate", max_latency_ms=1.0),
        make_policy("knee"),
    ],
    ids=lambda p: p.name,
)
def test_policy_with_no_trials_says_so(policy: Policy) -> None:
    sel = select(study(), policy)
    assert not sel.found and "has no trials yet" in sel.reason
    assert sel.summary()


@pytest.mark.parametrize("name", ["fastest", "knee"])
def test_policy_with_all_failed_reports_last_failure(name: str) -> None:
    s = study(
        trial(0, 0, 0, state="FAIL", failure="teacher crashed"),
        trial(1, 0, 0, state="FAIL", failure="out of memory"),
    )
    sel = select(s, make_policy(name))
    assert not sel.found
    assert "no complete trial (2 fail)" in sel.reason and "out of memory" in sel.reason


def test_nan_metrics_are_never_chosen() -> None:
    nan = trial(1, 0.975, math.nan, on_front=False)
    s = study(baseline(), nan, trial(2, 0.97, 0.4, on_front=True))
    assert fastest(s).trial.number == 2
    only_nan = study(trial(1, math.nan, math.nan, feasible=False))
    sel = fastest(only_nan)
    assert not sel.found and "finite" in sel.reason


def test_running_trials_are_ignored(sweep: StudyRecord) -> None:
    sweep.trials.append(trial(7, 0.99, 0.01, state="RUNNING"))
    assert fastest(sweep).trial.number == 4


# ---- policy parsing -----------------------------------------------------------------------


def test_make_policy_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown policy 'fastes' \(did you mean 'fastest'\?\)"):
        make_policy("fastes")


def test_make_policy_accepts_underscored_name() -> None:
    assert make_policy("most_accurate", max_latency_ms=1).name == "most-accurate"


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("smallest", {}, "needs a latency budget"),
        ("most-accurate", {"max_drop": 0.01}, "needs a latency budget"),
        ("fastest", {"max_latency_ms": 1.0}, "takes no latency budget"),
        ("knee", {"max_drop": 0.01}, "takes no options"),
        ("fastest", {"relative": True}, "'relative' needs 'max_drop'"),
        ("fastest", {"max_drop": -0.1}, "max_drop"),
        ("smallest", {"max_latency_ms": 0}, "max_latency_ms"),
        ("fastest", {"latency_metric": "p50"}, "latency_metric"),
    ],
)
def test_make_policy_rejects_bad_options(name: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        make_policy(name, **options)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"--policy {name}")


def test_public_api_exposes_select_export_and_load() -> None:
    import autoopt.study.selection

    assert callable(autoopt.select) and callable(autoopt.export) and callable(autoopt.load)
    assert autoopt.study.selection.Policy is Policy
    assert {"select", "export", "load"} <= set(autoopt.__all__)


def test_api_select_on_record_with_keywords(sweep: StudyRecord) -> None:
    sel = autoopt.select(sweep, policy="smallest", max_latency_ms=0.35)
    assert sel.trial.number == 4
    with pytest.raises(ConfigError):
        autoopt.select(sweep, policy=make_policy("knee"), max_drop=0.1)


# ---- repeats of a measured candidate ----------------------------------------------------


def repeat_of(number: int, prior: TrialRecord) -> TrialRecord:
    """A trial told ``prior``'s measurement, as the controller tells a repeated candidate."""
    import dataclasses

    return dataclasses.replace(prior, number=number, duplicate_of=prior.number, on_front=False)


def test_repeats_are_neither_counted_nor_listed_twice() -> None:
    """TPE proposes a measured candidate again: `best` counts it once and never lists it
    among the nearest trials more than once."""
    slow = trial(1, 0.975, 0.50, on_front=True)
    lossy = trial(2, 0.90, 0.05)
    record = study(baseline(), slow, lossy, repeat_of(3, slow), repeat_of(4, lossy))
    record.trials.append(repeat_of(5, lossy))
    chosen = fastest(record)
    assert chosen.trial.number == 1 and chosen.candidates == 2  # baseline + trial 1
    assert "best of 2 trial(s)" in chosen.reason
    missed = most_accurate(record, max_latency_ms=0.1)
    assert [n.trial.number for n in missed.less_accurate] == [2]


def test_selection_labels_the_workloads_metric(sweep: StudyRecord) -> None:
    sweep.metric_name = "fidelity"
    assert fastest(sweep).metric_name == "fidelity"
    assert "fidelity" in knee(sweep).reason and "accuracy" not in knee(sweep).reason


# ---- the chart's metric axis ----------------------------------------------------------------


def test_accuracy_view_leaves_a_collapsed_trial_below_the_feasible_band() -> None:
    collapsed = trial(3, 0.44, 0.3)
    record = study(baseline(), trial(1, 0.975, 0.5, on_front=True), trial(2, 0.95, 0.2), collapsed)
    view = record.accuracy_view()
    floor = BASE_ACC - MAX_DROP
    assert view.floor == pytest.approx(floor) and view.high == pytest.approx(BASE_ACC)
    # Three feasible bands below the floor (down to 0.90) stay in view, for the trials that
    # miss it; the view ends at the lowest of them (0.95), the collapsed one is left below.
    assert view.low == pytest.approx(0.95)
    assert [t.number for t in view.below] == [3]


def test_accuracy_view_keeps_every_trial_when_they_fit() -> None:
    record = study(baseline(), trial(1, 0.975, 0.5, on_front=True), trial(2, 0.93, 0.2))
    view = record.accuracy_view()
    assert view.below == [] and view.low == pytest.approx(0.93)


def test_accuracy_view_ignores_repeats_and_unmeasured_trials() -> None:
    collapsed = trial(2, 0.3, 0.2)
    record = study(baseline(), trial(1, 0.975, 0.5), collapsed, repeat_of(3, collapsed))
    record.trials.append(trial(4, 0.0, 0.0, state="FAIL", failure="boom"))
    assert [t.number for t in record.accuracy_view().below] == [2]
    assert study().accuracy_view() is None
