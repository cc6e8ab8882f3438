"""The one write path that bypasses Optuna's public API: a trial's attributes in one statement.

It writes rows into Optuna's own ``trial_user_attributes`` table (a tell's ~30 attributes as
one upsert instead of ~30 transactions). These tests fail when Optuna's schema changes under
it, and prove the public-API fallback gives the same result.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autoopt.study import storage
from autoopt.study.storage import open_storage, set_user_attrs

ATTRS = {"accuracy": 0.97, "recipe": {"backend": {"key": "backend.onnxruntime"}}, "n": 3}


def _trial(tmp_path: Path) -> tuple[optuna.Study, optuna.Trial]:
    url = f"sqlite:///{tmp_path}/study.db"
    study = optuna.create_study(study_name="s", storage=open_storage(url, create=True))
    return study, study.ask()


def test_bulk_upsert_writes_optunas_own_table_and_reads_back_through_the_public_api(
    tmp_path: Path,
) -> None:
    study, trial = _trial(tmp_path)
    trial.set_user_attr("accuracy", 0.5)  # an existing row is updated, not duplicated
    # False here means Optuna's table or columns changed: the fallback would hide it.
    assert storage._bulk_upsert(trial, ATTRS) is True
    (frozen,) = study.get_trials()
    assert frozen.user_attrs == ATTRS


def test_fallback_writes_through_the_public_api_when_the_bulk_path_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, trial = _trial(tmp_path)
    monkeypatch.setattr(storage, "_bulk_upsert", lambda trial, attrs: False)
    set_user_attrs(trial, ATTRS)
    assert trial.user_attrs == ATTRS
    (frozen,) = study.get_trials()
    assert frozen.user_attrs == ATTRS


def test_set_user_attrs_keeps_the_live_trials_view(tmp_path: Path) -> None:
    _, trial = _trial(tmp_path)
    set_user_attrs(trial, ATTRS)
    assert trial.user_attrs == ATTRS
