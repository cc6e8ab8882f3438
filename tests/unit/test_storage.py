"""The storage suite on SQLite, the default study storage (PostgreSQL: tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoopt.testing import StorageTestSuite


class TestSqliteStorage(StorageTestSuite):
    @pytest.fixture()
    def storage_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'studies' / 'studies.db'}"
