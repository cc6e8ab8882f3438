"""The conformance suite for a study storage (an SQLAlchemy URL): subclass it per database.

::

    from autoopt.testing import StorageTestSuite

    class TestMySqlStorage(StorageTestSuite):
        @pytest.fixture()
        def storage_url(self, mysql_server) -> str:
            return mysql_server.fresh_database_url()   # empty, one per test

The suite creates, opens, lists and loads studies through the functions the controller, the
CLI and the dashboard use, and writes trial attributes the way the controller does (in bulk).
"""

from __future__ import annotations

from typing import Literal

import optuna
import pytest

import autoopt
from autoopt.errors import StorageError
from autoopt.study.storage import load_optuna_study, open_storage, set_user_attrs

DIRECTIONS: list[Literal["maximize", "minimize"]] = ["maximize", "minimize"]


class StorageTestSuite:
    @pytest.fixture()
    def storage_url(self) -> str:
        """An empty storage of the kind under test, fresh for each test."""
        raise NotImplementedError("a StorageTestSuite subclass defines the storage_url fixture")

    def _create(self, url: str, name: str, n_trials: int = 1) -> optuna.Study:
        study = optuna.create_study(
            study_name=name, storage=open_storage(url, create=True), directions=DIRECTIONS
        )
        for i in range(n_trials):
            trial = study.ask()
            study.tell(trial, [0.9 - i * 0.01, 1.0 + i])
        return study

    def test_a_new_storage_holds_no_study(self, storage_url: str) -> None:
        open_storage(storage_url, create=True)
        assert autoopt.list_studies(storage_url) == []

    def test_created_study_is_listed_and_loaded_with_its_trials(self, storage_url: str) -> None:
        self._create(storage_url, "first", n_trials=2)
        self._create(storage_url, "second")
        listed = {s.name: s for s in autoopt.list_studies(storage_url)}
        assert set(listed) == {"first", "second"} and listed["first"].n_trials == 2
        record = autoopt.load_study("first", storage=storage_url)
        assert record.name == "first" and len(record.trials) == 2

    def test_reopened_storage_finds_the_study(self, storage_url: str) -> None:
        self._create(storage_url, "kept")
        study = load_optuna_study("kept", storage_url)
        assert study.study_name == "kept" and len(study.trials) == 1

    def test_loading_a_missing_study_names_the_studies_there(self, storage_url: str) -> None:
        self._create(storage_url, "present")
        with pytest.raises(StorageError, match="present"):
            autoopt.load_study("absent", storage=storage_url)

    def test_trial_attributes_written_in_bulk_read_back(self, storage_url: str) -> None:
        study = self._create(storage_url, "attrs", n_trials=0)
        trial = study.ask()
        attrs = {"recipe": {"backend": {"key": "backend.torch_eager"}}, "speedup": 1.5}
        set_user_attrs(trial, attrs)
        set_user_attrs(trial, {"speedup": 2.0})  # written again: replaced, not duplicated
        study.tell(trial, [0.9, 1.0])
        stored = load_optuna_study("attrs", storage_url).trials[0].user_attrs
        assert stored == {**attrs, "speedup": 2.0}
