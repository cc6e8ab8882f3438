"""Paired timing: a candidate and the baseline timed in alternating rounds in one process.

A speedup computed from two timings taken minutes apart, in different processes, carries any
change of the host's load between them (a standard recipe read 5.09x under load, 1.74x
quietly). Timed in alternating rounds, both runners share the same load, so their ratio does
not depend on it.

The scheme: ``rounds`` rounds, each timing a block of consecutive calls of one runner and then
of the other, the order alternating from round to round (candidate-baseline, baseline-
candidate, ...: an ABBA sequence), so a load that drifts steadily over two rounds weighs on
both equally. Blocks of several calls rather than single calls: the first call after a switch
finds the caches holding the other model, a cost that a block pays once.

The paired speedup is a ratio of total (equivalently mean) times, not of medians. A
descheduled thread's call is stretched by the time others ran meanwhile, which on average
grows in proportion to the call's own CPU time: totals keep the ratio. Medians do not: a
short call often completes within one time slice while a long one never does, so under
contention the ratio of medians is biased. In three benchmark runs on a 2-core host, quiet vs
two busy processes, the ratio of totals moved by at most 6-13% per run and the ratio of
medians by at most 11-17% (results/paired/).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Role = Literal["candidate", "baseline"]

#: A measurement whose timing threads got less than this share of their CPU time was
#: contended (descheduled for other processes). On the 2-core benchmark host, 1-thread MiniLM
#: timings read 0.95-1.00 whenever nothing else ran and 0.16-0.70 whenever other work
#: competed, our two busy processes or other jobs (results/paired/raw.csv): one competing
#: thread already takes a third. 0.9 sits in that gap, with room for the process's own
#: background threads (Ray's).
MIN_CPU_SHARE = 0.9
#: A call this many times its runner's median is a stall (a page-in, the collector, the
#: process swapped out), not a time-slicing stretch (2-5x on the 2-core host): its round is
#: left out of the totals. In one README digits sweep a baseline round holding a call of
#: hundreds of ms among 0.05 ms calls read 151x for a candidate whose rounds read 2-5x.
STALL = 50.0


@dataclass(frozen=True)
class RoundSamples:
    """Per-call latencies (ns) of each round, and the cost of the timed section."""

    candidate: list[list[int]]
    #: Empty when the candidate was timed alone (the baseline trial, or ``paired: false``).
    baseline: list[list[int]]
    #: The roles in the order they were timed, round by round.
    order: list[tuple[Role, ...]]
    #: Process CPU time and wall time over the timed rounds (warm-up excluded).
    cpu_s: float
    wall_s: float

    @property
    def paired(self) -> bool:
        return bool(self.baseline)

    def flat(self, role: Role) -> list[int]:
        blocks = self.candidate if role == "candidate" else self.baseline
        return [s for block in blocks for s in block]


@dataclass(frozen=True)
class PairedRatio:
    """The baseline's total time over the candidate's, over the rounds without a stall
    (``speedup``; see :data:`STALL`), and the lowest and highest of the same ratio round by
    round (``speedup`` lies between them: it is an average of the kept rounds' ratios
    weighted by the candidate's time); the ratio of the two medians
    (``median``, for comparison); the baseline's median in ms."""

    speedup: float
    low: float
    high: float
    median: float
    baseline_p50_ms: float


def round_sizes(runs: int, rounds: int) -> list[int]:
    """``runs`` calls split into ``min(rounds, runs)`` blocks as even as possible."""
    if runs < 1 or rounds < 1:
        raise ValueError(f"runs and rounds must be >= 1, got runs={runs}, rounds={rounds}")
    n = min(rounds, runs)
    return [runs // n + (1 if i < runs % n else 0) for i in range(n)]


def round_order(index: int) -> tuple[Role, Role]:
    """Who goes first in round ``index``: the candidate in even rounds, the baseline in odd."""
    return ("candidate", "baseline") if index % 2 == 0 else ("baseline", "candidate")


def _block(fn: Callable[[], Any], n: int) -> list[int]:
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return samples


def time_rounds(
    candidate: Callable[[], Any],
    baseline: Callable[[], Any] | None,
    warmup: int,
    runs: int,
    rounds: int,
) -> RoundSamples:
    """Warm up both callables, then time ``runs`` calls of each in alternating rounds (of the
    candidate alone when ``baseline`` is None)."""
    fns: dict[Role, Callable[[], Any]] = {"candidate": candidate}
    if baseline is not None:
        fns["baseline"] = baseline
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[Role, list[list[int]]] = {"candidate": [], "baseline": []}
    order: list[tuple[Role, ...]] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i, n in enumerate(round_sizes(runs, rounds)):
        roles = tuple(r for r in round_order(i) if r in fns)
        for role in roles:
            out[role].append(_block(fns[role], n))
        order.append(roles)
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    return RoundSamples(out["candidate"], out["baseline"], order, cpu_s, wall_s)


def paired_ratio(samples: RoundSamples) -> PairedRatio:
    """The paired speedup of interleaved samples; 1.0 (and the candidate's own median as the
    baseline's) when the candidate was timed alone, as the baseline trial is."""
    # Medians in ms through np.percentile, as LatencyStats computes the candidate's p50.
    cand = np.asarray(samples.flat("candidate"), dtype=np.float64) / 1e6
    if not samples.paired:
        return PairedRatio(1.0, 1.0, 1.0, 1.0, float(np.percentile(cand, 50)))
    base = np.asarray(samples.flat("baseline"), dtype=np.float64) / 1e6
    rounds = list(zip(samples.candidate, samples.baseline, strict=True))
    per_round = [sum(b) / sum(c) for c, b in rounds]
    base_p50, cand_p50 = float(np.percentile(base, 50)), float(np.percentile(cand, 50))
    # The samples are in ns, the medians in ms.
    stall_c, stall_b = STALL * cand_p50 * 1e6, STALL * base_p50 * 1e6
    kept = [(c, b) for c, b in rounds if max(c) <= stall_c and max(b) <= stall_b] or rounds
    return PairedRatio(
        speedup=sum(sum(b) for _, b in kept) / sum(sum(c) for c, _ in kept),
        low=min(per_round),
        high=max(per_round),
        median=base_p50 / cand_p50,
        baseline_p50_ms=base_p50,
    )


def cpu_share(cpu_s: float, wall_s: float, threads: int) -> float:
    """The process's CPU time over what its ``threads`` timing threads could have used: a
    thread that was descheduled while a call ran shows as a share below 1."""
    if wall_s <= 0 or threads < 1:
        return 1.0
    return cpu_s / (wall_s * threads)


def host_loaded(
    load_avg_1m: float, logical_cores: int, share: float, min_share: float = MIN_CPU_SHARE
) -> bool:
    """Whether a timing was taken on a busy host: more runnable work than cores on average
    over the last minute, or the timing threads themselves kept waiting for a core."""
    return load_avg_1m > logical_cores or share < min_share
