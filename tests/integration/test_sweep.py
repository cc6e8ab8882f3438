"""Sweeps end to end through the public API: real Ray tasks, a real SQLite study."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest

import autoopt
from autoopt.cache import StageCache
from autoopt.errors import ConfigError
from autoopt.study import schema as R
from autoopt.study.schema import ATTR_RECOMBINED, ATTR_SEED

SMALL_SPACE = """
parameters:
  pruning.method: [none, structured]
  pruning.structured.amount: [0.25, 0.5]
  pruning.structured.recovery_steps: [0, 50]
  precision.method: [fp32]
  backend.method: [torch_eager, onnxruntime]
"""


def test_run_records_baseline_metrics_front_and_results(
    ray_session, make_experiment, tmp_path: Path
) -> None:
    exp = make_experiment(SMALL_SPACE, n_trials=5)
    summary = autoopt.run(exp)
    assert summary.trials_run == 5
    study = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db")
    assert len(study.trials) == 5
    base = study.trials[0]
    assert base.is_baseline and base.state == "COMPLETE"
    assert base.recipe_str == "fp32 @ torch_eager"
    for t in study.trials:
        if t.state == "COMPLETE":
            for metric in (
                "accuracy",
                "latency_p50_ms",
                "latency_p90_ms",
                "latency_p99_ms",
                "size_mb",
                "peak_memory_mb",
                "params",
            ):
                assert metric in t.metrics, (t.number, metric)
            assert (
                t.metrics["latency_p50_ms"]
                <= t.metrics["latency_p90_ms"]
                <= t.metrics["latency_p99_ms"]
            )
            assert t.hardware["cpu_model"] and t.hardware["versions"]["torch"].startswith("2.13")
            assert t.metrics["latency_runs"] == 20
            # Timed beside the baseline in the measurement's process: the recorded speedup
            # (and every reader's) is that paired ratio, not one against trial 0's timing.
            assert t.metrics["speedup"] == t.metrics["paired_speedup"]
            assert study.ratios(t)["speedup"] == t.metrics["paired_speedup"]
            assert t.metrics["baseline_latency_p50_ms"] > 0
            assert t.metrics["host_loaded"] in (0.0, 1.0) and t.metrics["cpu_share"] > 0
    # The baseline is not paired with itself.
    assert base.metrics["paired_speedup"] == 1.0
    assert base.metrics["baseline_latency_p50_ms"] == base.metrics["latency_p50_ms"]
    # Every trial on the front is feasible and none dominates another.
    front = study.front()
    assert front and all(t.feasible for t in front)
    assert [t.number for t in summary.front] == [t.number for t in front]
    out = summary.results_dir
    assert out is not None
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 5 and "latency_p50_ms" in trials.columns
    assert len(pd.read_csv(out / "pareto.csv")) == len(front)
    assert (out / "pareto.png").stat().st_size > 10_000
    # Optuna itself sees the constraint: best_trials holds only feasible trials.
    raw = optuna.load_study(study_name="exp", storage=f"sqlite:///{tmp_path}/study.db")
    assert all(max(t.constraints.values()) <= 0 for t in raw.best_trials)


def test_run_again_continues_study_and_reuses_cache(
    ray_session, make_experiment, tmp_path: Path
) -> None:
    space = """
    parameters:
      pruning.method: [structured]
      pruning.structured.amount: [0.5]
      pruning.structured.recovery_steps: [50]
      precision.method: [fp32]
      backend.method: [onnxruntime]
    """
    exp = make_experiment(space, n_trials=2, workers=1)
    first = autoopt.run(exp)
    assert first.cache_builds >= 2  # pruning + ONNX export built once
    assert first.duplicates == 0

    # The space has one candidate, measured above: asked again, it is told that measurement
    # instead of being rebuilt and re-timed.
    second = autoopt.run(exp, n_trials=2)
    study = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db")
    assert len(study.trials) == 4
    assert sum(t.is_baseline for t in study.trials) == 1  # the baseline is not re-run
    assert second.duplicates == 2 and second.cache_builds == second.cache_hits == 0
    measured = study.trials[1]
    for repeat in study.trials[2:]:
        assert repeat.state == "COMPLETE" and repeat.user_attrs["duplicate_of"] == 1
        assert repeat.values == measured.values and repeat.metrics == measured.metrics
        assert repeat.recipe == measured.recipe and repeat.stages == []
        assert not repeat.on_front  # the front lists the candidate once
    assert [t.number for t in study.front()].count(1) == measured.on_front

    # A new candidate sharing the first stages reuses them from the cache.
    make_experiment(
        space.replace(
            "backend.method", "quantization.method: [dynamic_int8]\n      backend.method"
        ),
        n_trials=1,
        workers=1,
    )
    third = autoopt.run(exp)
    study = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db")
    assert third.duplicates == 0 and third.cache_builds == 1  # the quantization stage only
    assert third.cache_hits >= 2 and third.cache_saved_s > 0
    reused = [e for e in study.trials[-1].stages if e["hit"]]
    assert {e["stage"] for e in reused} >= {"pruning.structured", "export.onnx"}
    assert len(StageCache(tmp_path / "cache").entries()) >= 4


def test_run_refuses_to_resume_a_study_measured_with_another_workload_version(
    ray_session, make_experiment, tmp_path: Path
) -> None:
    space = "parameters:\n  precision.method: [fp32]\n  backend.method: [torch_eager]\n"
    exp = make_experiment(space, n_trials=1)
    autoopt.run(exp)
    url = f"sqlite:///{tmp_path}/study.db"
    raw = optuna.load_study(study_name="exp", storage=url)
    # As if the workload's data had changed since (another train_size, new weights).
    raw.set_user_attr(R.STUDY_WORKLOAD_VERSION, "0123456789abcdef")
    with pytest.raises(ConfigError, match=r"exp\.yaml: workload: .*version 0123456789abcdef"):
        autoopt.run(exp)
    study = autoopt.load_study("exp", url)
    assert len(study.trials) == 1 and study.trials[0].state == "COMPLETE"


def test_broken_candidates_fail_with_reason_and_sweep_goes_on(
    ray_session, make_experiment, tmp_path: Path
) -> None:
    space = """
    parameters:
      pruning.method: [none, sabotage]
      pruning.sabotage.mode: [nan, raise, garbage]
      precision.method: [fp32]
      backend.method: [torch_eager]
    """
    exp = make_experiment(space, n_trials=12, extra="plugins: [tests.plugins.broken_techniques]\n")
    summary = autoopt.run(exp, sampler="grid")
    study = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db")
    # The grid (2 methods x 3 modes) is exhausted before the trial budget: the sweep stops.
    assert 7 <= len(study.trials) < 12, [t.params for t in study.trials]
    failed = [t for t in study.trials if t.state == "FAIL"]
    reasons = " | ".join(t.failure_reason for t in failed)
    modes = {
        t.recipe["pruning"]["config"]["mode"] for t in failed if t.recipe and t.recipe["pruning"]
    }
    assert modes == {"nan", "raise", "garbage"}, reasons
    assert "non-finite" in reasons or "NaN" in reasons
    assert "always fails" in reasons
    assert "unrelated to the teacher" in reasons
    assert all(not t.on_front for t in failed)
    assert summary.completed == sum(t.state == "COMPLETE" for t in study.trials) >= 2


def test_a_path_the_host_self_test_fails_is_refused_before_anything_is_built(
    ray_session, make_experiment, tmp_path: Path
) -> None:
    space = """
    parameters:
      quantization.method: [none, wrong_int8, dynamic_int8]
      precision.method: [fp32]
      backend.method: [torch_eager]
    """
    exp = make_experiment(space, n_trials=5, extra="plugins: [tests.plugins.wrong_kernels]\n")
    autoopt.run(exp, sampler="grid")
    study = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db")
    wrong = [t for t in study.trials if t.technique("quantization") == "wrong_int8"]
    assert wrong, [t.recipe_str for t in study.trials]
    for t in wrong:
        assert t.status == "rejected" and t.failure_stage == "check", t.failure_reason
        assert t.failure_reason.startswith("host self-test: ") and "cosine" in t.failure_reason
        assert not t.stages  # refused before any stage was built
    int8 = [t for t in study.trials if t.technique("quantization") == "dynamic_int8"]
    assert int8 and all(t.state == "COMPLETE" for t in int8)
    found = [v for k, v in study.user_attrs.items() if k.startswith("selftest:")]
    assert len(found) == 1
    statuses = {p["path"]: p["status"] for p in found[0]["paths"]}
    assert sorted(statuses.values()).count("fail") == 1, statuses


def test_seed_candidate_may_set_what_the_space_fixes(
    ray_session, make_experiment, tmp_path: Path
) -> None:
    # The standard int8 recipe is per-tensor while the space searches per-channel only: the
    # seed's value is the one built and recorded, and sampled trials keep the space's.
    space = """
    parameters:
      quantization.method: [none, dynamic_int8]
      quantization.dynamic_int8.per_channel: true
      precision.method: fp32
      backend.method: torch_eager
    """
    seed = """
    seed_candidates:
      - name: per-tensor
        params: {quantization.method: dynamic_int8, quantization.dynamic_int8.per_channel: false}
    """
    autoopt.run(make_experiment(space, n_trials=6, extra=seed))
    study = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db")
    int8 = {
        t.number: (t.user_attrs.get(ATTR_SEED), t.recipe["quantization"]["config"]["per_channel"])
        for t in study.trials
        if t.state == "COMPLETE" and t.recipe and t.recipe.get("quantization")
    }
    assert int8[1] == ("per-tensor", False), int8
    assert all(per_channel for n, (_, per_channel) in int8.items() if n != 1), int8


def test_recombine_pairs_front_models_with_front_settings(
    ray_session, make_experiment, tmp_path: Path
) -> None:
    # The baseline (teacher, eager) is the most accurate point and the pruned seed on ONNX
    # Runtime the fastest: both are on the front, so the teacher on ONNX Runtime and the pruned
    # model on eager are queued and measured before the sampler proposes anything.
    space = """
    parameters:
      pruning.method: [none, structured]
      pruning.structured.amount: 0.5
      pruning.structured.recovery_steps: 0
      precision.method: fp32
      backend.method: [torch_eager, onnxruntime]
    """
    seed = """
    seed_candidates:
      - name: pruned-ort
        params: {pruning.method: structured, backend.method: onnxruntime}
    """
    exp = make_experiment(
        space, n_trials=4, workers=1, extra=seed, sampler="{name: random, seed: 3, recombine: 2}"
    )
    autoopt.run(exp)
    study = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db")
    by_number = {t.number: t for t in study.trials}
    base, pruned = by_number[0], by_number[1]
    assert pruned.metrics["accuracy"] < base.metrics["accuracy"]
    assert pruned.metrics["latency_p50_ms"] < base.metrics["latency_p50_ms"]
    built = {
        (t.recipe.get("pruning") is not None, t.recipe["backend"]["key"]): t.user_attrs[
            ATTR_RECOMBINED
        ]
        for t in (by_number[2], by_number[3])
    }
    assert built == {
        (False, "backend.onnxruntime"): {"model_from": 0, "settings_from": 1},
        (True, "backend.torch_eager"): {"model_from": 1, "settings_from": 0},
    }
    # The pruned model was built once: its recombination took it from the stage cache.
    eager_pruned = next(t for t in (by_number[2], by_number[3]) if t.recipe.get("pruning"))
    assert [e["hit"] for e in eager_pruned.stages if e["stage"].startswith("pruning")] == [True]
