"""Shared fixtures: an isolated AUTOOPT_HOME, and paths to the repository's files."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# The conformance suites' asserts report their operands like the tests' own.
pytest.register_assert_rewrite("autoopt.testing")
REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# The tests' own AUTOOPT_HOME (trained teachers, cached teacher outputs, self-test results),
# set before anything starts Ray so that its workers inherit it: a fresh folder per session,
# or AUTOOPT_TEST_HOME to keep one between sessions while developing.
_OWN_HOME = "AUTOOPT_TEST_HOME" not in os.environ
os.environ["AUTOOPT_HOME"] = os.environ.get("AUTOOPT_TEST_HOME") or tempfile.mkdtemp(
    prefix="autoopt-tests-"
)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _OWN_HOME and not hasattr(session.config, "workerinput"):
        shutil.rmtree(os.environ["AUTOOPT_HOME"], ignore_errors=True)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def digits():
    from autoopt.workloads import load_workload

    return load_workload("digits_cnn")
