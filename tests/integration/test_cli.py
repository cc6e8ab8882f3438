"""The CLI end to end in a subprocess: real Ray, a real SQLite file, exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

SPACE = """
parameters:
  pruning.method: [none, structured]
  pruning.structured.amount: [0.5]
  precision.method: [fp32]
  backend.method: [torch_eager, onnxruntime]
"""


def autoopt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoopt.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_run_then_query_commands(make_experiment, tmp_path: Path, repo: Path) -> None:
    exp = make_experiment(SPACE, n_trials=3)
    storage = f"sqlite:///{tmp_path}/study.db"
    run = autoopt("run", str(exp), "--n-trials", "3", "--workers", "2", "--study", "cli", cwd=repo)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Feasible Pareto front of 'cli'" in run.stdout
    assert "3 trials this run" in run.stdout
    assert "trial   0 feasible" in run.stderr  # per-trial progress goes to stderr

    trials = autoopt("trials", "--study", "cli", "--storage", storage, "--format", "csv", cwd=repo)
    assert trials.returncode == 0, trials.stderr
    frame = pd.read_csv(io.StringIO(trials.stdout))
    assert list(frame["trial"]) == [0, 1, 2]
    assert bool(frame.loc[0, "baseline"]) and frame.loc[0, "speedup"] == 1.0

    pareto = autoopt(
        "pareto", "--study", "cli", "--storage", storage, "--format", "json", cwd=repo
    )
    assert pareto.returncode == 0, pareto.stderr
    front = json.loads(pareto.stdout)
    assert front and all(row["feasible"] and row["pareto"] for row in front)

    studies = autoopt("studies", "--storage", storage, "--format", "csv", cwd=repo)
    assert studies.returncode == 0 and "cli" in studies.stdout

    # A second run continues the same study.
    again = autoopt("run", str(exp), "--n-trials", "1", "--study", "cli", cwd=repo)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = autoopt("trials", "--study", "cli", "--storage", storage, "--format", "csv", cwd=repo)
    assert len(pd.read_csv(io.StringIO(trials.stdout))) == 4


def test_cli_bad_input_exits_2_with_one_line(tmp_path: Path, repo: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "workload: digits_cnn\nsearch_space: nowhere.yaml\nconstraint: {max_drop: 0.1}\n"
        "budget: {n_trials: 1}\n"
    )
    result = autoopt("validate", str(bad), cwd=repo)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "bad.yaml: search_space: file not found" in lines[0]
    assert "Traceback" not in result.stderr

    missing = autoopt(
        "trials", "--study", "nope", "--storage", f"sqlite:///{tmp_path}/x.db", cwd=repo
    )
    assert missing.returncode == 2 and "no study database" in missing.stderr

    ok = autoopt("validate", "experiments/digits_cnn.yaml", cwd=repo)
    assert ok.returncode == 0 and "ok" in ok.stdout


def test_cli_unknown_sampler_exits_2(make_experiment, repo: Path) -> None:
    exp = make_experiment(SPACE)
    result = autoopt("run", str(exp), "--sampler", "tpee", cwd=repo)
    assert result.returncode == 2
    assert "--sampler: unknown sampler 'tpee'; allowed: tpe, nsga2, random, grid" in result.stderr
