"""Integration fixtures: one embedded Ray per test session, a tmp SQLite study per test."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from autoopt.execution import ensure_ray

    ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture()
def make_experiment(tmp_path: Path, repo: Path):
    """Write a small experiment (real workload, real techniques) into tmp_path."""

    def make(
        space: str,
        *,
        n_trials: int = 4,
        extra: str = "",
        workers: int = 2,
        trial_timeout_s: float = 240,
        workload: str = "digits_cnn",
        sampler: str = "{name: random, seed: 3}",
        plain: bool = False,
    ) -> Path:
        """``plain``: the search without its derived starting points, free repeats and early
        rejection, for tests of something else (storage, targets) that count trials."""
        if plain:
            sampler = sampler.replace("}", ", starting_points: false, distinct: false}")
            extra = "verify: {early_reject: false}\n" + textwrap.dedent(extra)
        (tmp_path / "space.yaml").write_text(textwrap.dedent(space))
        exp = tmp_path / "exp.yaml"
        exp.write_text(
            textwrap.dedent(
                f"""
                workload: {workload}
                search_space: space.yaml
                constraint: {{max_drop: 0.02}}
                budget: {{n_trials: {n_trials}}}
                sampler: {sampler}
                latency: {{batch_size: 1, threads: 1, warmup: 3, runs: 20}}
                execution: {{workers: {workers}, trial_timeout_s: {trial_timeout_s}}}
                storage: sqlite:///{tmp_path}/study.db
                cache_dir: {tmp_path}/cache
                results_dir: {tmp_path}/results
                """
            )
            + textwrap.dedent(extra)
        )
        return exp

    return make


@pytest.fixture(autouse=True)
def _chdir_repo(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Plugins under tests/ must import in Ray workers, which start from the driver's cwd.
    monkeypatch.chdir(repo)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
