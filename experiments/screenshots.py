"""Screenshots of the dashboard's pages, for people to look at: ``results/dashboard/*.png``.

Seeds one study database with synthetic studies (``tests/synthetic_studies.py``: what a
TPE sweep leaves, with repeats, a collapsed candidate, a rejected candidate and a trial timed
on a busy host; and a study of every kind of trial) plus a real small sweep of the digits
workload, serves the dashboard over it and shoots each page with headless Chromium:

=====================  ===========================================================
file                   page
=====================  ===========================================================
studies.png            the studies list
study.png              a real sweep's study page (chart zoomed to the feasible band)
study-outliers.png     a study with a collapsed trial, repeats and a refused candidate
trial.png              a trial on the real sweep's Pareto front
trial-rejected.png     a candidate refused before it was built
trial-repeat.png       a repeat of a measured candidate
trial-busy-host.png    a trial timed on a busy host (the load warning)
compare.png            the baseline against a front trial
=====================  ===========================================================

The test suite never writes here (it shoots into a temporary folder or $AUTOOPT_SCREENSHOTS).

    .venv/bin/python experiments/screenshots.py [--out results/dashboard] [--no-sweep]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
#: A small categorical space: TPE proposes measured candidates again (repeats), and pruning
#: 70% of the channels without recovery collapses the model (an outlier far below the floor).
SPACE = """
parameters:
  pruning.method: [none, structured]
  pruning.structured.amount: [0.3, 0.7]
  pruning.structured.recovery_steps: 0
  quantization.method: [none, dynamic_int8]
  precision.method: [fp32]
  backend.method: [torch_eager, onnxruntime]
"""


def seed(root: Path, sweep: bool) -> str:
    import optuna

    from tests.synthetic_studies import create_synthetic_study

    storage = f"sqlite:///{root}/studies.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    create_synthetic_study(storage, "outliers", "outliers", n_trials=30, seed=5)
    create_synthetic_study(storage, "mixed", "normal", n_trials=24, seed=5)
    if sweep:
        import autoopt

        (root / "space.yaml").write_text(textwrap.dedent(SPACE))
        exp = root / "digits.yaml"
        exp.write_text(
            textwrap.dedent(f"""
            workload: digits_cnn
            search_space: space.yaml
            objectives: [accuracy, latency_p50_ms]
            constraint: {{max_drop: 0.01}}
            budget: {{n_trials: 12}}
            sampler: {{name: tpe, seed: 1}}
            latency: {{batch_size: 1, threads: 1, warmup: 10, runs: 100}}
            execution: {{workers: 2, trial_timeout_s: 240}}
            storage: {storage}
            cache_dir: {root}/cache
            results_dir: {root}/results
            """)
        )
        summary = autoopt.run(exp)
        print(f"sweep: {summary.trials_run} trials in {summary.elapsed_s:.0f}s", flush=True)
    return storage


def serve(storage: str, results: Path) -> str:
    import uvicorn

    from autoopt.dashboard import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(storage, results, refresh_ms=60_000)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}"


def pick(storage: str, sweep: bool) -> dict[str, str]:
    """The page each screenshot shows."""
    from autoopt import api

    outliers = api.load_study("outliers", storage)
    rejected = next(t for t in outliers.trials if t.status == "rejected")
    repeat = next(t for t in outliers.trials if t.is_repeat)
    busy = next(t for t in outliers.trials if t.hardware.get("load_avg_1m", 0) > 4)
    real = "digits" if sweep else "mixed"
    record = api.load_study(real, storage)
    front = record.front()
    shown = front[len(front) // 2] if front else record.trials[-1]
    base = record.baseline.number if record.baseline else 0
    return {
        "studies.png": "/",
        "study.png": f"/studies/{real}",
        "study-outliers.png": "/studies/outliers",
        "trial.png": f"/studies/{real}/trials/{shown.number}",
        "trial-rejected.png": f"/studies/outliers/trials/{rejected.number}",
        "trial-repeat.png": f"/studies/outliers/trials/{repeat.number}",
        "trial-busy-host.png": f"/studies/outliers/trials/{busy.number}",
        "compare.png": f"/studies/{real}/compare?trials={base},{shown.number}",
    }


def shoot(url: str, pages: dict[str, str], out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page: Any = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name, path in pages.items():
            page.goto(url + path)
            if path.startswith("/studies/") and path.count("/") == 2:
                page.wait_for_selector("#pareto .main-svg")
                page.wait_for_selector("#progress .main-svg")
            page.screenshot(path=str(out / name), full_page=True)
            print(f"{out / name}: {path}", flush=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "dashboard")
    parser.add_argument(
        "--no-sweep",
        dest="sweep",
        action="store_false",
        help="Synthetic studies only (seconds instead of minutes).",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autoopt-screenshots-") as tmp:
        root = Path(tmp)
        storage = seed(root, args.sweep)
        url = serve(storage, root / "results")
        shoot(url, pick(storage, args.sweep), args.out)


if __name__ == "__main__":
    main()
