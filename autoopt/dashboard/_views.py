"""What the pages show, computed from the public read-side records; no web framework here.

Everything returned is plain JSON-ready data: non-finite floats (a metric the tracer could not
read) become ``None``, because browsers reject ``NaN`` in JSON.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

from autoopt.plugins import FAMILIES
from autoopt.study import schema as S

if TYPE_CHECKING:
    from autoopt.api import StudySummary
    from autoopt.study.records import StudyRecord, TrialRecord


def lower_is_better(metric: str) -> bool:
    if metric == "duration_s":
        return True
    return S.spec(metric).direction == "minimize"


def num(x: Any) -> float | None:
    """A finite float, or None (for NaN, infinities, missing values and non-numbers)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def clean(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    return obj


def target_label(target: dict[str, Any]) -> str:
    """A target as ``api.study_target`` gives it, in a few words: ``gpu (cuda, GPU=1)``,
    ``local``."""
    name = str(target.get("name") or "local")
    needs = {**(target.get("resources") or {}), **(target.get("labels") or {})}
    if target.get("device", "cpu") != "cpu":
        needs = {"device": target["device"], **needs}
    if not needs:
        return name
    inner = ", ".join(
        f"{k}={v:g}" if isinstance(v, int | float) else f"{k}={v}"
        for k, v in sorted(needs.items())
    )
    return f"{name} ({inner})"


def families(record: StudyRecord) -> list[str]:
    seen = {f for t in record.trials for f in (t.recipe or {})}
    return [f for f in FAMILIES if f in seen or f in ("precision", "backend")] + sorted(
        seen - set(FAMILIES)
    )


#: Optuna's state names as people read them here (a refused candidate is told PRUNED).
STATE_LABELS = {
    "COMPLETE": "complete",
    "FAIL": "failed",
    "PRUNED": "rejected",
    "RUNNING": "running",
    "WAITING": "queued",
}


def trial_category(t: TrialRecord) -> str:
    """How the Pareto chart draws a trial: baseline, front, feasible, infeasible; or, with no
    measurement of its own to plot (listed beside the chart), repeat, failed, rejected,
    running, queued."""
    if t.state == "RUNNING":
        return "running"
    if t.state == "WAITING":
        return "queued"
    if t.state == "PRUNED" or t.status == "rejected":
        return "rejected"
    if t.state != "COMPLETE" or num(t.metrics.get("latency_p50_ms")) is None:
        return "failed"
    if t.is_repeat:
        # Told the measurement of the trial it repeats: one candidate is one point.
        return "repeat"
    if t.is_baseline:
        return "baseline"
    if t.on_front:
        return "front"
    return "feasible" if t.feasible else "infeasible"


def _iso(d: Any) -> str | None:
    return d.isoformat(timespec="seconds") if d is not None else None


# ---- studies page ------------------------------------------------------------------------
def study_row(
    summary: StudySummary, target: dict[str, Any], record: StudyRecord
) -> dict[str, Any]:
    return clean(
        {
            # The baseline is always feasible; say so when it is the only feasible trial.
            "baseline_only": record.baseline is not None
            and not any(
                t.feasible and not t.is_baseline and not t.is_repeat for t in record.trials
            ),
            "name": summary.name,
            "workload": summary.workload,
            "metric": summary.metric_name,
            "target": target_label(target),
            "n_trials": summary.n_trials,
            "counts": dict(summary.counts),
            "running": summary.counts.get("RUNNING", 0),
            "best_speedup": summary.best_speedup,
            "last_activity": _iso(summary.last_activity),
        }
    )


# ---- study page --------------------------------------------------------------------------
def trial_row(record: StudyRecord, t: TrialRecord, fams: list[str]) -> dict[str, Any]:
    m, r = t.metrics, record.ratios(t)
    return {
        "n": t.number,
        "state": t.state,
        "status": t.status,
        "cat": trial_category(t),
        "base": t.is_baseline,
        "feas": t.feasible,
        "front": t.on_front,
        "repeat_of": t.duplicate_of,
        "recipe": t.recipe_str,
        "tech": [t.technique(f) for f in fams],
        "acc": num(m.get("accuracy")),
        "p50": num(m.get("latency_p50_ms")),
        "p90": num(m.get("latency_p90_ms")),
        "size": num(m.get("size_mb")),
        "speedup": num(r.get("speedup")),
        # Timed on a busy host: the table marks it, with the load average.
        "loaded": t.load_note or None,
        "load": num(m.get("load_avg_1m")),
        "dacc": num(r.get("accuracy_change")),
        "dur": num(t.duration_s),
        "stage": t.failure_stage,
        "reason": t.failure_reason[:300],
        "when": _iso(t.completed or t.started),
    }


def hypervolume(points: list[list[float]]) -> float:
    """Volume dominated by ``points`` (every coordinate a gain > 0, larger is better) and
    bounded by the origin; exact, by slicing along the last axis (fronts here are small)."""
    pts = [p for p in points if all(v > 0 for v in p)]
    if not pts:
        return 0.0
    if len(pts[0]) == 1:
        return max(p[0] for p in pts)
    pts.sort(key=lambda p: p[-1], reverse=True)
    volume, prev = 0.0, 0.0
    # Walk up from the origin: the slab between two consecutive last-axis levels is dominated
    # by every point at least that high in the last axis.
    levels = sorted({p[-1] for p in pts})
    for level in levels:
        above = [p[:-1] for p in pts if p[-1] >= level]
        volume += hypervolume(above) * (level - prev)
        prev = level
    return volume


def progress(record: StudyRecord) -> dict[str, Any]:
    """Hypervolume of the feasible trials and the best feasible speedup, after each trial.

    The hypervolume is measured in gains relative to the baseline: an objective the study
    maximises counts from the accuracy floor (or the baseline's value) upward, one it
    minimises from the baseline's value downward, each divided by the baseline's value; so a
    trial that is no better than the baseline on some objective adds nothing.
    """
    base = record.baseline
    numbers = [t.number for t in record.trials]
    best: list[float | None] = []
    best_so_far: float | None = None
    for t in record.trials:
        s = num(record.ratios(t).get("speedup")) if t.feasible else None
        if s is not None and (best_so_far is None or s > best_so_far):
            best_so_far = s
        best.append(best_so_far)
    hv: list[float | None] = [None] * len(numbers)
    if base is not None and base.values and len(base.values) == len(record.directions):
        refs = list(base.values)
        objectives = record.objectives or []
        for i, direction in enumerate(record.directions):
            floor = record.accuracy_floor
            if (
                direction == "maximize"
                and floor is not None
                and i < len(objectives)
                and objectives[i] == "accuracy"
            ):
                refs[i] = floor
        scale = [abs(v) or 1.0 for v in base.values]
        gains: list[list[float]] = []
        current = 0.0
        for i, t in enumerate(record.trials):
            if t.feasible and t.values and all(num(v) is not None for v in t.values):
                g = [
                    (v - ref) / s if d == "maximize" else (ref - v) / s
                    for v, ref, s, d in zip(t.values, refs, scale, record.directions, strict=True)
                ]
                if all(x > 0 for x in g):
                    gains.append(g)
                    gains = _nondominated(gains)
                    current = hypervolume([list(p) for p in gains])
            hv[i] = current
    return {"trial": numbers, "hypervolume": hv, "best_speedup": best}


def _nondominated(points: list[list[float]]) -> list[list[float]]:
    return [
        p
        for p in points
        if not any(q != p and all(a >= b for a, b in zip(q, p, strict=True)) for q in points)
    ]


def contributions(record: StudyRecord, fams: list[str]) -> list[dict[str, Any]]:
    """Per technique choice: how many trials used it, how many were feasible, and the median
    speedup and accuracy change of the measured ones (what each family buys and costs)."""
    out = []
    for family in fams:
        groups: dict[str, list[TrialRecord]] = {}
        for t in record.trials:
            # A repeat is its candidate's earlier trial again: counting it would weigh that
            # candidate twice in the medians.
            if not t.is_baseline and not t.is_repeat and t.state not in ("RUNNING", "WAITING"):
                groups.setdefault(t.technique(family), []).append(t)
        for method, trials in sorted(groups.items()):
            measured = [record.ratios(t) for t in trials if t.state == "COMPLETE"]
            speed = [x for r in measured if (x := num(r.get("speedup"))) is not None]
            dacc = [x for r in measured if (x := num(r.get("accuracy_change"))) is not None]
            feasible_speed = [
                x
                for t in trials
                if t.feasible and (x := num(record.ratios(t).get("speedup"))) is not None
            ]
            out.append(
                {
                    "family": family,
                    "method": method,
                    "n": len(trials),
                    "measured": len(measured),
                    "failed": sum(t.state == "FAIL" for t in trials),
                    # Refused before anything ran (told PRUNED): what every other view calls
                    # rejected.
                    "rejected": sum(t.state == "PRUNED" for t in trials),
                    "feasible": sum(t.feasible for t in trials),
                    "median_speedup": statistics.median(speed) if speed else None,
                    "median_dacc": statistics.median(dacc) if dacc else None,
                    "best_feasible_speedup": max(feasible_speed, default=None),
                }
            )
    return out


def axis_view(record: StudyRecord) -> dict[str, Any] | None:
    """The metric range the chart shows, and the trials it leaves below it (see
    :meth:`StudyRecord.accuracy_view`)."""
    view = record.accuracy_view()
    if view is None:
        return None
    return {
        "low": view.low,
        "high": view.high,
        "below": [t.number for t in view.below],
    }


def study_payload(record: StudyRecord, target: dict[str, Any]) -> dict[str, Any]:
    fams = families(record)
    base = record.baseline
    counts = record.counts()
    return clean(
        {
            "name": record.name,
            "workload": record.workload,
            "metric": record.metric_name,
            "objectives": record.objectives,
            "directions": record.directions,
            "target": target_label(target),
            "constraint": record.constraint,
            "floor": record.accuracy_floor,
            "baseline": None
            if base is None
            else {
                "n": base.number,
                "acc": base.metrics.get("accuracy"),
                "p50": base.metrics.get("latency_p50_ms"),
                "size": base.metrics.get("size_mb"),
            },
            "counts": counts,
            "n_trials": len(record.trials),
            "running": counts.get("RUNNING", 0),
            "n_feasible": sum(
                t.feasible and not t.is_baseline and not t.is_repeat for t in record.trials
            ),
            "n_repeats": sum(t.is_repeat for t in record.trials),
            "view": axis_view(record),
            "families": fams,
            "trials": [trial_row(record, t, fams) for t in record.trials],
            "progress": progress(record),
            "contributions": contributions(record, fams),
        }
    )
