"""Search benchmark: how much of the exhaustive front each sampler finds, replayed against a
measured finite space; and (``--minilm``) time to goal on MiniLM without seed candidates.

Ground truth. ``search_spaces/digits_finite.yaml`` (280 candidates of every family, 200 of
them runnable on a CPU without native fp16) is measured once, candidate by candidate, by the
workers' own entry points (:func:`autoopt.execution.worker.build_candidate` and
``measure_candidate``: the real pipeline, stage cache and paired timing) in this process,
and kept in ``results/search/ground_truth.csv``; later runs measure only what is missing.
Each training candidate is also measured at a third of its training (a rung), to see how much
of its gap to the teacher the rest of the training closes.

Replay. Each sampler (the default ``tpe``, ``nsga2``, ``random``) with 5 seeds, at budgets of
10%, 25% and 50% of the runnable candidates, runs the controller's policy (baseline first,
the derived starting points, the distinct-candidate rule, refusals that take no slot) with
the real samplers, :func:`autoopt.search.sampling.suggest` and the trial recorder on an
in-memory study, each proposal answered from the table. Hypervolume is over the digits
experiment's objectives (accuracy, p50 latency, size) above the accuracy floor, against the
reference point (floor, the baseline's latency, the baseline's size), as a fraction of the
exhaustive front's. Writes ``results/search/benchmark.md``.

    .venv/bin/python experiments/bench_search.py                 # ground truth (once) + replay
    .venv/bin/python experiments/bench_search.py --minilm --minutes 60
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime as dt
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "results/search"
TABLE = OUT / "ground_truth.csv"
SPACE = REPO / "search_spaces/digits_finite.yaml"
EXPERIMENT = REPO / "experiments/digits_cnn.yaml"
SAMPLERS = ("tpe", "nsga2", "random")
SEEDS = (0, 1, 2, 3, 4)
BUDGETS = (0.10, 0.25, 0.50)
RUNG = 1 / 3
FIELDS = (
    "key", "params", "recipe", "status", "reason", "accuracy", "latency_p50_ms", "size_mb",
    "speedup", "rung_accuracy", "seconds",
)  # fmt: skip

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ---- ground truth --------------------------------------------------------------------------
@dataclass
class Row:
    key: str
    params: dict[str, Any]
    recipe: str
    status: str  # complete | refused | failed
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    rung_accuracy: float | None = None
    seconds: float = 0.0


def _task(params: dict[str, Any], space: Any, exp: Any, cache: Path, fidelity: float = 1.0):
    from autoopt.execution import TrialTask
    from autoopt.resolve import recipe_from_params

    return TrialTask(
        trial_number=0,
        recipe=recipe_from_params(params, space).to_dict(),
        workload=exp.workload.name,
        workload_options=dict(exp.workload.options),
        cache_dir=str(cache),
        latency=exp.latency.model_dump(),
        verify=exp.verify.model_dump(),
        fidelity=fidelity,
        rungs=(RUNG,) if fidelity < 1.0 else (),
    )


def measure_point(params: dict[str, Any], space: Any, exp: Any, cache: Path) -> Row:
    """Build and measure one candidate as a worker does (and at a rung, if it trains)."""
    from autoopt.execution.worker import build_candidate, measure_candidate
    from autoopt.resolve import recipe_from_params
    from autoopt.search.points import recipe_key
    from autoopt.search.rungs import training_steps

    recipe = recipe_from_params(params, space)
    row = Row(recipe_key(recipe), params, recipe.describe(), "complete")
    start = time.perf_counter()
    rung = None
    if training_steps(recipe) > 0:
        task = _task(params, space, exp, cache, RUNG)
        built = build_candidate(task)
        if "error" not in built:
            measured = measure_candidate(task, built)
            rung = measured.get("metrics", {}).get("accuracy")
    task = _task(params, space, exp, cache)
    built = build_candidate(task)
    result = built if "error" in built else measure_candidate(task, built)
    if "error" in result:
        error = result["error"]
        row.status = "refused" if error["rejected"] else "failed"
        row.reason = error["reason"][:300]
    else:
        row.metrics = {k: float(v) for k, v in result["metrics"].items()}
        row.rung_accuracy = rung
    row.seconds = time.perf_counter() - start
    return row


def _write(rows: list[Row]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with TABLE.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        for r in rows:
            m = r.metrics
            w.writerow(
                [
                    r.key, json.dumps(r.params, sort_keys=True), r.recipe, r.status, r.reason,
                    m.get("accuracy", ""), m.get("latency_p50_ms", ""), m.get("size_mb", ""),
                    m.get("paired_speedup", ""),
                    "" if r.rung_accuracy is None else r.rung_accuracy,
                    round(r.seconds, 2),
                ]
            )  # fmt: skip


def told_metrics(row: Row, base: Row) -> dict[str, float]:
    """What the replay tells for a candidate: its metrics, with its latency put as the
    baseline's over its paired speedup (timed beside the baseline in its own process), so
    that the host's load while the table was measured does not rank candidates."""
    metrics = dict(row.metrics)
    speedup = metrics.get("paired_speedup")
    if speedup and row is not base:
        metrics["latency_p50_ms"] = base.metrics["latency_p50_ms"] / speedup
    return metrics


def _read() -> dict[str, Row]:
    if not TABLE.exists():
        return {}
    rows = {}
    with TABLE.open() as f:
        for d in csv.DictReader(f):
            metrics = {}
            for name, column in (
                ("accuracy", "accuracy"),
                ("latency_p50_ms", "latency_p50_ms"),
                ("size_mb", "size_mb"),
                ("paired_speedup", "speedup"),
            ):
                if d[column] != "":
                    metrics[name] = float(d[column])
            rows[d["key"]] = Row(
                d["key"],
                json.loads(d["params"]),
                d["recipe"],
                d["status"],
                d["reason"],
                metrics,
                float(d["rung_accuracy"]) if d["rung_accuracy"] else None,
                float(d["seconds"]),
            )
    return rows


def ground_truth(space: Any, exp: Any) -> dict[str, Row]:
    """The measured table, measuring (once) whatever candidate it does not have yet."""
    import torch

    from autoopt.resolve import recipe_from_params
    from autoopt.search.points import enumerate_points, recipe_key

    rows = _read()
    points = enumerate_points(space)
    missing = [p for p in points if recipe_key(recipe_from_params(p, space)) not in rows]
    if missing:
        torch.set_num_threads(1)
        with tempfile.TemporaryDirectory(prefix="bench-search-") as cache:
            for i, params in enumerate(missing):
                row = measure_point(params, space, exp, Path(cache))
                rows[row.key] = row
                print(f"[{i + 1}/{len(missing)}] {row.status} {row.recipe}", file=sys.stderr)
                if (i + 1) % 10 == 0 or i + 1 == len(missing):
                    _write(list(rows.values()))
    keys = {recipe_key(recipe_from_params(p, space)) for p in points}
    return {k: r for k, r in rows.items() if k in keys}


# ---- hypervolume ---------------------------------------------------------------------------
def hypervolume(points: Sequence[Sequence[float]]) -> float:
    """Volume dominated by ``points`` (every coordinate a gain > 0, larger is better) over the
    origin; exact, by slicing along the last axis."""
    pts = [list(p) for p in points if all(v > 0 for v in p)]
    if not pts:
        return 0.0
    if len(pts[0]) == 1:
        return max(p[0] for p in pts)
    volume, prev = 0.0, 0.0
    for level in sorted({p[-1] for p in pts}):
        volume += hypervolume([p[:-1] for p in pts if p[-1] >= level]) * (level - prev)
        prev = level
    return volume


@dataclass(frozen=True)
class Frame:
    """How a measured candidate becomes a point of gains over the reference point."""

    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    reference: tuple[float, ...]
    floor: float

    def gains(self, metrics: dict[str, float]) -> list[float] | None:
        if metrics.get("accuracy", -math.inf) < self.floor:
            return None
        out = []
        for name, d, ref in zip(self.objectives, self.directions, self.reference, strict=True):
            v = metrics[name]
            out.append((v - ref) if d == "maximize" else (ref - v) / ref)
        return out

    base: Row | None = None
    #: The host self-test of the space's paths (what the controller derives points with).
    selftest: tuple[Any, ...] = ()

    def hv(self, rows: Sequence[Row]) -> float:
        assert self.base is not None
        told = [told_metrics(r, self.base) for r in rows if r.status == "complete"]
        return hypervolume([g for m in told if (g := self.gains(m)) is not None])


# ---- replay --------------------------------------------------------------------------------
@dataclass
class Policy:
    sampler: str = "tpe"
    starting_points: bool = True
    distinct: bool = True
    constant_liar: bool = True
    workers: int = 1
    max_repeats: int = 8
    #: TPE's random start-up after the queued trials (the default), or counting them.
    startup_after_queue: bool = True

    def label(self) -> str:
        parts = [self.sampler]
        if not self.starting_points:
            parts.append("no starting points")
        if not self.distinct:
            parts.append("repeats take a slot")
        if self.sampler == "tpe" and not self.constant_liar:
            parts.append("no constant liar")
        if self.workers > 1:
            parts.append(f"{self.workers} in flight")
        if self.max_repeats != 8:
            parts.append(f"max_repeats {self.max_repeats}")
        if self.sampler == "tpe" and not self.startup_after_queue:
            parts.append("queued trials count as start-up")
        return ", ".join(parts)


@dataclass
class Replay:
    hv: float
    measured: int
    repeats_in_slots: int
    repeats_free: int
    in_flight_twins: int
    refused: int


def _sampler(
    policy: Policy, space: Any, seed: int, budget: int, queued: int
) -> optuna.samplers.BaseSampler:
    """As the controller makes it once the baseline and the starting points are queued."""
    from autoopt.config import SamplerConfig
    from autoopt.search.sampling import make_sampler

    config = SamplerConfig(name=policy.sampler, seed=seed)
    sampler = make_sampler(config, space, budget, queued if policy.startup_after_queue else 0)
    if isinstance(sampler, optuna.samplers.TPESampler) and not policy.constant_liar:
        sampler._constant_liar = False
    return sampler


def replay(
    table: dict[str, Row],
    space: Any,
    exp: Any,
    frame: Frame,
    policy: Policy,
    seed: int,
    budget: int,
    max_repeats: int | None = None,
) -> Replay:
    """The controller's policy on an in-memory study, each proposal answered from ``table``:
    ``budget`` slots of measured candidates (refusals take none; repeats take none with the
    distinct rule), ``policy.workers`` trials in flight, told oldest first."""
    from autoopt import hardware
    from autoopt.resolve import baseline_params, recipe_from_params
    from autoopt.search.points import recipe_key
    from autoopt.search.sampling import suggest
    from autoopt.search.starting import HostFacts, derive
    from autoopt.study import schema as S
    from autoopt.study.recorder import Outcome, TrialRecorder
    from autoopt.study.records import trial_record

    study = optuna.create_study(directions=exp.directions)
    recorder = TrialRecorder(study, exp.constraint, exp.objectives)
    study.enqueue_trial(baseline_params(space) or {}, user_attrs={S.ATTR_BASELINE: True})

    def refusal(recipe: Any) -> str:
        row = table[recipe_key(recipe)]
        return row.reason if row.status == "refused" else ""

    if policy.starting_points:
        host = HostFacts.of(hardware.current(), "cpu", frame.selftest)
        for point in derive(space, host, refusal=refusal).points:
            study.enqueue_trial(point.params, user_attrs={S.ATTR_DERIVED: point.name})
    base_row = table[recipe_key(recipe_from_params(baseline_params(space) or {}, space))]
    measured: dict[str, Any] = {}
    rows: list[Row] = []
    flight: collections.deque[tuple[Any, Any, str]] = collections.deque()
    held: dict[str, list[Any]] = {}
    rng = random.Random(seed)
    max_repeats = max_repeats or policy.max_repeats
    queued = len(study.get_trials(states=(optuna.trial.TrialState.WAITING,)))
    study.sampler = _sampler(policy, space, seed, budget, queued)
    out = Replay(0.0, 0, 0, 0, 0, 0)
    slots = in_a_row = 0
    max_refused = max(20, 3 * budget)

    def tell(trial: Any, recipe: Any, key: str) -> None:
        row = table[key]
        metrics = told_metrics(row, base_row)
        told = recorder.complete(trial, recipe, Outcome(metrics=metrics), base_row.metrics)
        measured[key] = trial_record(told)
        rows.append(row)
        for twin in held.pop(key, []):
            recorder.repeat(twin, measured[key])

    while slots < budget and out.refused <= max_refused:
        while len(flight) < policy.workers and slots + len(flight) < budget:
            trial = study.ask()
            recipe = recipe_from_params(suggest(trial, space), space)
            key = recipe_key(recipe)
            row = table[key]
            if row.status == "refused":
                recorder.fail(trial, "check", row.reason, rejected=True, recipe=recipe)
                out.refused += 1
                if out.refused > max_refused:
                    break
                continue
            twin = any(k == key for _, _, k in flight)
            if key in measured or (twin and policy.distinct):
                if key in measured:
                    recorder.repeat(trial, measured[key])
                else:  # as the controller does: held, told the twin's measurement
                    held.setdefault(key, []).append(trial)
                    out.in_flight_twins += 1
                if policy.distinct:
                    out.repeats_free += 1
                    in_a_row += 1
                    if in_a_row >= max_repeats:
                        in_a_row = 0
                        _explore(study, space, table, measured, flight, rng, S)
                    continue
                out.repeats_in_slots += 1
                slots += 1
                continue
            if twin:
                out.in_flight_twins += 1
            in_a_row = 0
            if row.status != "complete":  # broke while built or measured: a slot, no point
                recorder.fail(trial, "build", row.reason, recipe=recipe)
                slots += 1
                continue
            flight.append((trial, recipe, key))
        if not flight:
            break
        trial, recipe, key = flight.popleft()
        tell(trial, recipe, key)
        slots += 1
    for trial, recipe, key in flight:
        tell(trial, recipe, key)
    out.hv = frame.hv(rows)
    out.measured = len(measured)
    return out


def _explore(study, space, table, measured, flight, rng, S) -> None:  # noqa: ANN001
    from autoopt.resolve import recipe_from_params
    from autoopt.search.points import random_point, recipe_key

    known = set(measured) | {k for _, _, k in flight}
    for _ in range(200):
        params = random_point(space, rng)
        key = recipe_key(recipe_from_params(params, space))
        if key not in known and table[key].status == "complete":
            study.enqueue_trial(params, user_attrs={S.ATTR_EXPLORED: True})
            return


# ---- report --------------------------------------------------------------------------------
def _mean_spread(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1%} ± {spread:.1%}"


def run_replays(table: dict[str, Row], space: Any, exp: Any, frame: Frame) -> list[str]:
    runnable = sum(r.status == "complete" for r in table.values())
    exhaustive = frame.hv(list(table.values()))
    budgets = [max(1, round(b * runnable)) for b in BUDGETS]
    # The default policy per sampler, then the default without each of its parts (what the
    # benchmark showed each buys), and a shorter patience for repeats.
    policies = [Policy(s) for s in SAMPLERS] + [
        Policy("tpe", starting_points=False),
        Policy("tpe", startup_after_queue=False),
        Policy("tpe", distinct=False),
        Policy("tpe", max_repeats=3),
        Policy("random", starting_points=False),
    ]
    results: dict[tuple[str, int], list[Replay]] = {}
    start = time.perf_counter()
    for policy in policies:
        for budget in budgets:
            runs = [replay(table, space, exp, frame, policy, s, budget) for s in SEEDS]
            results[(policy.label(), budget)] = runs
            found = _mean_spread([r.hv / exhaustive for r in runs])
            print(f"{policy.label()} @ {budget}: {found}", file=sys.stderr)
    lines = [
        "## Hypervolume found, as a share of the exhaustive front's",
        "",
        f"{len(table)} candidates, {runnable} runnable here; budgets in measured candidates "
        f"({', '.join(f'{b:.0%}' for b in BUDGETS)} of {runnable}: "
        f"{', '.join(str(b) for b in budgets)}); mean ± standard deviation over seeds "
        f"{', '.join(str(s) for s in SEEDS)}. Replayed in {time.perf_counter() - start:.0f} s.",
        "",
        "| policy | "
        + " | ".join(f"{b} trials ({p:.0%})" for b, p in zip(budgets, BUDGETS, strict=True))
        + " | repeats told free / in slots at the largest budget |",
        "| --- | " + " | ".join("---" for _ in budgets) + " | --- |",
    ]  # fmt: skip
    for policy in policies:
        cells = [
            _mean_spread([r.hv / exhaustive for r in results[(policy.label(), b)]])
            for b in budgets
        ]
        last = results[(policy.label(), budgets[-1])]
        free = statistics.fmean(r.repeats_free for r in last)
        slotted = statistics.fmean(r.repeats_in_slots for r in last)
        lines.append(
            f"| {policy.label()} | " + " | ".join(cells) + f" | {free:.1f} / {slotted:.1f} |"
        )
    default = {
        b: statistics.fmean(r.hv for r in results[("tpe", b)]) / exhaustive for b in budgets
    }
    rand = {
        b: statistics.fmean(r.hv for r in results[("random", b)]) / exhaustive for b in budgets
    }
    goal_budget = budgets[BUDGETS.index(0.25)]
    lines += [
        "",
        f"Goal: the default (tpe) reaches ≥ 95% of the exhaustive hypervolume within 25% of the "
        f"evaluations: {default[goal_budget]:.1%} at {goal_budget} "
        f"({'met' if default[goal_budget] >= 0.95 else 'not met'}); beats random search at "
        f"every budget: "
        + ", ".join(f"{default[b]:.1%} vs {rand[b]:.1%}" for b in budgets)
        + f" ({'met' if all(default[b] > rand[b] for b in budgets) else 'not met'}).",
    ]
    return lines


def parallel_lines(table: dict[str, Row], space: Any, exp: Any, frame: Frame) -> list[str]:
    """Four proposals in flight: how often one repeats a candidate still in flight, with and
    without TPE's constant liar."""
    runnable = sum(r.status == "complete" for r in table.values())
    exhaustive = frame.hv(list(table.values()))
    budget = round(0.25 * runnable)
    lines = [
        "",
        "## Proposals in flight (4 workers)",
        "",
        f"TPE at {budget} trials with 4 trials in flight, told oldest first; a proposal of a "
        "candidate still in flight is held and told its measurement when it arrives (not "
        "built twice, no slot taken).",
        "",
        "| policy | hypervolume | proposals of a candidate in flight (mean per sweep) |",
        "| --- | --- | --- |",
    ]
    for liar in (True, False):
        policy = Policy("tpe", constant_liar=liar, workers=4)
        runs = [replay(table, space, exp, frame, policy, s, budget) for s in SEEDS]
        twins = statistics.fmean(r.in_flight_twins for r in runs)
        lines.append(
            f"| {policy.label()} | {_mean_spread([r.hv / exhaustive for r in runs])} | "
            f"{twins:.1f} |"
        )
    return lines


def table_lines(table: dict[str, Row], frame: Frame) -> list[str]:
    done = [r for r in table.values() if r.status == "complete"]
    statuses = collections.Counter(r.status for r in table.values())
    front = [r for r in done if r.metrics["accuracy"] >= frame.floor]
    lines = [
        "## Ground truth",
        "",
        f"`search_spaces/digits_finite.yaml`: {len(table)} candidates ("
        + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        + "), measured one by one by the workers' build and measure functions; "
        f"{len(front)} meet the accuracy floor {frame.floor:.4f}. Table: "
        "`results/search/ground_truth.csv` (reruns only measure what it lacks).",
        "",
    ]
    trained = [r for r in done if r.rung_accuracy is not None]
    base = next(r for r in done if r.recipe == "fp32 @ torch_eager").metrics["accuracy"]
    closed = [
        (r.metrics["accuracy"] - r.rung_accuracy) / (base - r.rung_accuracy)
        for r in trained
        if base - r.rung_accuracy > 0.005
    ]
    if closed:
        closed.sort()
        over = sum(c > 1 - RUNG for c in closed)
        lines += [
            f"Rungs: {len(trained)} training candidates were also measured at a third of their "
            "training. The rest of the training closed a median "
            f"{statistics.median(closed):.0%} (range {closed[0]:.0%} to {closed[-1]:.0%}) of "
            f"the gap to the teacher's accuracy; the rung rule allows {1 - RUNG:.0%}, which "
            f"{over} of {len(closed)} exceeded.",
            "",
        ]
    return lines


def starting_lines(table: dict[str, Row], space: Any, frame: Frame) -> list[str]:
    """The derived starting points on this space and host, with what each measured."""
    from autoopt import hardware
    from autoopt.search.points import recipe_key
    from autoopt.search.starting import HostFacts, derive

    def refusal(recipe: Any) -> str:
        row = table[recipe_key(recipe)]
        return row.reason if row.status == "refused" else ""

    assert frame.base is not None
    found = derive(space, HostFacts.of(hardware.current(), "cpu", frame.selftest), refusal=refusal)
    exhaustive = frame.hv(list(table.values()))
    lines = [
        "## Derived starting points",
        "",
        "What the controller queues after the baseline on this space and host (its self-test "
        "included), and the share of the exhaustive hypervolume each finds alone.",
        "",
        "| point | recipe | accuracy | speedup | size MB | hypervolume alone |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in found.points:
        r = table[recipe_key(p.recipe)]
        m = r.metrics
        lines.append(
            f"| {p.name} | `{r.recipe}` | {m['accuracy']:.4f} | "
            f"{m.get('paired_speedup', 1.0):.2f}x | {m['size_mb']:.3f} | "
            f"{frame.hv([r]) / exhaustive:.1%} |"
        )
    lines += ["", "Dropped: " + "; ".join(f"{n} ({why[:90]})" for n, why in found.dropped), ""]
    return lines


def digits_report() -> None:
    import autoopt
    from autoopt.config import load_search_space

    exp = autoopt.validate(EXPERIMENT)
    space = load_search_space(SPACE)
    # Lean timing: the table ranks candidates, it does not publish latencies.
    exp = exp.model_copy(
        update={
            "latency": exp.latency.model_copy(
                update={"extra_batch_sizes": [], "runs": 100, "warmup": 10, "rounds": 10}
            )
        }
    )
    table = ground_truth(space, exp)
    from autoopt.selftest import run_selftest
    from autoopt.workloads import load_workload

    selftest = tuple(run_selftest(load_workload("digits_cnn"), space, exp.latency, exp.verify))
    base = next(r for r in table.values() if r.recipe == "fp32 @ torch_eager")
    m = base.metrics
    frame = Frame(
        tuple(exp.objectives),
        tuple(exp.directions),
        tuple(
            exp.constraint.floor(m["accuracy"]) if o == "accuracy" else m[o]
            for o in exp.objectives
        ),
        exp.constraint.floor(m["accuracy"]),
        base,
        selftest,
    )
    lines = [
        "# Search benchmark",
        "",
        f"Run {dt.datetime.now():%Y-%m-%d %H:%M}. Digits CNN; objectives "
        f"{', '.join(exp.objectives)}; accuracy floor {frame.floor:.4f} (the baseline's "
        f"{m['accuracy']:.4f} minus {exp.constraint.max_drop}); reference point: the floor, the "
        f"baseline's latency ({m['latency_p50_ms']:.4f} ms) and size ({m['size_mb']:.3f} MB).",
        "",
        *table_lines(table, frame),
        *starting_lines(table, space, frame),
        *run_replays(table, load_search_space(SPACE), exp, frame),
        *parallel_lines(table, space, exp, frame),
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "benchmark.md"
    old = path.read_text().split("\n## Time to goal", 1) if path.exists() else [""]
    tail = "\n## Time to goal" + old[1] if len(old) > 1 else ""
    path.write_text("\n".join(lines) + "\n" + tail)
    print("\n".join(lines))


# ---- time to goal --------------------------------------------------------------------------
def _goal(text: str) -> tuple[float, float]:
    metric, speedup = text.split(":")
    return float(metric), float(speedup)


def time_to_goal(args: argparse.Namespace) -> None:
    """Both sweeps (the default search, then random search) from an empty stage cache each,
    then the minute each goal was first told in each."""
    import shutil

    import autoopt

    exp = autoopt.validate(args.experiment)
    options = dict(exp.workload.options)
    for item in args.option:
        name, _, value = item.partition("=")
        options[name] = json.loads(value)
    stamp = f"{dt.datetime.now():%Y%m%d-%H%M}"
    rows = []
    for sampler in ("tpe", "random"):
        study = f"{args.study}-{sampler}-{stamp}"
        cache = REPO / "results/cache/bench-search" / study
        shutil.rmtree(cache, ignore_errors=True)
        run = exp.model_copy(
            update={
                "seed_candidates": [],
                "cache_dir": str(cache),
                "workload": exp.workload.model_copy(update={"options": options}),
                "sampler": exp.sampler.model_copy(update={"name": sampler}),
                "constraint": exp.constraint.model_copy(update={"max_drop": args.max_drop}),
            }
        )
        started = time.time()
        summary = autoopt.run(
            run, timeout=args.minutes * 60, n_trials=10_000, storage=args.storage, study=study
        )
        shutil.rmtree(cache, ignore_errors=True)
        record = autoopt.load_study(study, args.storage)
        rows.append((sampler, study, summary, record, started))
    lines = [
        "## Time to goal" + (f" ({args.title})" if args.title else ""),
        "",
        f"Run {dt.datetime.now():%Y-%m-%d %H:%M}: `{Path(args.experiment).name}` without its "
        f"seed candidates, workload options {options}, accuracy floor: at most {args.max_drop} "
        f"below the baseline (a goal below the floor cannot be told: early rejection and the "
        f"rungs stop what cannot meet it), {args.minutes:g} min per sweep, each from an empty "
        "stage cache. The minute a goal was first told counts from the start of the sweep "
        "(workload loading, Ray, the host self-test included).",
        "",
        "| sampler | trials (complete) | "
        + " | ".join(f"≥ {s:g}x at ≥ {a:g}" for a, s in args.goal)
        + " | starting points |",
        "| --- | --- | " + " | ".join("---" for _ in args.goal) + " | --- |",
    ]
    for sampler, _study, summary, record, started in rows:
        cells = []
        for floor, speed in args.goal:
            hits = [
                t
                for t in record.trials
                if t.state == "COMPLETE"
                and not t.is_repeat
                and t.metrics.get("accuracy", 0.0) >= floor
                and t.metrics.get("speedup", 0.0) >= speed
                and t.completed is not None
            ]
            first = min(hits, key=lambda t: t.completed, default=None)
            if first is None:
                best = max(
                    (t.metrics.get("speedup", 0.0) for t in record.trials
                     if t.state == "COMPLETE" and t.metrics.get("accuracy", 0.0) >= floor),
                    default=0.0,
                )  # fmt: skip
                cells.append(f"not met (best {best:.2f}x)")
            else:
                minute = (first.completed.timestamp() - started) / 60
                cells.append(
                    f"minute {minute:.1f} (#{first.number}, {first.metrics['speedup']:.2f}x)"
                )
        lines.append(
            f"| {sampler} | {summary.trials_run} ({summary.completed}) | " + " | ".join(cells)
            + f" | {len(summary.derived)} |"
        )  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minilm", action="store_true", help="time to goal without seeds")
    parser.add_argument("--experiment", default=str(REPO / "experiments/minilm.yaml"))
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument(
        "--max-drop",
        type=float,
        default=0.05,
        help="accuracy floor of both sweeps (the lower goal's floor)",
    )
    parser.add_argument(
        "--goal",
        type=_goal,
        action="append",
        help="METRIC:SPEEDUP, e.g. 0.99:3 (default: 0.99:3 and 0.95:5)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        help="workload option NAME=JSON, e.g. train_size=2000",
    )
    parser.add_argument("--storage", default="sqlite:///results/search/time_to_goal.db")
    parser.add_argument("--study", default="time-to-goal")
    parser.add_argument("--out", default=str(OUT / "time_to_goal.md"))
    parser.add_argument("--title", default="")
    args = parser.parse_args()  # fmt: skip
    if args.minilm:
        args.goal = args.goal or [(0.99, 3.0), (0.95, 5.0)]
        time_to_goal(args)
    else:
        digits_report()


if __name__ == "__main__":
    main()
