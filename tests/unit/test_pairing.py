"""Paired timing: the round schedule, the ratio, the load flag, and measure() using them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from autoopt import measure as M
from autoopt.artifacts import TorchArtifact
from autoopt.backends.torch_eager import TorchRunner
from autoopt.config import LatencyConfig, VerifyConfig
from autoopt.dashboard import _trial_views as T
from autoopt.dashboard import _views as V
from autoopt.pairing import (
    MIN_CPU_SHARE,
    RoundSamples,
    cpu_share,
    host_loaded,
    paired_ratio,
    round_order,
    round_sizes,
    time_rounds,
)
from autoopt.recipe import Recipe
from autoopt.resolve import baseline_recipe, make_step
from autoopt.study.records import load_note, study_record
from autoopt.workloads import Workload
from tests.synthetic_studies import create_synthetic_study


def test_round_sizes_split_runs_evenly_and_never_leave_a_round_empty() -> None:
    assert round_sizes(10, 3) == [4, 3, 3]
    assert round_sizes(100, 10) == [10] * 10
    assert round_sizes(5, 10) == [1] * 5
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        round_sizes(10, 0)


def test_round_order_alternates_so_the_sequence_is_abba() -> None:
    sequence = [role for i in range(4) for role in round_order(i)]
    c, b = "candidate", "baseline"
    assert sequence == [c, b, b, c, c, b, b, c]


def test_time_rounds_times_both_runners_in_alternating_blocks_after_warmup() -> None:
    log: list[str] = []
    samples = time_rounds(
        lambda: log.append("c"), lambda: log.append("b"), warmup=2, runs=6, rounds=3
    )
    assert log[:4] == ["c", "c", "b", "b"]  # both warmed up before the first round
    assert "".join(log[4:]) == "cc" + "bb" + "bb" + "cc" + "cc" + "bb"
    c, b = "candidate", "baseline"
    assert samples.order == [(c, b), (b, c), (c, b)]
    assert [len(b) for b in samples.candidate] == [len(b) for b in samples.baseline] == [2, 2, 2]
    assert samples.paired and samples.wall_s > 0


def test_time_rounds_times_the_candidate_alone_without_a_baseline() -> None:
    log: list[str] = []
    samples = time_rounds(lambda: log.append("c"), None, warmup=1, runs=4, rounds=2)
    assert log == ["c"] * 5 and samples.baseline == [] and not samples.paired
    assert samples.order == [("candidate",), ("candidate",)]


def test_paired_ratio_is_the_ratio_of_total_times_with_the_per_round_range() -> None:
    samples = RoundSamples(
        candidate=[[10, 11, 12], [10, 30, 11]],
        baseline=[[20, 22, 24], [21, 20, 90]],
        order=[("candidate", "baseline"), ("baseline", "candidate")],
        cpu_s=1.0,
        wall_s=1.0,
    )
    ratio = paired_ratio(samples)
    assert ratio.speedup == pytest.approx((66 + 131) / (33 + 51))
    # Round by round: 66/33 and 131/51; the overall ratio is their weighted average.
    assert (ratio.low, ratio.high) == (pytest.approx(2.0), pytest.approx(131 / 51))
    assert ratio.low <= ratio.speedup <= ratio.high
    # Medians over all samples: baseline 21.5, candidate 11.
    assert ratio.median == pytest.approx(21.5 / 11)
    assert ratio.baseline_p50_ms == pytest.approx(21.5e-6)


def test_paired_ratio_of_totals_survives_time_slicing_where_medians_do_not() -> None:
    # Half the CPU: 40 units on, 40 off. The candidate's calls (10 units of work) fit in a
    # slice three times out of four and wait out one gap otherwise; the baseline's (40 units)
    # always wait one gap. Both take twice their work on average: the true speedup, 4, is
    # what the totals give; the medians (80 / 10) double it.
    samples = RoundSamples(
        candidate=[[10, 10], [10, 50]],
        baseline=[[80, 80], [80, 80]],
        order=[("candidate", "baseline"), ("baseline", "candidate")],
        cpu_s=1.0,
        wall_s=2.0,
    )
    ratio = paired_ratio(samples)
    assert ratio.speedup == pytest.approx(4.0)
    assert ratio.median == pytest.approx(8.0)


def test_a_round_with_a_stalled_call_is_left_out_of_the_totals() -> None:
    # Three rounds at 5x; in the middle one a baseline call stalled for 10,000 times its work
    # (a page-in, the process swapped out). Kept, it would make the speedup ~3,300x.
    samples = RoundSamples(
        candidate=[[10, 10], [10, 10], [10, 10]],
        baseline=[[50, 50], [50, 500_000], [50, 50]],
        order=[("candidate", "baseline"), ("baseline", "candidate"), ("candidate", "baseline")],
        cpu_s=1.0,
        wall_s=1.0,
    )
    ratio = paired_ratio(samples)
    assert ratio.speedup == pytest.approx(5.0)
    assert ratio.high == pytest.approx(500_050 / 20)  # the round's own ratio is still shown
    # Without the stall every round counts: a slow call within 50x of the median stays.
    samples.baseline[1][1] = 2_000
    assert paired_ratio(samples).speedup == pytest.approx((100 + 2_050 + 100) / 60)


def test_paired_ratio_is_one_when_the_candidate_was_timed_alone() -> None:
    samples = RoundSamples([[4_000_000, 6_000_000]], [], [("candidate",)], 0.0, 1.0)
    ratio = paired_ratio(samples)
    assert (ratio.speedup, ratio.low, ratio.high, ratio.median) == (1.0, 1.0, 1.0, 1.0)
    assert ratio.baseline_p50_ms == pytest.approx(5.0)


def test_host_loaded_flags_load_above_the_cores_or_a_low_cpu_share() -> None:
    assert not host_loaded(load_avg_1m=1.5, logical_cores=2, share=0.99)
    assert host_loaded(load_avg_1m=2.5, logical_cores=2, share=0.99)
    assert not host_loaded(load_avg_1m=2.5, logical_cores=4, share=0.99)
    assert host_loaded(load_avg_1m=0.1, logical_cores=64, share=MIN_CPU_SHARE - 0.01)
    assert not host_loaded(load_avg_1m=0.1, logical_cores=64, share=MIN_CPU_SHARE)
    assert host_loaded(load_avg_1m=0.1, logical_cores=64, share=0.5, min_share=0.6)


def test_cpu_share_is_cpu_time_over_wall_time_per_thread() -> None:
    assert cpu_share(cpu_s=1.0, wall_s=1.0, threads=1) == 1.0
    assert cpu_share(cpu_s=1.0, wall_s=1.0, threads=4) == 0.25
    assert cpu_share(cpu_s=0.0, wall_s=0.0, threads=1) == 1.0  # nothing was timed


def test_a_timed_call_that_waits_off_the_cpu_shows_a_low_share_and_is_flagged() -> None:
    # A sleeping thread, like a descheduled one, uses no CPU time while its call runs.
    samples = time_rounds(lambda: time.sleep(0.002), None, warmup=0, runs=10, rounds=2)
    share = cpu_share(samples.cpu_s, samples.wall_s, threads=1)
    assert share < 0.5
    assert host_loaded(0.0, 64, share)


class _Stack(nn.Module):
    """``depth`` square Linear layers: its cost grows with depth."""

    def __init__(self, depth: int, width: int = 128) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def test_time_candidate_pairs_two_real_models_and_orders_their_ratio() -> None:
    torch.manual_seed(0)
    x = [np.random.default_rng(0).standard_normal((16, 128)).astype(np.float32)]
    cheap = TorchRunner(_Stack(1), threads=1).timed(x)
    costly = TorchRunner(_Stack(24), threads=1).timed(x)
    latency = LatencyConfig(warmup=2, runs=20, rounds=4, extra_batch_sizes=[16])
    m = M.time_candidate([(1, cheap), (16, cheap)], {1: costly, 16: costly}, latency)
    # 24 layers against 1: whatever the host's load, the cheap candidate is faster.
    assert m["paired_speedup"] > 1.5 and m["paired_speedup@b16"] > 1.5
    assert m["paired_speedup_median"] > 1.5 and m["paired_speedup_median@b16"] > 1.5
    assert m["paired_speedup_min"] <= m["paired_speedup"] <= m["paired_speedup_max"]
    assert m["baseline_latency_p50_ms"] > m["latency_p50_ms"]
    assert m["latency_runs"] == 20 and m["latency_p50_ms@b16"] > 0
    assert m["host_loaded"] in (0.0, 1.0) and m["cpu_share"] > 0 and m["load_avg_1m"] >= 0
    # The reverse pairing reads the reverse ratio.
    r = M.time_candidate([(1, costly)], {1: cheap}, latency)
    assert r["paired_speedup"] < 1 / 1.5


def test_time_candidate_unpaired_records_no_paired_metrics() -> None:
    call = TorchRunner(_Stack(1), threads=1).timed([np.zeros((1, 128), np.float32)])
    m = M.time_candidate([(1, call)], {}, LatencyConfig(runs=10, paired=False))
    assert "paired_speedup" not in m and "baseline_latency_p50_ms" not in m
    assert m["latency_runs"] == 10 and "host_loaded" in m


def _measure(workload: Workload, recipe: Recipe, tmp_path: Path, **latency: Any) -> dict:
    settings = LatencyConfig(warmup=2, runs=20, rounds=5, **latency)
    return M.measure(
        TorchArtifact(workload.model), recipe, workload, settings, VerifyConfig(), tmp_path
    ).metrics


def test_measure_of_the_baseline_records_paired_speedup_one_without_a_second_timing(
    workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the baseline trial must not be paired with itself")

    monkeypatch.setattr(M, "baseline_calls", refuse)
    m = _measure(workload, baseline_recipe(), tmp_path, extra_batch_sizes=[8])
    assert m["paired_speedup"] == m["paired_speedup@b8"] == m["paired_speedup_median"] == 1.0
    assert m["paired_speedup_min"] == m["paired_speedup_max"] == 1.0
    assert m["baseline_latency_p50_ms"] == m["latency_p50_ms"]
    assert m["latency_runs"] == 20


def test_measure_of_a_candidate_times_the_teacher_beside_it(
    workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[int, str, list[int]]] = []
    real = M.baseline_calls

    def spy(wl: Workload, threads: int, device: str, sizes: list[int]) -> Any:
        built.append((threads, device, sizes))
        return real(wl, threads, device, sizes)

    monkeypatch.setattr(M, "baseline_calls", spy)
    # The teacher itself under a non-baseline recipe: timed beside the baseline runner.
    recipe = Recipe(
        pruning=make_step("pruning.unstructured", {"amount": 0.1}),
        precision=make_step("precision.fp32"),
        backend=make_step("backend.torch_eager"),
    )
    m = _measure(workload, recipe, tmp_path, extra_batch_sizes=[8])
    assert built == [(1, "cpu", [1, 8])]
    for suffix in ("", "@b8"):
        assert m[f"baseline_latency_p50_ms{suffix}"] > 0
        assert m[f"paired_speedup{suffix}"] > 0
    assert {"load_avg_1m", "cpu_share", "host_loaded"} <= set(m)


def test_measure_restores_denormals_for_the_baseline_after_a_candidate_flushed_them(
    workload: Workload,
) -> None:
    calls = M.baseline_calls(workload, 1, "cpu", [1])
    torch.set_flush_denormal(True)  # as an ONNX Runtime candidate with flush_denormals leaves it
    try:
        calls[1]()
        # 1e-40 is a float32 denormal: flushed to zero only while FTZ/DAZ is on.
        assert torch.tensor([1e-40], dtype=torch.float32).item() != 0.0
    finally:
        torch.set_flush_denormal(False)


def test_latency_config_pairs_by_default_in_rounds_capped_at_runs() -> None:
    assert LatencyConfig().paired and LatencyConfig().rounds == 20
    # A worker rebuilds the config from its dump: rounds > runs must stay valid (call by call).
    dumped = LatencyConfig(runs=10).model_dump()
    assert round_sizes(10, LatencyConfig(**dumped).rounds) == [1] * 10


def test_records_use_the_paired_speedup_and_mark_loaded_trials() -> None:
    study = create_synthetic_study(optuna.storages.InMemoryStorage(), "s", n_trials=14)
    record = study_record(study, "memory")
    loaded = [t for t in record.trials if t.host_loaded]
    assert len(loaded) == 1
    t = loaded[0]
    assert t.load_note == "loaded (load 3.1, cpu 62%)"
    assert record.ratios(t)["speedup"] == t.metrics["paired_speedup"]
    row = V.trial_row(record, t, V.families(record))
    assert row["loaded"] == t.load_note and row["load"] == 3.1
    facts = T.timing_facts(t)
    assert facts["paired"] == t.metrics["paired_speedup"] and facts["low"] < facts["high"]
    quiet = next(x for x in record.trials if x.state == "COMPLETE" and not x.host_loaded)
    assert quiet.load_note == "" and V.trial_row(record, quiet, [])["loaded"] is None


def test_load_note_ignores_missing_and_nan_flags() -> None:
    assert load_note({}) == ""
    assert load_note({"host_loaded": float("nan")}) == ""  # a frame row of a failed trial
    assert load_note({"host_loaded": 1.0}) == "loaded"
    assert load_note({"host_loaded": 1.0, "load_avg_1m": 4.26}) == "loaded (load 4.3)"
