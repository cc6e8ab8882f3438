"""Shared fixtures: an isolated AUTOOPT_HOME, and paths to the repository's files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def digits():
    from autoopt.workloads import load_workload

    return load_workload("digits_cnn")
