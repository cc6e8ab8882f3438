"""The one reader of a study: typed trial records that the CLI, dashboard, selection, report,
export and benchmarks share.

The study database is the single record of truth; these records are derived from it on each
read and never stored elsewhere. What a trial's attributes mean is declared in
:mod:`autoopt.study.schema`; :mod:`autoopt.study.recorder` is the one writer.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from autoopt.study import schema as S

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class TrialRecord:
    number: int
    state: str
    status: str
    is_baseline: bool
    recipe: dict[str, Any] | None
    recipe_str: str
    params: dict[str, Any]
    #: Measured and derived metrics (see :data:`autoopt.study.schema.METRICS`).
    metrics: dict[str, float]
    values: list[float] | None
    constraint: float | None
    feasible: bool
    on_front: bool = False
    failure_stage: str = ""
    failure_reason: str = ""
    stages: list[dict[str, Any]] = field(default_factory=list)
    runner: dict[str, Any] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    node_id: str = ""
    artifact_key: str = ""
    started: dt.datetime | None = None
    completed: dt.datetime | None = None
    #: Where it came from: a seed candidate's name, the trial it repeats, replaces or
    #: recombines.
    seed: str = ""
    duplicate_of: int | None = None
    requeued_from: int | None = None
    recombined: dict[str, int] | None = None
    run_id: str = ""
    retries: int = 0
    snapshot: str = ""
    user_attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.started and self.completed:
            return (self.completed - self.started).total_seconds()
        return None

    @property
    def is_repeat(self) -> bool:
        return self.duplicate_of is not None

    @property
    def host_loaded(self) -> bool:
        """Timed on a busy host (see :func:`autoopt.pairing.host_loaded`)."""
        return _flagged(self.metrics)

    @property
    def load_note(self) -> str:
        return load_note(self.metrics)

    def technique(self, family: str) -> str:
        """The method used for a family ('none' if skipped), e.g. technique('pruning')."""
        step = (self.recipe or {}).get(family)
        return step["key"].split(".", 1)[1] if step else "none"


def _flagged(metrics: Mapping[str, Any]) -> bool:
    # A frame row holds NaN where a trial has no flag (failed, or measured before flags).
    flag = metrics.get("host_loaded")
    return isinstance(flag, int | float) and math.isfinite(flag) and flag > 0


def load_note(metrics: Mapping[str, Any]) -> str:
    """``loaded (load 5.3, cpu 64%)`` for metrics timed on a busy host, else ``""``: the
    1-minute load average and the share of its threads' CPU time the timing process got."""
    if not _flagged(metrics):
        return ""
    parts = []
    if isinstance(load := metrics.get("load_avg_1m"), int | float) and math.isfinite(load):
        parts.append(f"load {load:.1f}")
    if isinstance(share := metrics.get("cpu_share"), int | float) and math.isfinite(share):
        parts.append(f"cpu {share:.0%}")
    return "loaded" + (f" ({', '.join(parts)})" if parts else "")


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def trial_record(t: optuna.trial.FrozenTrial) -> TrialRecord:
    ua = t.user_attrs
    names = ua.get(S.ATTR_METRIC_NAMES, [])
    metrics = {k: float(ua[k]) for k in names if isinstance(ua.get(k), int | float)}
    constraints = t.constraints
    values_c = (
        list(constraints.values()) if isinstance(constraints, dict) else list(constraints or [])
    )
    constraint = float(max(values_c)) if values_c else None
    complete = t.state == TrialState.COMPLETE
    values = list(t.values) if t.values is not None else None
    feasible = complete and (constraint is None or constraint <= 0.0)
    if values is not None and any(not math.isfinite(v) for v in values):
        feasible = False
    recombined = ua.get(S.ATTR_RECOMBINED)
    return TrialRecord(
        number=t.number,
        state=t.state.name,
        status=ua.get(S.ATTR_STATUS, t.state.name.lower()),
        is_baseline=bool(ua.get(S.ATTR_BASELINE, False)),
        recipe=ua.get(S.ATTR_RECIPE),
        recipe_str=ua.get(S.ATTR_RECIPE_STR, ""),
        params=dict(t.params),
        metrics=metrics,
        values=values,
        constraint=constraint,
        feasible=feasible,
        failure_stage=ua.get(S.ATTR_FAILURE_STAGE, ""),
        failure_reason=ua.get(S.ATTR_FAILURE_REASON, ""),
        stages=ua.get(S.ATTR_STAGES, []),
        runner=ua.get(S.ATTR_RUNNER, {}),
        hardware=ua.get(S.ATTR_HARDWARE, {}),
        node_id=ua.get(S.ATTR_NODE, ""),
        artifact_key=ua.get(S.ATTR_ARTIFACT, ""),
        started=t.datetime_start,
        completed=t.datetime_complete,
        seed=str(ua.get(S.ATTR_SEED) or ""),
        duplicate_of=_int_or_none(ua.get(S.ATTR_DUPLICATE_OF)),
        requeued_from=_int_or_none(ua.get(S.ATTR_REQUEUED_FROM)),
        recombined=dict(recombined) if isinstance(recombined, dict) else None,
        run_id=str(ua.get(S.ATTR_RUN) or ""),
        retries=int(ua.get(S.ATTR_RETRIES) or 0),
        snapshot=str(ua.get(S.ATTR_SNAPSHOT) or ""),
        user_attrs=dict(ua),
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@dataclass(frozen=True)
class AccuracyView:
    """The range of the metric a chart shows (:meth:`StudyRecord.accuracy_view`)."""

    low: float
    high: float
    #: Measured trials under ``low``, lowest first: left off the chart, marked on its edge.
    below: list[TrialRecord]
    floor: float | None = None


@dataclass
class StudyRecord:
    name: str
    storage: str
    directions: list[str]
    objectives: list[str]
    #: The workload's name for its metric (``accuracy`` in the records): every view shows it.
    metric_name: str
    workload: str
    constraint: dict[str, Any]
    trials: list[TrialRecord]
    user_attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def baseline(self) -> TrialRecord | None:
        for t in self.trials:
            if t.is_baseline and t.state == "COMPLETE":
                return t
        return None

    def trial(self, number: int) -> TrialRecord | None:
        for t in self.trials:
            if t.number == number:
                return t
        return None

    def front(self) -> list[TrialRecord]:
        """The feasible Pareto front, fastest first."""
        key = "latency_p50_ms"
        return sorted((t for t in self.trials if t.on_front), key=lambda t: t.metrics.get(key, 0))

    @property
    def workload_version(self) -> str:
        """The workload's version (teacher weights and data) the trials were measured with."""
        return str(self.user_attrs.get(S.STUDY_WORKLOAD_VERSION) or "")

    def label(self, metric: str) -> str:
        """How views name a metric: the workload's own name for ``accuracy``."""
        return S.spec(metric, self.metric_name).label

    @property
    def target(self) -> dict[str, Any]:
        """The hardware target the trials ran on: ``{"name", "device", "resources", "labels"}``.

        ``resources`` are the Ray resources a node had to offer (``{}``: any node, e.g. the
        local CPU).
        """
        target = self.user_attrs.get(S.STUDY_TARGET)
        if not isinstance(target, dict):
            target = {}
        return {
            "name": str(target.get("name") or "local"),
            "device": str(target.get("device") or "cpu"),
            "resources": dict(target.get("resources") or {}),
            "labels": dict(target.get("labels") or {}),
        }

    @property
    def accuracy_floor(self) -> float | None:
        from autoopt.config import AccuracyConstraint

        base = self.baseline
        if base is None or "max_drop" not in self.constraint:
            return None
        return AccuracyConstraint.model_validate(self.constraint).floor(base.metrics["accuracy"])

    def measured(self) -> list[TrialRecord]:
        """Trials with a measurement to plot (finite metric and p50 latency), each candidate
        once: a repeat carries the measurement of the trial it repeats."""
        return [
            t
            for t in self.trials
            if t.state == "COMPLETE"
            and not t.is_repeat
            and _finite(t.metrics.get("accuracy"))
            and _finite(t.metrics.get("latency_p50_ms"))
        ]

    def accuracy_view(self) -> AccuracyView | None:
        """The metric axis a chart should show: the feasible band and a margin below it.

        A collapsed trial (0.44 where the floor is 0.97) would otherwise stretch the axis so
        far that every trial worth comparing sits in its top few pixels. The view keeps the
        feasible band (from the best value down to the floor) and three bands below the floor,
        for the trials that miss it, and ends at the lowest trial it keeps; trials further
        down are listed in ``below`` for the chart to mark on its lower edge. When every
        measured trial fits in those four bands, nothing is left out.
        """
        measured = self.measured()
        if not measured:
            return None
        values = [t.metrics["accuracy"] for t in measured]
        floor = self.accuracy_floor
        high, low = max(values), min(values)
        if floor is None:
            return AccuracyView(low, high, [], floor)
        high = max(high, floor)
        band = max(high - floor, 1e-3)
        if high - low <= 4 * band:
            return AccuracyView(min(low, floor), high, [], floor)
        cut = floor - 3 * band
        below = sorted(
            (t for t in measured if t.metrics["accuracy"] < cut),
            key=lambda t: t.metrics["accuracy"],
        )
        # Down to the lowest trial kept (or the floor), not to the cut: no empty strip.
        kept = [v for v in values if v >= cut]
        return AccuracyView(min([*kept, floor]), high, below, floor)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def ratios(self, t: TrialRecord) -> dict[str, float]:
        """Speedup, size ratio and accuracy change relative to the baseline, as recorded when
        the trial was told (the baseline's own: 1, 1, 0)."""
        m = t.metrics
        out = {k: m[k] for k in ("speedup", "size_ratio") if k in m}
        base = self.baseline
        if base is None or not t.metrics:
            return {}
        out = {}
        b, m = base.metrics, t.metrics
        if m.get("paired_speedup"):
            # Timed beside the baseline under one load (what the controller recorded).
            out["speedup"] = m["paired_speedup"]
        elif m.get("latency_p50_ms"):
            out["speedup"] = b["latency_p50_ms"] / m["latency_p50_ms"]
        if m.get("size_mb"):
            out["size_ratio"] = b["size_mb"] / m["size_mb"]
        if "accuracy" in m:
            out["accuracy_change"] = m["accuracy"] - b["accuracy"]

        if "accuracy" in m and base is not None and "accuracy" in base.metrics:
            out["accuracy_change"] = m["accuracy"] - base.metrics["accuracy"]
        return out

    def frame(self, *, labelled: bool = False) -> pd.DataFrame:
        """Every trial as a row. ``labelled``: the workload's metric under its own name
        (``fidelity``, ``fidelity_drop``) instead of ``accuracy``, as tables and files show."""
        import pandas as pd

        rows = []
        for t in self.trials:
            row: dict[str, Any] = {
                "trial": t.number,
                "state": t.state,
                "status": t.status,
                "baseline": t.is_baseline,
                "feasible": t.feasible,
                "pareto": t.on_front,
                "duplicate_of": t.duplicate_of,
                "seed_candidate": t.seed or None,
                "recipe": t.recipe_str,
                "distillation": t.technique("distillation"),
                "pruning": t.technique("pruning"),
                "quantization": t.technique("quantization"),
                "precision": t.technique("precision"),
                "backend": t.technique("backend"),
            }
            row.update({k: t.metrics[k] for k in S.ordered(list(t.metrics))})
            if "accuracy_change" in (r := self.ratios(t)):
                row["accuracy_change"] = r["accuracy_change"]
            row["duration_s"] = t.duration_s
            row["failure_stage"] = t.failure_stage
            row["failure_reason"] = t.failure_reason
            row["node_id"] = t.node_id
            rows.append(row)
        frame = pd.DataFrame(rows)
        if labelled and self.metric_name != "accuracy":
            names = ("accuracy", "accuracy_drop", "accuracy_change")
            frame = frame.rename(
                columns={n: n.replace("accuracy", self.metric_name, 1) for n in names}
            )
        return frame


def study_record(study: optuna.Study, storage_url: str) -> StudyRecord:
    trials = [trial_record(t) for t in study.get_trials(deepcopy=False)]
    try:
        front_numbers = {t.number for t in study.best_trials}
    except (RuntimeError, ValueError):  # no complete trials yet
        front_numbers = set()
    for t in trials:
        # A repeat of an earlier trial's candidate carries that trial's numbers: the front
        # lists the candidate once, under the trial that measured it.
        t.on_front = t.number in front_numbers and t.feasible and not t.is_repeat
    ua = study.user_attrs
    return StudyRecord(
        name=study.study_name,
        storage=storage_url,
        directions=[d.name.lower() for d in study.directions],
        objectives=list(ua.get(S.STUDY_OBJECTIVES, [])),
        metric_name=str(ua.get(S.STUDY_METRIC) or "accuracy"),
        workload=str(ua.get(S.STUDY_WORKLOAD, "")),
        constraint=dict(ua.get(S.STUDY_CONSTRAINT, {})),
        trials=trials,
        user_attrs=dict(ua),
    )
