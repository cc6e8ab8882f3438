"""Paired vs unpaired speedups of the same MiniLM candidates on a quiet and a loaded host.

Writes results/paired/benchmark.md and results/paired/raw.csv.

Unpaired is a study before pairing: the baseline timed once, quietly, at the start (a study's
trial 0), and each candidate timed alone later, whatever the host is doing then. Paired is
the measurement task now: the candidate and the baseline in alternating rounds in one process,
through the functions :func:`autoopt.measure.time_candidate` uses (``time_rounds``,
``paired_ratio``, ``cpu_share``, ``host_loaded``). The loaded condition runs two busy
pure-Python processes beside the timings (``--load numpy``: numpy matmuls, which also take
caches and memory bandwidth), stopped afterwards and bounded in time whatever happens.

Besides the recorded paired speedup (the ratio of total wall times over the interleaved
rounds), each paired timing reports two other estimators from the same samples: the ratio of
median wall times (``paired_speedup_median``), and the ratio of median CPU times per call,
which the scheduler cannot stretch.

    .venv/bin/python experiments/bench_paired.py [--cycles 2] [--runs 100] [--minutes 18]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoopt import hardware, plugins
from autoopt.artifacts import load_artifact
from autoopt.cache import StageCache
from autoopt.config import LatencyConfig, VerifyConfig
from autoopt.measure import baseline_calls, verify
from autoopt.pairing import (
    MIN_CPU_SHARE,
    cpu_share,
    host_loaded,
    paired_ratio,
    round_sizes,
    time_rounds,
)
from autoopt.pipeline import build
from autoopt.recipe import Recipe
from autoopt.resolve import make_step
from autoopt.workloads import load_workload

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "results/paired"
#: experiments/minilm.yaml's workload with small splits: nothing here trains.
OPTIONS = {"eval_size": 500, "train_size": 200, "calibration_size": 64, "seq_len": 128}
BATCH, THREADS, WARMUP = 1, 1, 20
#: Seconds a load process lives at most, should this script die before stopping it.
LOAD_LIMIT_S = 1500
LOADS = {
    "python": "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n"
    "    pass\n",
    "numpy": "import time, numpy as np\na = np.random.rand(1024, 1024)\n"
    "end = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    a @ a\n",
}


def candidates() -> dict[str, Recipe]:
    fp32 = make_step("precision.fp32")
    return {
        "ort-fp32": Recipe(precision=fp32, backend=make_step("backend.onnxruntime")),
        "ort-int8-pc-ftz": Recipe(
            quantization=make_step(
                "quantization.dynamic_int8",
                {"per_channel": True, "op_types": ["Gemm", "MatMul"]},
            ),
            precision=fp32,
            backend=make_step("backend.onnxruntime", {"flush_denormals": True}),
        ),
        "compile-fp32": Recipe(precision=fp32, backend=make_step("backend.torch_compile")),
        "pt2e-int8": Recipe(
            quantization=make_step(
                "quantization.static_int8", {"calibration_samples": 64, "per_channel": True}
            ),
            precision=fp32,
            backend=make_step("backend.torch_compile", {"freezing": True, "mode": "default"}),
        ),
    }


@contextmanager
def load(kind: str, processes: int = 2) -> Iterator[None]:
    """``processes`` busy single-threaded processes of ``kind`` while inside (none: quiet)."""
    if kind == "quiet":
        yield
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    code = LOADS[kind].format(limit=LOAD_LIMIT_S)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(processes)]
    try:
        time.sleep(3)  # let them reach steady state
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


class Recorded:
    """A timed call that also records the CPU time of each call (its thread's)."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call, self.cpu_ns = call, list[int]()

    def __call__(self) -> Any:
        start = time.thread_time_ns()
        out = self.call()
        self.cpu_ns.append(time.thread_time_ns() - start)
        return out

    def take(self) -> list[int]:
        """The CPU times recorded since the last take, past the warm-up calls."""
        out, self.cpu_ns = self.cpu_ns[WARMUP:], []
        return out


def compile_all(workload: Any, cache: StageCache, work: Path) -> dict[str, Recorded]:
    """Build each candidate (stage cache), compile and verify it; its timed call at BATCH."""
    calls = {}
    for name, recipe in candidates().items():
        t0 = time.perf_counter()
        built = build(recipe, workload, cache, hardware.current(), work, device="cpu")
        artifact = load_artifact(built.path, built.kind)  # type: ignore[arg-type]
        backend = plugins.get_backend(recipe.backend.key)()
        runner = backend.compile(artifact, recipe.backend.config, THREADS, "cpu")
        agreement = verify(runner, workload, VerifyConfig(reference_samples=16))
        call = runner.timed(workload.example_inputs(BATCH))
        for _ in range(3):  # torch.compile compiles on its first calls
            call()
        print(f"{name}: ready in {time.perf_counter() - t0:.0f}s, agreement {agreement:.3f}")
        calls[name] = Recorded(reset_denormals(call))
    return calls


def reset_denormals(call: Callable[[], Any]) -> Callable[[], Any]:
    # The candidates share this process: one that flushes denormals (x86's MXCSR, per thread)
    # must not speed up the next one. Each measurement task has a process of its own.
    def wrapped() -> Any:
        torch.set_flush_denormal(False)
        return call()

    return wrapped


def timing(
    cand: Recorded, base: Recorded | None, runs: int, rounds: int
) -> tuple[dict[str, float], list[list[int]]]:
    """One timing as the measurement task takes it, with the extra estimators."""
    before = os.getloadavg()[0]
    s = time_rounds(cand, base, WARMUP, runs, rounds)
    load_avg = max(before, os.getloadavg()[0])
    share = cpu_share(s.cpu_s, s.wall_s, THREADS)
    c_wall = np.asarray(s.flat("candidate"), dtype=np.float64) / 1e6
    c_cpu = np.asarray(cand.take(), dtype=np.float64) / 1e6
    out = {
        "latency_p50_ms": float(np.percentile(c_wall, 50)),
        "latency_mean_ms": float(c_wall.mean()),
        "cpu_p50_ms": float(np.median(c_cpu)),
        "cpu_share": share,
        "load_avg_1m": load_avg,
        "host_loaded": float(host_loaded(load_avg, hardware.current().logical_cores, share)),
    }
    if base is not None:
        ratio = paired_ratio(s)
        b_cpu = np.asarray(base.take(), dtype=np.float64) / 1e6
        out |= {
            "paired_speedup": ratio.speedup,
            "paired_speedup_min": ratio.low,
            "paired_speedup_max": ratio.high,
            "paired_speedup_median": ratio.median,
            "baseline_latency_p50_ms": ratio.baseline_p50_ms,
            "cpu_ratio": float(np.median(b_cpu) / np.median(c_cpu)),
        }
    return out, s.candidate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, nargs="+", default=[LatencyConfig().rounds, 100])
    parser.add_argument("--load", choices=sorted(LOADS), default="python")
    parser.add_argument("--minutes", type=float, default=18.0, help="start no cycle after")
    args = parser.parse_args()
    start = time.monotonic()
    torch.set_num_threads(THREADS)
    workload = load_workload("minilm", OPTIONS)
    with tempfile.TemporaryDirectory(prefix="bench-paired-") as work:
        calls = compile_all(workload, StageCache(REPO / "results/cache"), Path(work))
    base = Recorded(baseline_calls(workload, THREADS, "cpu", [BATCH])[BATCH])
    # Trial 0: the baseline alone, quietly, at the start.
    trial0, _ = timing(base, None, args.runs, 1)
    print(f"baseline alone, quiet: p50 {trial0['latency_p50_ms']:.2f} ms", flush=True)
    rows: list[dict[str, Any]] = []
    conditions = ("quiet", args.load)
    cycle_s: list[float] = []
    for cycle in range(args.cycles):
        elapsed = time.monotonic() - start
        if cycle and elapsed + max(cycle_s) > args.minutes * 60:
            print(f"stopping after {cycle} cycles: the next would pass {args.minutes} minutes")
            break
        t_cycle = time.monotonic()
        for condition in conditions:
            with load(condition):
                for name, call in calls.items():
                    m, _ = timing(call, None, args.runs, 1)
                    m["unpaired_speedup"] = trial0["latency_p50_ms"] / m["latency_p50_ms"]
                    m["unpaired_cpu_speedup"] = trial0["cpu_p50_ms"] / m["cpu_p50_ms"]
                    rows.append(
                        {
                            "cycle": cycle,
                            "condition": condition,
                            "candidate": name,
                            "scheme": "alone",
                            **m,
                        }
                    )
                    for rounds in args.rounds:
                        m, _ = timing(call, base, args.runs, rounds)
                        rows.append(
                            {
                                "cycle": cycle,
                                "condition": condition,
                                "candidate": name,
                                "scheme": f"rounds={rounds}",
                                **m,
                            }
                        )
                    print(
                        f"cycle {cycle} {condition:6} {name:16} alone "
                        f"x{rows[-1 - len(args.rounds)]['unpaired_speedup']:.2f} "
                        + " ".join(
                            f"{r['scheme']}: x{r['paired_speedup']:.2f} "
                            f"(median x{r['paired_speedup_median']:.2f}, "
                            f"cpu x{r['cpu_ratio']:.2f}, "
                            f"share {r['cpu_share']:.2f})"
                            for r in rows[-len(args.rounds) :]
                        ),
                        flush=True,
                    )
        cycle_s.append(time.monotonic() - t_cycle)
    OUT.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(OUT / "raw.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    text = report(rows, trial0, args, conditions, time.monotonic() - start)
    (OUT / "benchmark.md").write_text(text)
    print(text)


def med(rows: list[dict[str, Any]], key: str, **where: Any) -> float:
    return statistics.median(r[key] for r in rows if all(r[k] == v for k, v in where.items()))


def spread(rows: list[dict[str, Any]], key: str, **where: Any) -> str:
    values = [r[key] for r in rows if all(r[k] == v for k, v in where.items())]
    return f"{(max(values) / min(values) - 1) * 100:.1f}%"


def delta(a: float, b: float) -> str:
    return f"{(b / a - 1) * 100:+.1f}%"


def report(
    rows: list[dict[str, Any]],
    trial0: dict,
    args: Any,
    conditions: tuple[str, str],
    seconds: float,
) -> str:
    hw = hardware.current()
    quiet, loaded = conditions
    names = list(dict.fromkeys(r["candidate"] for r in rows))
    cycles = len({r["cycle"] for r in rows})
    default = f"rounds={LatencyConfig().rounds}"
    schemes = [f"rounds={n}" for n in args.rounds]
    per_round = {n: round_sizes(args.runs, n)[0] for n in args.rounds}
    lines = [
        "# Paired timing: speedups on a quiet and a loaded host",
        "",
        f"Host: {hw.cpu_model}, {hw.logical_cores} logical cores ({hw.physical_cores} "
        f"physical), flags: {', '.join(hw.cpu_flags) or 'none of interest'}; torch "
        f"{hw.versions.get('torch')}, onnxruntime {hw.versions.get('onnxruntime')}. The "
        "machine is shared with other jobs, which come and go: 'quiet' means no load of ours "
        "(its load average and cpu_share are in the last table).",
        "",
        f"MiniLM (all-MiniLM-L6-v2) at batch {BATCH} / seq 128 / {THREADS} thread; each timing "
        f"is {args.runs} calls of each runner after {WARMUP} warm-up calls, all in one process "
        f"(candidates built into results/cache). {cycles} cycle(s) of quiet → loaded (2 busy "
        f"{args.load} processes); each figure is the median over the cycles. Baseline alone, "
        f"quietly, at the start (trial 0): p50 {trial0['latency_p50_ms']:.2f} ms. Took "
        f"{seconds / 60:.1f} minutes (`experiments/bench_paired.py`, raw numbers in `raw.csv`).",
        "",
        f"- **paired**: what the measurement task records (`{default}`, the default: "
        f"{per_round.get(LatencyConfig().rounds, '?')} calls of each runner per round, "
        "alternating ABBA): the baseline's total time / the candidate's.",
        "- **unpaired**: trial 0's p50 (quiet, at the start) / the candidate's p50 timed alone "
        "in the condition: what a study recorded before pairing.",
        "- **Δ**: loaded vs quiet (medians over the cycles); **spread**: the largest / the "
        "smallest of the candidate's timings over every cycle and condition, minus 1.",
        "",
        "| candidate | paired quiet | paired loaded | Δ paired | spread paired | "
        "unpaired quiet | unpaired loaded | Δ unpaired | spread unpaired |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        p = {
            c: med(rows, "paired_speedup", candidate=name, condition=c, scheme=default)
            for c in conditions
        }
        u = {
            c: med(rows, "unpaired_speedup", candidate=name, condition=c, scheme="alone")
            for c in conditions
        }
        lines.append(
            f"| {name} | {p[quiet]:.2f}x | {p[loaded]:.2f}x | {delta(p[quiet], p[loaded])} | "
            f"{spread(rows, 'paired_speedup', candidate=name, scheme=default)} | "
            f"{u[quiet]:.2f}x | {u[loaded]:.2f}x | {delta(u[quiet], u[loaded])} | "
            f"{spread(rows, 'unpaired_speedup', candidate=name, scheme='alone')} |"
        )
    lines += [
        "",
        "## Pairing schemes and estimators",
        "",
        "Quiet → loaded change of each estimator, per candidate, for each scheme (`rounds=N`: "
        f"the {args.runs} calls of each runner in N blocks; `rounds={args.runs}` alternates "
        "call by call). *totals* is the recorded paired speedup (ratio of total times); "
        "*medians* the ratio of median wall times (`paired_speedup_median`); *cpu* the ratio "
        "of median CPU times per call (the timing thread's), which the scheduler cannot "
        "stretch: what is left in it is interference (caches, memory bandwidth). Spread as "
        "above, over every cycle and condition. Last columns: the per-round range the "
        "measurement records (`paired_speedup_max / paired_speedup_min`), median over the "
        "timings of each condition.",
        "",
        "| scheme | candidate | Δ totals | spread totals | Δ medians | spread medians | Δ cpu "
        "| spread cpu | per-round range quiet | loaded |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scheme in schemes:
        for name in names:
            d = {
                k: delta(
                    med(rows, k, candidate=name, condition=quiet, scheme=scheme),
                    med(rows, k, candidate=name, condition=loaded, scheme=scheme),
                )
                for k in ("paired_speedup", "paired_speedup_median", "cpu_ratio")
            }
            sp = {
                k: spread(rows, k, candidate=name, scheme=scheme)
                for k in ("paired_speedup", "paired_speedup_median", "cpu_ratio")
            }
            rng = {
                c: statistics.median(
                    r["paired_speedup_max"] / r["paired_speedup_min"]
                    for r in rows
                    if r["scheme"] == scheme and r["condition"] == c and r["candidate"] == name
                )
                for c in conditions
            }
            lines.append(
                f"| {scheme} | {name} | {d['paired_speedup']} | {sp['paired_speedup']} | "
                f"{d['paired_speedup_median']} | {sp['paired_speedup_median']} | "
                f"{d['cpu_ratio']} | {sp['cpu_ratio']} | {rng[quiet]:.2f} | {rng[loaded]:.2f} |"
            )
    lines += [
        "",
        "## Absolute latency and the load flag",
        "",
        f"Candidate p50 (ms) timed alone and within the paired rounds (`{default}`), and what "
        "the measurement records about the host: `cpu_share` (process CPU time / (wall × "
        "threads) over the timed rounds), the 1-minute load average, and how many timings "
        f"were flagged `host_loaded` (load average > {hw.logical_cores} logical cores or "
        f"cpu_share < {MIN_CPU_SHARE}).",
        "",
        "| condition | candidate | p50 alone | p50 paired | cpu_share (min–max) | "
        "load avg (min–max) | flagged |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in conditions:
        for name in names:
            sel = [r for r in rows if r["condition"] == c and r["candidate"] == name]
            shares = [r["cpu_share"] for r in sel]
            loads = [r["load_avg_1m"] for r in sel]
            flagged = sum(r["host_loaded"] > 0 for r in sel)
            lines.append(
                f"| {c} | {name} | {med(sel, 'latency_p50_ms', scheme='alone'):.2f} | "
                f"{med(sel, 'latency_p50_ms', scheme=default):.2f} | "
                f"{min(shares):.2f}–{max(shares):.2f} | {min(loads):.1f}–{max(loads):.1f} | "
                f"{flagged}/{len(sel)} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
