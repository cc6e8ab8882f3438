"""What an export accepts: a trial that can be exported, and a folder to write it to; bad
input is a ConfigError in one line."""

from __future__ import annotations

from pathlib import Path

from autoopt.errors import ConfigError, ExportError
from autoopt.study.records import StudyRecord, TrialRecord


def exportable_trial(study: StudyRecord, number: int) -> TrialRecord:
    """Trial ``number`` of ``study`` if it can be exported; ConfigError (bad input) naming what
    it is and which trials can be exported, if not."""
    t = study.trial(number)
    if t is None:
        numbers = [t.number for t in study.trials]
        span = f"{min(numbers)}..{max(numbers)}" if numbers else "none"
        raise ConfigError(f"--trial: study '{study.name}' has no trial {number}; trials: {span}")
    if t.state != "COMPLETE" or not t.recipe:
        what = {"rejected": "was rejected", "failed": "failed"}.get(
            t.status, {"RUNNING": "is still running", "WAITING": "is queued"}.get(t.state, "")
        )
        why = f" ([{t.failure_stage}] {t.failure_reason})" if t.failure_reason else ""
        front = ", ".join(str(f.number) for f in study.front())
        raise ConfigError(
            f"--trial: trial {number} of study '{study.name}' {what or t.state.lower()}{why}, "
            "so it has no model to export; only complete trials can be exported"
            + (f" (the feasible Pareto front: {front})" if front else "")
        )
    if not isinstance(t.metrics.get("accuracy"), int | float):
        raise ExportError(f"trial {number} of study '{study.name}' has no recorded accuracy")
    return t


def prepare_out(out: Path, overwrite: bool) -> None:
    """``out`` made ready: a new or empty folder (or any, with ``overwrite``)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(
            f"--out: {out} exists and is not empty; choose another folder or pass --overwrite"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
