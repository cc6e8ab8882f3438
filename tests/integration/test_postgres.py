"""PostgreSQL study storage end to end: a real server (tests/integration/pg.py), no mocks.

* a sweep through the Python API, read back with ``load_study``;
* two controllers (two CLI processes, each with its own Ray) sharing one study at once;
* the read side (what the dashboard calls) polling while a CLI sweep writes.

Each test gets a fresh database on the module's server, so the Optuna tables are created by
the processes under test, concurrently where they race.
"""

from __future__ import annotations

import collections
import datetime as dt
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import optuna
import pytest
from optuna.trial import TrialState
from pg import PostgresServer, postgres_server  # tests/integration/pg.py

import autoopt
from autoopt import api
from autoopt.errors import StorageError
from autoopt.study import schema as R
from autoopt.study.schema import ATTR_CONTROLLER, ATTR_RUN
from autoopt.study.schema import STUDY_RUN_PREFIX as RUN_PREFIX
from autoopt.testing import StorageTestSuite

# Nothing here is refused on a CPU host, so every trial a controller asks for counts.
SPACE = """
parameters:
  pruning.method: [none, structured]
  pruning.structured.amount: [0.5]
  precision.method: [fp32]
  backend.method: [torch_eager, onnxruntime]
"""
METRICS = ("accuracy", "latency_p50_ms", "size_mb", "speedup", "accuracy_drop")
SWEEP_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture()
def pg_url(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database for this test."""
    return postgres.create_database(request.node.name.lower()[:60])


class TestPostgresStorage(StorageTestSuite):
    """The storage suite every study storage passes, on a fresh database per test."""

    @pytest.fixture()
    def storage_url(self, pg_url: str) -> str:
        return pg_url


def _cli_run(
    exp: Path, url: str, study: str, n_trials: int, log: IO[str], repo: Path
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoopt.cli",
            "run",
            str(exp),
            "--storage",
            url,
            "--study",
            study,
            "--n-trials",
            str(n_trials),
            "--workers",
            "1",
        ],
        cwd=repo,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(proc: subprocess.Popen[str], log: Path, timeout: float = SWEEP_TIMEOUT_S) -> None:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"sweep still running after {timeout}s:\n{log.read_text()[-4000:]}")
    assert rc == 0, log.read_text()[-4000:]


def test_postgres_run_then_load_study(ray_session, make_experiment, pg_url: str) -> None:
    exp = make_experiment(SPACE, n_trials=4, plain=True)
    summary = autoopt.run(exp, storage=pg_url)
    assert summary.storage == pg_url and summary.trials_run == 4

    study = autoopt.load_study("exp", pg_url)
    assert len(study.trials) == 4
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert study.baseline is not None and study.baseline.number == 0
    for t in study.trials:
        assert t.state == "COMPLETE", (t.number, t.failure_reason)
        assert all(m in t.metrics for m in METRICS), (t.number, sorted(t.metrics))
    front = study.front()
    assert front and all(t.feasible for t in front)
    assert [t.number for t in front] == [t.number for t in summary.front]
    assert [s.name for s in autoopt.list_studies(pg_url)] == ["exp"]


def test_postgres_two_controllers_share_one_study(
    make_experiment, pg_url: str, repo: Path, tmp_path: Path
) -> None:
    exp = make_experiment(SPACE, n_trials=3, workers=1, plain=True)
    logs = [tmp_path / f"controller{i}.log" for i in range(2)]
    procs = []
    for log in logs:
        with log.open("w") as f:
            procs.append(_cli_run(exp, pg_url, "shared", 3, f, repo))
    for proc, log in zip(procs, logs, strict=True):
        _wait(proc, log)

    study = optuna.load_study(study_name="shared", storage=pg_url)
    trials = study.get_trials(deepcopy=False)
    numbers = sorted(t.number for t in trials)
    assert numbers == list(range(6)), numbers  # none lost, none duplicated
    assert sum(bool(t.user_attrs.get(R.ATTR_BASELINE)) for t in trials) == 1
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]

    # Two runs, one per controller, both finished; each ran its 3 trials.
    runs = {
        k.removeprefix(RUN_PREFIX): v
        for k, v in study.user_attrs.items()
        if k.startswith(RUN_PREFIX)
    }
    assert len(runs) == 2 and all(r["finished"] for r in runs.values()), runs
    assert len({r["controller"] for r in runs.values()}) == 2
    per_run = collections.Counter(t.user_attrs.get(ATTR_RUN) for t in trials)
    assert per_run == {run_id: 3 for run_id in runs}, per_run
    for t in trials:  # a trial is run by the controller of the run it counts for
        assert t.user_attrs[ATTR_CONTROLLER] == runs[t.user_attrs[ATTR_RUN]]["controller"]
    # The two runs really overlapped in time (else this tested nothing concurrent).
    a, b = (
        {k: dt.datetime.fromisoformat(r[k]) for k in ("started", "ended")} for r in runs.values()
    )
    assert a["started"] < b["ended"] and b["started"] < a["ended"], runs

    record = autoopt.load_study("shared", pg_url)
    complete = [t for t in record.trials if t.state == "COMPLETE"]
    assert record.baseline is not None and complete
    for t in complete:
        assert all(m in t.metrics for m in METRICS), (t.number, sorted(t.metrics))
        assert t.values is not None and len(t.values) == len(record.objectives)


def test_postgres_reads_while_a_sweep_writes(
    make_experiment, pg_url: str, repo: Path, tmp_path: Path
) -> None:
    exp = make_experiment(SPACE, n_trials=3, workers=1, plain=True)
    log = tmp_path / "sweep.log"
    with log.open("w") as f:
        proc = _cli_run(exp, pg_url, "live", 3, f, repo)
    seen: list[int] = []  # trial counts, one per read, from every reader
    states: set[str] = set()
    reads = 0
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    try:
        while proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            try:
                record = autoopt.load_study("live", pg_url)
            except StorageError as e:
                # Only before the controller has created the study (tables, then the study).
                assert not seen and "no study named 'live'" in str(e), e
                time.sleep(0.2)
                continue
            seen.append(len(record.trials))
            states.update(t.state for t in record.trials)
            summaries = autoopt.list_studies(pg_url)
            assert [s.name for s in summaries] == ["live"]
            seen.append(summaries[0].n_trials)
            # The dashboard's incremental reads: one cached Study, new trials fetched.
            assert "live" in api.study_names(pg_url)
            api.study_revision("live", pg_url)
            seen.append(len(api.read_study("live", pg_url).trials))
            reads += 1
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-4000:]

    final = autoopt.load_study("live", pg_url)
    seen.append(len(final.trials))
    seen.append(len(api.read_study("live", pg_url).trials))
    assert len(final.trials) == 3 and {t.state for t in final.trials} == {"COMPLETE"}
    assert seen == sorted(seen), seen  # a count never went down
    assert reads >= 5 and "RUNNING" in states, (reads, states)  # we read mid-sweep
    assert {t.number: t.state for t in api.read_study("live", pg_url).trials} == {
        t.number: t.state for t in final.trials
    }
