"""What the trial and compare pages show, computed from the public read-side records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autoopt.dashboard._views import STATE_LABELS, clean, families, lower_is_better, num
from autoopt.study import schema as S

if TYPE_CHECKING:
    from autoopt.study.records import StudyRecord, TrialRecord


# ---- trial page --------------------------------------------------------------------------
def metric_rows(record: StudyRecord, t: TrialRecord) -> list[dict[str, Any]]:
    """Every metric with the baseline's value and the change relative to it."""
    base = record.baseline
    b = base.metrics if base is not None and base is not t else {}
    rows = []
    for k in S.ordered(list(t.metrics)):
        spec = S.spec(k, record.metric_name)
        v, bv = num(t.metrics.get(k)), num(b.get(k))
        change = None if base is t else _change(k, v, bv)
        rows.append({"name": k, "label": spec.label, "value": v, "baseline": bv, "change": change})
    return rows


def _change(metric: str, v: float | None, bv: float | None) -> str | None:
    """How a metric moved from the baseline's value, in words: points, or a ratio that says
    which way is better. Every ratio reads "N× better-word" (N ≥ 1), so a row never shows a
    bare 0.07× beside rows that say 5.12× faster.
    """
    spec = S.spec(metric)
    if v is None or metric == "latency_runs":
        return None
    head = S.base_name(metric)[0]
    if head == "speedup":
        # Already a ratio to the baseline (at this row's batch size), higher is faster.
        if v <= 0:
            return None
        return f"{v:.2f}× faster" if v >= 1 else f"{1 / v:.2f}× slower"
    if head == "size_ratio":
        if v <= 0:
            return None
        return f"{v:.2f}× smaller" if v >= 1 else f"{1 / v:.2f}× larger"
    if bv is None or spec.derived or not spec.comparable:
        return None
    if head == "accuracy" or head.endswith("agreement"):
        return f"{(v - bv) * 100:+.2f} pts"
    if v == bv:
        return "same"
    if spec.direction is None or v <= 0 or bv <= 0:
        # A metric without a better direction (a workload's own, a flag): no ratio to read.
        return None
    latency = head.startswith("latency")
    better, worse = ("faster", "slower") if latency else ("smaller", "larger")
    if spec.direction == "maximize":
        better, worse = "higher", "lower"
        return f"{v / bv:.2f}× {better}" if v > bv else f"{bv / v:.2f}× {worse}"
    return f"{bv / v:.2f}× {better}" if v < bv else f"{v / bv:.2f}× {worse}"


def timing_facts(t: TrialRecord) -> dict[str, Any]:
    """How the trial's speedup was timed: paired with the baseline (with the range of the
    per-round ratios) or not, and the host's load meanwhile."""
    m = t.metrics
    return clean(
        {
            "paired": num(m.get("paired_speedup")),
            "low": num(m.get("paired_speedup_min")),
            "high": num(m.get("paired_speedup_max")),
            "loaded": t.load_note,
            "load": num(m.get("load_avg_1m")),
            "cpu_share": num(m.get("cpu_share")),
        }
    )


def stage_rows(record: StudyRecord, t: TrialRecord) -> list[dict[str, Any]]:
    """The trial's stages; a reused one names the trial that built it (lineage)."""
    built_by: dict[str, int] = {}
    for other in record.trials:
        for s in other.stages:
            if not s.get("hit") and s.get("key") and s["key"] not in built_by:
                built_by[s["key"]] = other.number
    rows = []
    for s in t.stages:
        key = str(s.get("key", ""))
        origin = built_by.get(key)
        rows.append(
            {
                "stage": s.get("stage", "?"),
                "key": key,
                "hit": bool(s.get("hit")),
                "seconds": num(s.get("seconds")),
                "saved": num(s.get("saved_seconds")),
                "built_by": origin if origin != t.number else None,
            }
        )
    return rows


def recipe_rows(t: TrialRecord, fams: list[str]) -> list[dict[str, Any]]:
    rows = []
    for family in fams:
        step = (t.recipe or {}).get(family)
        config = dict(step.get("config") or {}) if step else {}
        rows.append(
            {
                "family": family,
                "method": t.technique(family),
                "key": step.get("key", "") if step else "",
                "config": config,
            }
        )
    return rows


def flat(prefix: str, value: Any) -> list[tuple[str, Any]]:
    """Nested dicts as dotted key/value pairs (hardware.versions.torch = 2.13.0); an empty
    dict gives no pair (a trial that measured nothing has no hardware, not a "{}" row)."""
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out.extend(flat(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    if isinstance(value, list):
        return [(prefix, ", ".join(str(v) for v in value) or "—")]
    return [(prefix, value)]


# ---- compare page ------------------------------------------------------------------------
def compare_rows(record: StudyRecord, trials: list[TrialRecord]) -> list[dict[str, Any]]:
    """Rows of a side-by-side table; ``differs`` marks rows whose cells are not all equal and
    ``best`` the column(s) with the best value of a metric row."""
    fams = families(record)
    rows: list[dict[str, Any]] = []

    def add(
        section: str, label: str, cells: list[Any], metric: str | None = None, key: str = ""
    ) -> None:
        rows.append(_compare_row(section, label, cells, metric, key))

    add("trial", "state", [_state_word(t) for t in trials])
    add("trial", "feasible", ["yes" if t.feasible else "no" for t in trials])
    add("trial", "on Pareto front", ["yes" if t.on_front else "no" for t in trials])
    for family in fams:
        add("recipe", family, [_step_label((t.recipe or {}).get(family)) for t in trials])
    names = S.ordered({k for t in trials for k in t.metrics})
    for k in names:
        label = S.spec(k, record.metric_name).label
        add("metrics", label, [num(t.metrics.get(k)) for t in trials], metric=k, key=k)
    labels = {"speedup": "speedup", "accuracy_change": f"{record.metric_name} change"}
    for k, label in labels.items():
        if k not in names:
            add(
                "vs baseline",
                label,
                [num(record.ratios(t).get(k)) for t in trials],
                metric=k,
                key=k,
            )
    add(
        "build",
        "stages reused",
        [f"{sum(bool(s.get('hit')) for s in t.stages)} of {len(t.stages)}" for t in trials],
    )
    add("build", "duration (s)", [num(t.duration_s) for t in trials], metric="duration_s")
    add("hardware", "cpu", [t.hardware.get("cpu_model", "") for t in trials])
    add("hardware", "node", [t.node_id[:12] for t in trials])
    add("hardware", "runner", [", ".join(f"{k}={v}" for k, v in t.runner.items()) for t in trials])
    add(
        "failure",
        "reason",
        [f"[{t.failure_stage}] {t.failure_reason}" if t.failure_reason else "" for t in trials],
    )
    return rows


def _compare_row(
    section: str, label: str, cells: list[Any], metric: str | None, key: str
) -> dict[str, Any]:
    shown = ["" if c is None else c for c in cells]
    differs = len({repr(c) for c in shown}) > 1
    best: list[int] = []
    nums = [num(c) for c in cells]
    if metric and differs and any(v is not None for v in nums):
        values = [v for v in nums if v is not None]
        target = min(values) if lower_is_better(metric) else max(values)
        best = [i for i, v in enumerate(nums) if v == target]
    return {
        "section": section,
        "label": label,
        "key": key or label,
        "cells": shown,
        "differs": differs,
        "best": best,
        "numeric": metric is not None,
    }


def _state_word(t: TrialRecord) -> str:
    if t.is_repeat:
        return f"repeat of #{t.duplicate_of}"
    return STATE_LABELS.get(t.state, t.state.lower())


def _step_label(step: dict[str, Any] | None) -> str:
    if not step:
        return "none"
    method = str(step.get("key", "")).split(".", 1)[-1]
    config = step.get("config") or {}
    inner = ", ".join(f"{k}={v}" for k, v in sorted(config.items()))
    return f"{method}({inner})" if inner else method
