"""The trial record's schema: every metric and attribute a trial carries, declared once.

A measured trial records the metrics its measurement returned (``measured``) and the values
derived from them and the study's baseline when the controller tells it (``derived``): the
speedup, the size ratio and the accuracy drop are computed here, once, and stored with the
trial; every reader (CLI, dashboard, selection, report, benchmarks) reads them back through
:mod:`autoopt.study.records` instead of recomputing them.

``accuracy`` is the generic name of the workload's own metric (top-1 accuracy for digits,
fidelity for MiniLM): the study records the workload's name for it (``metric_name``), and
every view labels the column with that name.

This module is a leaf: it imports nothing from autoopt, so the config layer can read the
objectives' directions from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Direction = Literal["maximize", "minimize"]

# ---- trial user attributes ----------------------------------------------------------------
#: Written when the trial is asked for: who runs it.
ATTR_CONTROLLER = "controller"
ATTR_RUN = "run_id"
ATTR_TARGET = "target"
#: Written when the trial is enqueued: where it came from.
ATTR_BASELINE = "is_baseline"
#: Name of the fixed candidate (experiment ``seed_candidates``) a trial measures.
ATTR_SEED = "seed_candidate"
#: On a trial re-queued after it was stopped: the number of the trial it replaces.
ATTR_REQUEUED_FROM = "requeued_from"
#: On a trial that pairs a front model with another front member's post-training settings:
#: ``{"model_from": n, "settings_from": m}`` (see :mod:`autoopt.search.recombine`).
ATTR_RECOMBINED = "recombined"
#: Values a trial sets for parameters the space fixes (a seed's, or a recombination's).
ATTR_FIXED = "fixed_overrides"
#: Name of the standard starting point autoopt derived for a trial (``teacher@onnxruntime``,
#: ``static_int8@torch_compile``, ``student-3-layers``; see :mod:`autoopt.search.starting`).
ATTR_DERIVED = "derived"
#: Written when a trial is stopped before its full measurement: its slice score
#: (``rejected-early``) or its rung measurements (``stopped-early``).
ATTR_SLICE = "slice"
ATTR_RUNGS = "rungs"
#: On a trial trained in rungs and queued again: the rung its requeued run starts at.
ATTR_RUNG_START = "rung_start"
#: On a candidate drawn at random after the sampler proposed only measured ones for a while.
ATTR_EXPLORED = "explored"
#: Written when the trial is told: its outcome.
ATTR_STATUS = "status"
ATTR_RECIPE = "recipe"
ATTR_RECIPE_STR = "recipe_str"
ATTR_FAILURE_STAGE = "failure_stage"
ATTR_FAILURE_REASON = "failure_reason"
#: On a failed trial: whether the candidate failed by itself (its build or its outputs), so
#: that the same recipe would fail again, not because a worker was lost or a limit struck.
ATTR_FAILURE_OWN = "failure_own"
ATTR_STAGES = "stages"
ATTR_RUNNER = "runner"
ATTR_HARDWARE = "hardware"
ATTR_NODE = "node_id"
ATTR_ARTIFACT = "artifact_key"
#: The names of the metrics stored as attributes of their own (measured and derived).
ATTR_METRIC_NAMES = "metric_names"
#: On a trial whose candidate was measured before: the number of the trial that measured it.
ATTR_DUPLICATE_OF = "duplicate_of"
#: Digest of the snapshot (study attribute ``snapshot:<digest>``) the trial was built with.
ATTR_SNAPSHOT = "snapshot"
ATTR_RETRIES = "retries"
ATTR_BUILD_S = "build_s"
ATTR_MEASURE_S = "measure_s"
ATTR_BUILD_THREADS = "build_threads"

# ---- study user attributes ----------------------------------------------------------------
STUDY_EXPERIMENT = "experiment"
STUDY_WORKLOAD = "workload"
#: The workload's version (its teacher's weights and its data) the study was measured with.
STUDY_WORKLOAD_VERSION = "workload_version"
#: The workload's name for its metric (``accuracy`` in the records): "fidelity", "accuracy".
STUDY_METRIC = "metric_name"
STUDY_OBJECTIVES = "objectives"
STUDY_CONSTRAINT = "constraint"
STUDY_TARGET = "target"
STUDY_CACHE_DIR = "cache_dir"
#: Prefix of the per-run ledger entries (``run:<id>``) and of build snapshots.
STUDY_RUN_PREFIX = "run:"
STUDY_SNAPSHOT_PREFIX = "snapshot:"
#: Prefix of the host self-test results (``selftest:<host digest>``).
STUDY_SELFTEST_PREFIX = "selftest:"

#: The Optuna constraint every trial carries: accuracy drop minus the allowed drop (<= 0 is
#: feasible).
CONSTRAINT_KEY = "accuracy_drop"

#: complete: measured. failed: broke while built or measured. rejected: refused before
#: anything ran (this host cannot build it). rejected-early: stopped after scoring a first
#: slice of the evaluation split clearly below the floor. stopped-early: trained in rungs
#: and stopped at one, since it could no longer reach the feasible front.
Status = Literal["complete", "failed", "rejected", "rejected-early", "stopped-early"]
#: Statuses of trials that were built and judged (they count against the trial budget).
JUDGED_EARLY: tuple[str, ...] = ("rejected-early", "stopped-early")


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is named, measured, compared and shown."""

    name: str
    label: str
    unit: str = ""
    #: Which way is better, for metrics that can be objectives or are compared.
    direction: Direction | None = None
    #: Computed by :func:`derive` at tell time (not returned by the measurement).
    derived: bool = False
    #: Significant digits shown.
    digits: int = 4
    description: str = ""
    #: Whether a change from the baseline's value means something (not for ratios to the
    #: baseline, counts, or the host's load while timing).
    comparable: bool = True

    def format(self, value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return "–"
        if self.unit == "x":
            return f"{value:.2f}x"
        text = f"{value:.{self.digits}g}"
        return f"{text} {self.unit}" if self.unit and self.unit != "x" else text


_LOWER: Direction = "minimize"
_HIGHER: Direction = "maximize"
#: Every metric a trial records, in the order views list them.
METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("accuracy", "accuracy", "", _HIGHER, description="the workload's metric"),
        MetricSpec("latency_p50_ms", "p50 latency", "ms", _LOWER),
        MetricSpec("latency_p90_ms", "p90 latency", "ms", _LOWER),
        MetricSpec("latency_p99_ms", "p99 latency", "ms", _LOWER),
        MetricSpec("latency_mean_ms", "mean latency", "ms", _LOWER),
        MetricSpec("latency_min_ms", "min latency", "ms", _LOWER),
        MetricSpec("latency_runs", "timed runs", digits=6),
        MetricSpec("size_mb", "size", "MB", _LOWER),
        MetricSpec("params", "parameters", "", _LOWER, digits=6),
        MetricSpec("peak_memory_mb", "peak memory", "MB", _LOWER),
        MetricSpec("memory_delta_mb", "memory added", "MB", _LOWER),
        MetricSpec("gpu_peak_memory_mb", "peak GPU memory", "MB", _LOWER),
        MetricSpec("verify_agreement", "agreement with the teacher", "", _HIGHER),
        # Embedding workloads' neighbour search (autoopt.workloads.grouped): the share of
        # each sample's 10 nearest neighbours under the teacher that the candidate keeps.
        MetricSpec("knn_agreement", "nearest-neighbour agreement", "", _HIGHER),
        MetricSpec("speedup", "speedup", "x", _HIGHER, derived=True, comparable=False),
        MetricSpec("size_ratio", "smaller by", "x", _HIGHER, derived=True, comparable=False),
        MetricSpec("accuracy_drop", "accuracy drop", "", _LOWER, derived=True, comparable=False),
        # Paired timing (autoopt.pairing): the candidate and the baseline timed in one process.
        MetricSpec("paired_speedup", "paired speedup", "x", _HIGHER, comparable=False),
        MetricSpec("paired_speedup_min", "paired speedup, lowest round", "x", comparable=False),
        MetricSpec("paired_speedup_max", "paired speedup, highest round", "x", comparable=False),
        MetricSpec("paired_speedup_median", "paired speedup of medians", "x", comparable=False),
        MetricSpec("baseline_latency_p50_ms", "baseline p50 latency (paired)", "ms", _LOWER),
        MetricSpec("load_avg_1m", "load average while timing", "", comparable=False),
        MetricSpec("cpu_share", "CPU share while timing", "", comparable=False),
        MetricSpec("host_loaded", "timed on a busy host", "", comparable=False),
    )
}
#: Metrics that can be objectives of a study, with their Optuna direction.
OBJECTIVES: tuple[str, ...] = (
    "accuracy",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "size_mb",
    "peak_memory_mb",
)


def base_name(name: str) -> tuple[str, int | None]:
    """``latency_p50_ms@b64`` -> (``latency_p50_ms``, 64); a plain name -> (name, None)."""
    head, sep, tail = name.partition("@b")
    if sep and tail.isdigit():
        return head, int(tail)
    return name, None


#: Figures a workload's metric helper reports beside its metric, by suffix of the metric's
#: name (:mod:`autoopt.workloads.grouped`): ``fidelity_mean`` is labelled "fidelity, overall
#: mean" (the metric itself is then the worst group's).
METRIC_FIGURES: dict[str, str] = {
    "_mean": "overall mean",
    "_p5": "5th percentile",
    "_min": "minimum",
    "_worst_p5": "worst group's 5th percentile",
}


def group_name(name: str) -> tuple[str, str | None]:
    """``fidelity_p5/news`` -> (``fidelity_p5``, ``news``): a metric of one group of the
    evaluation split; a plain name -> (name, None)."""
    head, sep, group = name.partition("/")
    return (head, group) if sep and group else (name, None)


def spec(name: str, metric_name: str = "accuracy") -> MetricSpec:
    """The spec of any metric a trial may carry: a declared one, a declared one at another
    batch size (``@b64``), a figure of the workload's metric (``fidelity_p5``), any of those
    for one group of the evaluation split (``fidelity_p5/news``), or a workload's own extra
    metric (shown under its own name)."""
    head, group = group_name(name)
    if group is not None:
        inner = spec(head, metric_name)
        return MetricSpec(
            name, f"{inner.label} ({group})", inner.unit, inner.direction, inner.derived,
            inner.digits, inner.description, inner.comparable,
        )  # fmt: skip
    for suffix, figure in METRIC_FIGURES.items():
        if name == metric_name + suffix:
            return MetricSpec(name, f"{metric_name}, {figure}", "", _HIGHER)
    if name == metric_name and name != "accuracy":
        return MetricSpec(name, metric_name, "", _HIGHER)
    head, batch = base_name(name)
    known = METRICS.get(head)
    if known is None:
        return MetricSpec(name, name)
    # The workload's name for its metric: "fidelity", "fidelity drop".
    label = (
        known.label.replace("accuracy", metric_name)
        if head.startswith("accuracy")
        else known.label
    )
    if batch is not None:
        label = f"{label} (batch {batch})"
    return MetricSpec(
        name,
        label,
        known.unit,
        known.direction,
        known.derived,
        known.digits,
        known.description,
        known.comparable,
    )


def direction(objective: str) -> Direction:
    d = METRICS[objective].direction
    if d is None:  # pragma: no cover - OBJECTIVES only lists metrics with a direction
        raise ValueError(f"{objective} has no direction")
    return d


def ordered(names: list[str] | set[str]) -> list[str]:
    """Declared metrics first, in declaration order (each followed by its batch variants),
    then the rest alphabetically."""
    order = {n: i for i, n in enumerate(METRICS)}

    def key(n: str) -> tuple[int, int, str]:
        head, batch = base_name(n)
        return (order.get(head, len(order)), batch or 0, n)

    return sorted(names, key=key)


def derive(
    measured: Mapping[str, float], baseline: Mapping[str, float], *, relative: bool
) -> dict[str, float]:
    """The values a trial's record derives from its measurement and the baseline's.

    ``speedup`` is the paired one when the measurement timed the candidate and the baseline
    in one process (``paired_speedup``), else the ratio of the two trials' medians; the same
    at every extra batch size. ``accuracy_drop`` is absolute, or relative to the baseline's
    accuracy when ``relative``.
    """
    out: dict[str, float] = {}
    for name, value in measured.items():
        head, batch = base_name(name)
        if head != "latency_p50_ms":
            continue
        suffix = "" if batch is None else f"@b{batch}"
        paired = measured.get(f"paired_speedup{suffix}")
        if paired is not None and math.isfinite(paired):
            out[f"speedup{suffix}"] = float(paired)
        elif value and baseline.get(name):
            out[f"speedup{suffix}"] = float(baseline[name]) / float(value)
    if measured.get("size_mb") and baseline.get("size_mb"):
        out["size_ratio"] = float(baseline["size_mb"]) / float(measured["size_mb"])
    drop = float(baseline["accuracy"]) - float(measured["accuracy"])
    if relative and baseline["accuracy"]:
        drop /= float(baseline["accuracy"])
    out["accuracy_drop"] = drop
    return out
