"""Choosing one trial of a study: selection policies as small pure functions.

Every policy reads a :class:`~autoopt.study.records.StudyRecord` and returns a
:class:`Selection`; none touches the database or builds anything. A policy is an accuracy
bound (the study's own constraint unless ``max_drop`` is given), an optional latency budget,
and what to optimize among the trials that meet both:

============== ============================ ================ ============================
policy         accuracy bound               latency budget   chooses
============== ============================ ================ ============================
fastest        ``max_drop`` or the study's  --               the lowest latency
smallest       ``max_drop`` or the study's  required         the smallest ``size_mb``
most-accurate  ``max_drop`` or the study's  required         the highest accuracy
knee           the study's (its front)      --               the knee of the feasible front
============== ============================ ================ ============================

When no trial meets a policy, the selection says so and carries the nearest trials on each
side of it: those that meet the accuracy bound but miss the latency budget (``slower``) and
those that meet the budget but miss the accuracy bound (``less_accurate``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from autoopt.study.knee_point import knee_index, scale
from autoopt.study.policy import (
    LATENCY_METRICS,
    POLICIES,
    LatencyMetric,
    Policy,
    PolicyName,
    make_policy,
)
from autoopt.study.records import StudyRecord, TrialRecord

#: How many trials on each side a selection that found nothing shows.
NEAREST = 3
#: Slack for comparing recorded floats with a bound (0.99 - 0.98 > 0.01 in binary floats).
_EPS = 1e-9


@dataclass(frozen=True)
class Near:
    """A trial that just misses the policy, and what it misses by."""

    trial: TrialRecord
    misses: str

    def to_dict(self) -> dict[str, Any]:
        return {**_trial_summary(self.trial), "misses": self.misses}


@dataclass(frozen=True)
class Selection:
    """What a policy chose from a study, or why nothing and which trials came nearest."""

    study: str
    policy: Policy
    trial: TrialRecord | None
    reason: str
    #: Meet the accuracy bound but miss the latency budget; the fastest of them first.
    slower: tuple[Near, ...] = ()
    #: Meet the latency budget but miss the accuracy bound; the most accurate first.
    less_accurate: tuple[Near, ...] = ()
    #: Trials that met the policy (the chosen one among them).
    candidates: int = 0
    #: The workload's name for its metric (``accuracy`` in the records), as views label it.
    metric_name: str = "accuracy"

    @property
    def found(self) -> bool:
        return self.trial is not None

    def nearest(self) -> list[Near]:
        return [*self.slower, *self.less_accurate]

    def summary(self) -> str:
        """One line: the chosen trial, or that none met the policy and the nearest ones."""
        if self.trial is not None:
            return f"trial {self.trial.number}: {self.reason}"
        near = "; ".join(f"trial {n.trial.number} ({n.misses})" for n in self.nearest())
        return f"{self.reason}" + (f"; nearest: {near}" if near else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "metric_name": self.metric_name,
            "policy": self.policy.model_dump(),
            "found": self.found,
            "reason": self.reason,
            "trial": _trial_summary(self.trial) if self.trial else None,
            "candidates": self.candidates,
            "slower": [n.to_dict() for n in self.slower],
            "less_accurate": [n.to_dict() for n in self.less_accurate],
        }


def _trial_summary(t: TrialRecord) -> dict[str, Any]:
    keys = ("accuracy", *LATENCY_METRICS, "size_mb")
    return {
        "trial": t.number,
        "feasible": t.feasible,
        "pareto": t.on_front,
        "recipe": t.recipe_str,
        **{k: t.metrics[k] for k in keys if k in t.metrics},
    }


# ---- the policies -----------------------------------------------------------------------


def fastest(
    study: StudyRecord,
    *,
    max_drop: float | None = None,
    relative: bool = False,
    latency_metric: LatencyMetric = "latency_p50_ms",
    nearest: int = NEAREST,
) -> Selection:
    """The lowest-latency trial whose accuracy drop is within ``max_drop`` (or the study's)."""
    policy = make_policy(
        "fastest", max_drop=max_drop, relative=relative, latency_metric=latency_metric
    )
    return select(study, policy, nearest=nearest)


def smallest(
    study: StudyRecord,
    *,
    max_latency_ms: float,
    max_drop: float | None = None,
    relative: bool = False,
    latency_metric: LatencyMetric = "latency_p50_ms",
    nearest: int = NEAREST,
) -> Selection:
    """The smallest trial (``size_mb``) within the latency budget and the accuracy bound."""
    policy = make_policy(
        "smallest",
        max_latency_ms=max_latency_ms,
        max_drop=max_drop,
        relative=relative,
        latency_metric=latency_metric,
    )
    return select(study, policy, nearest=nearest)


def most_accurate(
    study: StudyRecord,
    *,
    max_latency_ms: float,
    max_drop: float | None = None,
    relative: bool = False,
    latency_metric: LatencyMetric = "latency_p50_ms",
    nearest: int = NEAREST,
) -> Selection:
    """The most accurate trial within the latency budget and the accuracy bound."""
    policy = make_policy(
        "most-accurate",
        max_latency_ms=max_latency_ms,
        max_drop=max_drop,
        relative=relative,
        latency_metric=latency_metric,
    )
    return select(study, policy, nearest=nearest)


def knee(study: StudyRecord, *, nearest: int = NEAREST) -> Selection:
    """The knee of the study's feasible Pareto front (see :func:`_knee`)."""
    return _named(study, _knee(study, nearest=nearest))


def _named(study: StudyRecord, selection: Selection) -> Selection:
    return dataclasses.replace(selection, metric_name=study.metric_name)


def _knee(study: StudyRecord, *, nearest: int = NEAREST) -> Selection:
    """The knee of the study's feasible Pareto front.

    Objectives are scaled to [0, 1] over the front (0 = best). With two objectives and at
    least three points, the knee is the point farthest on the good side of the line joining
    the front's two extremes; otherwise (or if no point lies on that side) the point nearest
    the ideal corner. Ties (e.g. a two-point front, which has no knee) go to the faster trial:
    every point of the front is feasible, and speed is what the sweep is for.
    """
    policy = Policy(name="knee")
    empty = _empty_reason(study)
    if empty:
        return Selection(study.name, policy, None, empty)
    objectives = list(study.objectives or ["accuracy", "latency_p50_ms"])
    directions = study.directions or ["maximize", "minimize"]
    if len(directions) != len(objectives):
        from autoopt.config import OBJECTIVE_DIRECTIONS

        directions = [OBJECTIVE_DIRECTIONS.get(o, "minimize") for o in objectives]
    front = [t for t in study.front() if _finite(t, objectives)]
    if not front:
        pool = [t for t in _complete(study) if _finite(t, ["accuracy"])]
        below = sorted(pool, key=lambda t: (-_acc(t), t.number))[:nearest]
        return Selection(
            study.name,
            policy,
            None,
            f"no trial of study '{study.name}' meets {policy.accuracy_bound(study)}, so its "
            "feasible front is empty",
            less_accurate=tuple(Near(t, _accuracy_miss(study, policy, t)) for t in below),
        )
    scaled = scale([[t.metrics[o] for t in front] for o in objectives], directions)
    faster = [(t.metrics.get("latency_p50_ms", math.inf), t.number) for t in front]
    index, how = knee_index(scaled, faster)
    chosen = front[index]
    names = [study.metric_name if o == "accuracy" else o for o in objectives]
    metric_text = ", ".join(
        f"{n} {chosen.metrics[o]:.4g}" for n, o in zip(names, objectives, strict=True)
    )
    return Selection(
        study.name,
        policy,
        chosen,
        f"knee of the {len(front)}-trial feasible front over ({', '.join(names)}): {how}; "
        f"{metric_text}",
        candidates=len(front),
    )


def select(study: StudyRecord, policy: Policy, *, nearest: int = NEAREST) -> Selection:
    """Apply ``policy`` to ``study``."""
    if policy.name == "knee":
        return knee(study, nearest=nearest)
    order = _ORDER[policy.name](policy.latency_metric)
    return _named(study, _bounded(study, policy, order, nearest))


_ORDER: dict[str, Callable[[str], Callable[[TrialRecord], tuple[Any, ...]]]] = {
    "fastest": lambda lat: lambda t: (t.metrics[lat], -_acc(t), t.number),
    "smallest": lambda lat: lambda t: (t.metrics["size_mb"], t.metrics[lat], t.number),
    "most-accurate": lambda lat: lambda t: (-_acc(t), t.metrics[lat], t.number),
}


# ---- the shared machinery -----------------------------------------------------------------


def _acc(t: TrialRecord) -> float:
    return t.metrics["accuracy"]


def _finite(t: TrialRecord, names: Sequence[str]) -> bool:
    return all(
        isinstance(t.metrics.get(n), int | float) and math.isfinite(t.metrics[n]) for n in names
    )


def _complete(study: StudyRecord) -> list[TrialRecord]:
    """The measured trials, each candidate once: a repeat carries the measurement of the
    trial it repeats, which is already among them."""
    return [t for t in study.trials if t.state == "COMPLETE" and not t.is_repeat]


def _empty_reason(study: StudyRecord) -> str:
    if not study.trials:
        return f"study '{study.name}' has no trials yet; run a sweep first (autoopt run)"
    if not _complete(study):
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(study.counts().items()))
        last = next((t for t in reversed(study.trials) if t.failure_reason), None)
        why = f"; last failure: [{last.failure_stage}] {last.failure_reason}" if last else ""
        return f"study '{study.name}' has no complete trial ({counts}){why}"
    return ""


def _drop(study: StudyRecord, policy: Policy, t: TrialRecord) -> float | None:
    base = study.baseline
    if base is None or not _finite(base, ["accuracy"]):
        return None
    drop = _acc(base) - _acc(t)
    if policy.relative:
        drop = drop / _acc(base) if _acc(base) else drop
    return drop


def _accuracy_ok(study: StudyRecord, policy: Policy, t: TrialRecord) -> bool:
    if policy.max_drop is None:
        return t.feasible
    drop = _drop(study, policy, t)
    return drop is not None and drop <= policy.max_drop + _EPS


def _accuracy_miss(study: StudyRecord, policy: Policy, t: TrialRecord) -> str:
    name = study.metric_name
    if policy.max_drop is not None:
        base = study.baseline
        floor: float | None = None
        if base is not None:
            b, d = _acc(base), policy.max_drop
            floor = b * (1 - d) if policy.relative else b - d
    else:
        floor = study.accuracy_floor
    if floor is None:
        return f"{name} {_acc(t):.4f} misses the study's {name} constraint"
    return f"{name} {_acc(t):.4f} is {floor - _acc(t):.4f} below the floor {floor:.4f}"


def _latency_ok(policy: Policy, t: TrialRecord) -> bool:
    if policy.max_latency_ms is None:
        return True
    return t.metrics[policy.latency_metric] <= policy.max_latency_ms + _EPS


def _latency_miss(policy: Policy, t: TrialRecord) -> str:
    value = t.metrics[policy.latency_metric]
    budget = policy.max_latency_ms or 0.0
    return (
        f"{policy.latency_metric} {value:.4g} ms is {value - budget:.4g} ms over the "
        f"{budget:g} ms budget"
    )


def _bounded(
    study: StudyRecord,
    policy: Policy,
    order: Callable[[TrialRecord], tuple[Any, ...]],
    nearest: int,
) -> Selection:
    """Choose the best trial (by ``order``) among those that meet both bounds."""
    pool, why = _pool(study, policy)
    if not pool:
        return Selection(study.name, policy, None, why)
    acc_ok = {t.number: _accuracy_ok(study, policy, t) for t in pool}
    lat_ok = {t.number: _latency_ok(policy, t) for t in pool}
    meets = [t for t in pool if acc_ok[t.number] and lat_ok[t.number]]
    if meets:
        return _chosen(study, policy, min(meets, key=order), len(meets))
    slower = [t for t in pool if acc_ok[t.number] and not lat_ok[t.number]]
    less = [t for t in pool if lat_ok[t.number] and not acc_ok[t.number]]
    if not slower and not less:  # every trial misses both: show the nearest on each bound
        slower = [t for t in pool if not lat_ok[t.number]]
        less = [t for t in pool if not acc_ok[t.number]]
    lat = policy.latency_metric
    slower = sorted(slower, key=lambda t: (t.metrics[lat], -_acc(t), t.number))[:nearest]
    less = sorted(less, key=lambda t: (-_acc(t), t.metrics[lat], t.number))[:nearest]

    def misses(t: TrialRecord) -> str:
        parts = []
        if not acc_ok[t.number]:
            parts.append(_accuracy_miss(study, policy, t))
        if not lat_ok[t.number]:
            parts.append(_latency_miss(policy, t))
        return " and ".join(parts)

    return Selection(
        study.name,
        policy,
        None,
        f"no trial of study '{study.name}' meets the policy {policy.describe(study)} "
        f"({len(pool)} complete trial(s) considered)",
        slower=tuple(Near(t, misses(t)) for t in slower),
        less_accurate=tuple(Near(t, misses(t)) for t in less),
    )


def _pool(study: StudyRecord, policy: Policy) -> tuple[list[TrialRecord], str]:
    """The trials a bounded policy can judge, or none and why."""
    empty = _empty_reason(study)
    if empty:
        return [], empty
    if policy.max_drop is not None and (
        study.baseline is None or not _finite(study.baseline, ["accuracy"])
    ):
        return [], (
            f"study '{study.name}' has no complete baseline trial, so an accuracy drop cannot "
            "be measured; omit max_drop to use the study's own constraint"
        )
    needed = ["accuracy", policy.latency_metric] + (
        ["size_mb"] if policy.name == "smallest" else []
    )
    pool = [t for t in _complete(study) if _finite(t, needed)]
    why = f"no complete trial of study '{study.name}' has finite {', '.join(needed)}"
    return pool, "" if pool else why


def _chosen(study: StudyRecord, policy: Policy, chosen: TrialRecord, meets: int) -> Selection:
    r = study.ratios(chosen)
    extras = [
        f"{study.metric_name} {_acc(chosen):.4f}",
        f"{policy.latency_metric} {chosen.metrics[policy.latency_metric]:.4g} ms",
    ]
    if "size_mb" in chosen.metrics:
        extras.append(f"size {chosen.metrics['size_mb']:.3g} MB")
    if r.get("speedup"):
        extras.append(f"{r['speedup']:.2f}x faster than the baseline")
    return Selection(
        study.name,
        policy,
        chosen,
        f"{policy.describe(study)}: best of {meets} trial(s) that meet it; " + ", ".join(extras),
        candidates=meets,
    )


__all__ = [
    "LATENCY_METRICS",
    "POLICIES",
    "LatencyMetric",
    "Near",
    "Policy",
    "PolicyName",
    "Selection",
    "fastest",
    "knee",
    "make_policy",
    "most_accurate",
    "select",
    "smallest",
]
