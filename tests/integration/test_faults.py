"""Fault tolerance: killed workers, hung and memory-hungry candidates, a killed controller,
Ctrl-C. Every completed trial survives and no trial is counted twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import psutil

import autoopt
from autoopt.search.ledger import counts_toward_budget

PLUGINS = "plugins: [tests.plugins.slow_techniques]\n"


def _space(method: str, seconds: float = 4.0) -> str:
    return f"""
    parameters:
      pruning.method: [{method}]
      pruning.sleep.seconds: [{seconds}]
      precision.method: [fp32]
      backend.method: [torch_eager]
    """


def _kill_once(task_name: str, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the Ray worker process that is running ``task_name`` (its process title).

    Only this test session's own Ray (descendants of this process) is searched: another sweep
    on the same machine may run a task of the same name.
    """
    me = psutil.Process(os.getpid())
    while not stop.is_set() and not killed:
        for proc in me.children(recursive=True):
            try:
                cmd = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if cmd.startswith(f"ray::{task_name}"):
                time.sleep(1.0)  # well inside the technique's sleep
                proc.kill()
                killed.append(proc.pid)
                return
        time.sleep(0.1)


def test_worker_killed_mid_trial_is_retried_and_completes(
    ray_session, make_experiment, tmp_path: Path
) -> None:
    exp = make_experiment(_space("sleep", 5.0), n_trials=2, workers=1, extra=PLUGINS)
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_once, args=("build-1", killed, stop), daemon=True)
    killer.start()
    try:
        summary = autoopt.run(exp)
    finally:
        stop.set()
    assert killed, "the build worker was never seen"
    study = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db")
    assert [t.state for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert study.trials[1].user_attrs["retries"] == 1
    assert summary.completed == 2


def test_hung_candidate_is_cancelled_at_trial_timeout_but_the_baseline_is_not(
    ray_session, make_experiment, tmp_path: Path
) -> None:
    # A limit shorter than the baseline's own measurement (a fresh worker imports torch and
    # loads the workload): a candidate-sized limit must not cancel the baseline.
    exp = make_experiment(
        _space("sleep", 600.0), n_trials=2, workers=2, extra=PLUGINS, trial_timeout_s=1
    )
    start = time.monotonic()
    summary = autoopt.run(exp)
    assert time.monotonic() - start < 500  # left alone, the candidate sleeps for 600 s
    base, hung = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db").trials
    assert base.is_baseline and base.state == "COMPLETE" and summary.baseline is not None
    assert hung.state == "FAIL" and hung.failure_stage == "build"
    assert "exceeded the per-trial timeout of 1s" in hung.failure_reason
    # With two workers, the candidate was still dispatched only once the baseline was told.
    assert base.completed is not None and hung.started is not None
    assert hung.started >= base.completed


def test_time_budget_cancels_the_running_trial_and_queues_it_again(
    ray_session, make_experiment, tmp_path: Path
) -> None:
    exp = make_experiment(
        _space("sleep", 600.0), n_trials=3, workers=1, extra=PLUGINS, trial_timeout_s=900
    )
    start = time.monotonic()
    summary = autoopt.run(exp, timeout=60)
    # Left to finish, the sleeping candidate would hold the run for ten minutes.
    assert time.monotonic() - start < 400
    assert summary.stopped == "timeout"
    trials = _trials(f"sqlite:///{tmp_path}/study.db")
    done, cut, queued = trials
    assert done.user_attrs["is_baseline"] and done.state == optuna.trial.TrialState.COMPLETE
    assert cut.state == optuna.trial.TrialState.FAIL
    assert "cancelled at the run's time budget of 60s" in cut.user_attrs["failure_reason"]
    # The next run of the study starts with it, as it was.
    assert queued.state == optuna.trial.TrialState.WAITING
    assert queued.user_attrs["requeued_from"] == cut.number
    assert queued.system_attrs["fixed_params"] == cut.params


def test_out_of_memory_candidate_is_recorded_with_reason(
    ray_session, make_experiment, tmp_path: Path
) -> None:
    space = """
    parameters:
      pruning.method: [greedy]
      precision.method: [fp32]
      backend.method: [torch_eager]
    """
    exp = make_experiment(space, n_trials=2, workers=1, extra=PLUGINS)
    autoopt.run(exp)
    greedy = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db").trials[1]
    assert greedy.state == "FAIL"
    assert "MemoryError" in greedy.failure_reason and greedy.failure_stage == "pruning.greedy"


def _cli(exp: Path, repo: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "autoopt.cli", "run", str(exp)],
        cwd=repo,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name="exp", storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return []


def _wait_for(storage: str, complete: int, running: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trials = _trials(storage)
        states = [t.state for t in trials]
        if (
            states.count(optuna.trial.TrialState.COMPLETE) >= complete
            and states.count(optuna.trial.TrialState.RUNNING) >= running
        ):
            return
        time.sleep(0.3)
    raise AssertionError(f"study never reached {complete} complete + {running} running")


def _kill_session(sid: int) -> None:
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.info["pid"]) == sid:
                proc.kill()
        except (ProcessLookupError, psutil.Error):
            pass


def test_controller_killed_then_resumed_completes_budget(
    make_experiment, tmp_path: Path, repo: Path
) -> None:
    space = """
    parameters:
      pruning.method: [none, sleep]
      pruning.sleep.seconds: {low: 3.0, high: 4.0}
      precision.method: [fp32]
      backend.method: [torch_eager, onnxruntime]
    """
    exp = make_experiment(space, n_trials=6, workers=1, extra=PLUGINS)
    storage = f"sqlite:///{tmp_path}/study.db"
    first = _cli(exp, repo, tmp_path / "first.log")
    try:
        _wait_for(storage, complete=2, running=1)
        before = {t.number: t.values for t in _trials(storage) if t.state.name == "COMPLETE"}
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        _kill_session(first.pid)
    second = subprocess.run(
        [sys.executable, "-m", "autoopt.cli", "run", str(exp)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming interrupted run" in second.stderr
    assert "marked failed and re-queued" in second.stderr
    trials = _trials(storage)
    for number, values in before.items():  # completed trials survive untouched
        assert trials[number].state.name == "COMPLETE" and trials[number].values == values
    run_ids = {t.user_attrs.get("run_id") for t in trials}
    assert len(run_ids) == 1, "the resumed sweep continues the same run"
    stale = [t for t in trials if t.user_attrs.get("failure_stage") == "controller"]
    # Repeats of measured candidates are told that measurement and take no slot.
    counted = [t for t in trials if counts_toward_budget(t, distinct=True)]
    assert len(stale) >= 1 and len(counted) == 6  # the budget, each trial once
    assert all(t.state.name != "RUNNING" for t in trials)
    requeued = {t.user_attrs.get("requeued_from") for t in trials} - {None}
    assert requeued == {t.number for t in stale}
    assert (
        sum(bool(t.user_attrs.get("is_baseline")) and t.state.name == "COMPLETE" for t in trials)
        == 1
    )


def test_ctrl_c_cancels_in_flight_trials_and_prints_summary(
    make_experiment, tmp_path: Path, repo: Path
) -> None:
    exp = make_experiment(_space("sleep", 30.0), n_trials=3, workers=1, extra=PLUGINS)
    storage = f"sqlite:///{tmp_path}/study.db"
    log = tmp_path / "run.log"
    proc = _cli(exp, repo, log)
    try:
        _wait_for(storage, complete=1, running=1)
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _kill_session(proc.pid)
    output = log.read_text()
    assert "stopped: interrupted" in output
    trials = _trials(storage)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL"]
    assert "interrupted by the user" in trials[1].user_attrs["failure_reason"]
    runs = [
        v
        for k, v in optuna.load_study(study_name="exp", storage=storage).user_attrs.items()
        if k.startswith("run:")
    ]
    assert runs and all(r["finished"] and r["stopped"] == "interrupted" for r in runs)


def test_a_training_cut_by_the_time_budget_resumes_from_its_last_checkpoint(
    ray_session, make_experiment, tmp_path: Path
) -> None:
    # The recovery hangs (once) in its 101st step: by then it has published checkpoints every
    # 20 steps, the last at 100, and the time budget cuts it there whatever the host's speed.
    marker = tmp_path / "hung-once"
    space = f"""
    parameters:
      pruning.method: [hanging_recovery]
      pruning.hanging_recovery.recovery_steps: 240
      pruning.hanging_recovery.hang_at: 101
      pruning.hanging_recovery.marker: {marker}
      precision.method: [fp32]
      backend.method: [torch_eager]
    """
    exp = make_experiment(
        space,
        n_trials=2,
        workers=1,
        extra=PLUGINS,
        sampler="{name: random, seed: 3, rungs: false}",
    )
    first = autoopt.run(exp, timeout=60)
    assert first.stopped == "timeout" and marker.exists()
    autoopt.run(exp, n_trials=1)
    study = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db")
    cut = next(t for t in study.trials if t.state == "FAIL")
    assert "time budget" in cut.failure_reason
    again = next(t for t in study.trials if t.requeued_from == cut.number)
    assert again.state == "COMPLETE"
    (stage,) = [e for e in again.stages if e["stage"] == "pruning.hanging_recovery"]
    assert not stage["hit"] and stage["resumed_from"] == 100 and stage["steps"] == 240
