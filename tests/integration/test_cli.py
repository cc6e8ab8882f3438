"""The CLI end to end in a subprocess: real Ray, a real SQLite file, exit codes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SPACE = """
parameters:
  pruning.method: [none, structured]
  pruning.structured.amount: [0.5]
  precision.method: [fp32]
  backend.method: [torch_eager, onnxruntime]
"""


def autoopt(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoopt.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_cli_run_then_query_commands(make_experiment, tmp_path: Path, repo: Path) -> None:
    exp = make_experiment(SPACE, n_trials=3)
    storage = f"sqlite:///{tmp_path}/study.db"
    run = autoopt("run", str(exp), "--n-trials", "3", "--workers", "2", "--study", "cli", cwd=repo)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Feasible Pareto front of 'cli'" in run.stdout
    assert "3 trials this run" in run.stdout
    # Progress goes to stderr: the study first, then a line per trial that, without a
    # terminal, carries the count a progress bar would show (a bar would be drawn at the end).
    assert f"new study 'cli' in {storage}" in run.stderr
    assert "[1/3] trial   0 baseline accuracy=" in run.stderr
    assert "━" not in run.stderr and "Token authentication" not in run.stderr

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

    # A second run continues the same study, and says so.
    again = autoopt("run", str(exp), "--n-trials", "1", "--study", "cli", cwd=repo)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"continuing study 'cli' in {storage}: 3 trials so far (3 complete)" in again.stderr
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


WRONG_SPACE = """
parameters:
  backend.method: [torch_eager, onnxruntime]
  quantization.method: {choices: [none, wrong_int8], when: {backend.method: torch_eager}}
  precision.method: [fp32]
"""


def test_cli_doctor_reports_every_path_then_reads_its_cache(tmp_path: Path, repo: Path) -> None:
    env = {**os.environ, "AUTOOPT_HOME": str(tmp_path / "home")}
    exp = str(repo / "experiments" / "digits_cnn.yaml")
    first = autoopt("doctor", exp, cwd=repo, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.startswith("Host: ") and "avx512_vnni" in first.stdout
    assert "torch " in first.stdout and "onnxruntime " in first.stdout
    assert "Probe: DigitsCNN (whole model): 1x1x8x8, 64x1x8x8" in first.stdout
    assert "onnxruntime + static_int8(per_channel)" in first.stdout
    assert "pass torch_eager + fp32 (" in first.stderr  # progress, one line per path
    assert list((tmp_path / "home" / "selftest").glob("*.json"))

    cached = autoopt("doctor", exp, "--format", "json", cwd=repo, env=env)
    assert cached.returncode == 0, cached.stderr[-3000:]
    report = json.loads(cached.stdout)
    assert report["host"]["description"] in first.stdout
    assert report["results"] and all(r["cached"] for r in report["results"])
    assert {r["status"] for r in report["results"]} <= {"pass", "refused"}
    assert "(cached)" in cached.stderr

    fresh = autoopt("doctor", exp, "--refresh", "--format", "json", cwd=repo, env=env)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert not any(r["cached"] for r in json.loads(fresh.stdout)["results"])


def test_cli_doctor_exits_0_when_a_path_fails(make_experiment, tmp_path: Path, repo: Path) -> None:
    exp = make_experiment(WRONG_SPACE, extra="plugins: [tests.plugins.wrong_kernels]\n")
    env = {**os.environ, "AUTOOPT_HOME": str(tmp_path / "home")}
    result = autoopt("doctor", str(exp), cwd=repo, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FAIL" in result.stdout and "torch_eager + wrong_int8" in result.stdout
    assert "1 fail" in result.stdout


# ---- a first-time user's edges, on a synthetic study (no Ray, no training) ----------------


@pytest.fixture()
def outliers(tmp_path: Path) -> str:
    """A study as a TPE sweep leaves it: repeats, a collapsed trial, a refused candidate."""
    import optuna

    from tests.synthetic_studies import create_synthetic_study

    storage = f"sqlite:///{tmp_path}/outliers.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    create_synthetic_study(storage, "outliers", "outliers", n_trials=24, seed=5)
    return storage


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The only thing a bad input prints: one line, on stderr, exit code 2."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    return lines[0]


def test_cli_binary_experiment_file_is_one_line(tmp_path: Path, repo: Path) -> None:
    binary = tmp_path / "model.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    for command in ("validate", "run", "doctor"):
        line = one_error_line(autoopt(command, str(binary), cwd=repo))
        assert f"{binary}: (top level): not a YAML text file" in line
        assert "byte 0x89 at offset 0" in line


def test_cli_unknown_sampler_draws_nothing_before_its_error(make_experiment, repo: Path) -> None:
    line = one_error_line(
        autoopt("run", str(make_experiment(SPACE)), "--sampler", "tpee", cwd=repo)
    )
    assert "(did you mean 'tpe'?)" in line


def test_cli_export_needs_a_trial_or_a_policy_before_saying_anything(
    outliers: str, tmp_path: Path, repo: Path
) -> None:
    args = ("export", "--study", "outliers", "--storage", outliers, "--out", str(tmp_path / "b"))
    line = one_error_line(autoopt(*args, cwd=repo))
    assert "give either --trial N or --policy NAME" in line
    assert "None" not in line and not (tmp_path / "b").exists()


def test_cli_export_of_an_unknown_trial_is_bad_input(
    outliers: str, tmp_path: Path, repo: Path
) -> None:
    args = ("export", "--study", "outliers", "--storage", outliers, "--out", str(tmp_path / "b"))
    line = one_error_line(autoopt(*args, "--trial", "999", cwd=repo))
    assert "--trial: study 'outliers' has no trial 999; trials: 0..23" in line


def test_cli_export_of_a_rejected_trial_is_bad_input(
    outliers: str, tmp_path: Path, repo: Path
) -> None:
    from autoopt import api

    record = api.load_study("outliers", outliers)
    refused = next(t for t in record.trials if t.status == "rejected")
    args = ("export", "--study", "outliers", "--storage", outliers, "--out", str(tmp_path / "b"))
    line = one_error_line(autoopt(*args, "--trial", str(refused.number), cwd=repo))
    assert f"trial {refused.number} of study 'outliers' was rejected ([check] " in line
    assert "no bf16 kernels" in line and "only complete trials can be exported" in line
    front = ", ".join(str(t.number) for t in record.front())
    assert f"(the feasible Pareto front: {front})" in line


def test_cli_options_have_help(repo: Path) -> None:
    top = autoopt("--help", cwd=repo)
    assert top.returncode == 0 and "Also print informational log messages" in top.stdout
    run = autoopt("run", "--help", cwd=repo)
    assert run.returncode == 0 and "Trials in flight at once" in run.stdout


def test_cli_trials_show_repeats_and_rejections_in_words(outliers: str, repo: Path) -> None:
    from autoopt import api

    record = api.load_study("outliers", outliers)
    repeat = next(t for t in record.trials if t.is_repeat)
    refused = next(t for t in record.trials if t.status == "rejected")

    csv = autoopt(
        "trials", "--study", "outliers", "--storage", outliers, "--format", "csv", cwd=repo
    )
    assert csv.returncode == 0, csv.stderr
    frame = pd.read_csv(io.StringIO(csv.stdout))
    assert frame.loc[repeat.number, "duplicate_of"] == repeat.duplicate_of
    assert frame["duplicate_of"].notna().sum() == sum(t.is_repeat for t in record.trials)

    rows = json.loads(
        autoopt(
            "trials", "--study", "outliers", "--storage", outliers, "--format", "json", cwd=repo
        ).stdout
    )
    assert rows[repeat.number]["duplicate_of"] == repeat.duplicate_of

    table = autoopt("trials", "--study", "outliers", "--storage", outliers, cwd=repo)
    assert table.returncode == 0, table.stderr
    assert "nan" not in table.stdout.lower() and "pruned" not in table.stdout.lower()
    lines = table.stdout.splitlines()
    # Not a terminal: each row is one line, however long its recipe and reason.
    assert any(
        f"repeat of {repeat.duplicate_of}" in line and repeat.recipe_str in line for line in lines
    )
    assert any(
        "rejected" in line and f"[check] {refused.failure_reason}" in line for line in lines
    )
