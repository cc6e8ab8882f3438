"""Browser-test fixtures: Debian's headless Chromium, one real sweep, edge-case studies, and
the dashboard served from a thread, all once per test session.

The real sweep is the slow part (Ray workers import torch per task), so it starts in a
background thread as soon as a module asks for it; tests that only need the synthetic edge
cases run meanwhile, and those that need the sweep wait for it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() == "true"
#: Screenshots for people to look at: a session folder, or AUTOOPT_SCREENSHOTS (the suite
#: never rewrites the committed ones in results/dashboard/).
SHOTS_ENV = "AUTOOPT_SCREENSHOTS"
SWEEP_SPACE = """
parameters:
  pruning.method: [none, structured]
  pruning.structured.amount: [0.25, 0.5]
  precision.method: [fp32]
  backend.method: [torch_eager, onnxruntime]
"""
#: Edge-case studies (name -> synthetic kind); "live" gains a trial during a test.
EDGE_CASES = {
    "empty": "empty",
    "all_failed": "all_failed",
    "none_feasible": "none_feasible",
    "running": "running",
    "mixed": "normal",
    "live": "normal",
    # Repeats, a collapsed trial, a refused candidate, a trial timed on a busy host.
    "outliers": "outliers",
}


def unavailable(reason: str) -> None:
    """Skip locally; in CI (CI=true) a missing browser is a failure, never a silent skip."""
    if IN_CI:
        pytest.fail(f"browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path to Debian's Chromium, installed with apt-get when it is missing."""
    if not Path(CHROMIUM).exists():
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            unavailable(f"{CHROMIUM} is missing and apt-get (as root) is not available")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                unavailable(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-500:]}")
    if not Path(CHROMIUM).exists():
        unavailable(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        unavailable(f"playwright is not installed: {e}")
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
    except Exception as e:  # noqa: BLE001 - reported as skip/fail with the reason
        pw.stop()
        unavailable(f"Chromium did not start: {e}")
    yield browser
    browser.close()
    pw.stop()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; JavaScript errors and failed requests fail the test that caused them."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on(
        "console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None
    )
    yield page
    context.close()
    assert not errors, errors


# ---- the studies ----------------------------------------------------------------------------
@dataclass
class Seeded:
    """Where the seeded studies live, and the real sweep's progress."""

    root: Path
    storage: str
    results: Path
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    seconds: float = 0.0

    def wait_for_sweep(self, timeout: float = 600) -> None:
        if not self.done.wait(timeout):
            pytest.fail(f"the seeding sweep did not finish within {timeout:.0f}s")
        if self.error is not None:
            pytest.fail(f"the seeding sweep failed: {self.error!r}")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    import ray

    from autoopt.execution import ensure_ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def write_experiment(root: Path) -> Path:
    (root / "space.yaml").write_text(textwrap.dedent(SWEEP_SPACE))
    exp = root / "sweep.yaml"
    exp.write_text(
        textwrap.dedent(f"""
        workload: digits_cnn
        search_space: space.yaml
        constraint: {{max_drop: 0.02}}
        budget: {{n_trials: 6}}
        # Six trials as proposed (no derived starting points; a repeat takes a slot), each
        # measured in full: the pages' counts below are this sweep's.
        sampler: {{name: random, seed: 3, starting_points: false, distinct: false}}
        verify: {{early_reject: false}}
        latency: {{batch_size: 1, threads: 1, warmup: 3, runs: 20}}
        execution: {{workers: 2, trial_timeout_s: 240}}
        storage: sqlite:///{root}/study.db
        cache_dir: {root}/cache
        results_dir: {root}/results
        # The same pruned model on both backends: the second trial reuses its cached stage
        # (a concurrent builder waits for the first), which the trial page shows.
        seed_candidates:
          - name: pruned-eager
            params: {{pruning.method: structured, pruning.structured.amount: 0.25,
                      precision.method: fp32, backend.method: torch_eager}}
          - name: pruned-ort
            params: {{pruning.method: structured, pruning.structured.amount: 0.25,
                      precision.method: fp32, backend.method: onnxruntime}}
        """)
    )
    return exp


def seed_edge_cases(storage: str) -> None:
    import optuna

    from tests.synthetic_studies import create_synthetic_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name, kind in EDGE_CASES.items():
        resources = {"GPU": 1.0} if name == "mixed" else None
        n = 24 if kind in ("normal", "outliers") else 8
        create_synthetic_study(storage, name, kind, n_trials=n, seed=5, resources=resources)


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory, ray_session: Any) -> Iterator[Seeded]:
    """One study database: edge cases now, plus a real 6-trial sweep (study 'sweep') that
    runs in a background thread; call ``wait_for_sweep()`` before using it."""
    import autoopt

    root = tmp_path_factory.mktemp("dashboard")
    seeded = Seeded(root, f"sqlite:///{root}/study.db", root / "results")
    exp = write_experiment(root)
    # The sweep creates the database; edge cases go in once it exists, so that both writers
    # never create the schema at the same time.

    def sweep() -> None:
        start = time.monotonic()
        try:
            autoopt.run(exp)
        except BaseException as e:  # noqa: BLE001 - re-raised in the waiting test
            seeded.error = e
        finally:
            seeded.seconds = time.monotonic() - start
            seeded.done.set()

    import optuna

    optuna.create_study(study_name="_schema", storage=seeded.storage)
    optuna.delete_study(study_name="_schema", storage=seeded.storage)
    threading.Thread(target=sweep, name="seeding-sweep", daemon=True).start()
    seed_edge_cases(seeded.storage)
    yield seeded
    # Ray shuts down after this fixture: let a sweep that no selected test waited for finish
    # rather than pull Ray from under its controller.
    seeded.done.wait(600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    storage: str
    seeded: Seeded


@pytest.fixture(scope="session")
def server(seeded: Seeded) -> Iterator[Server]:
    """The dashboard over the seeded database, served by uvicorn from a thread."""
    import uvicorn

    from autoopt.dashboard import create_app

    port = free_port()
    app = create_app(seeded.storage, seeded.results, refresh_ms=500, warm=False)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the dashboard server did not start")
        time.sleep(0.05)
    yield Server(f"http://127.0.0.1:{port}", seeded.storage, seeded)
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get(SHOTS_ENV)
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
