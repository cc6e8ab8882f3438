"""The commands that pick and ship: choose a trial by policy, export it as a bundle, serve
the dashboard."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from autoopt import api
from autoopt.cli._console import (
    Format,
    FormatOpt,
    StorageOpt,
    StudyOpt,
    app,
    emit,
    err,
    guarded,
    out,
)
from autoopt.cli._tables import selection_rows

PolicyOpt = Annotated[
    str, typer.Option("--policy", help="fastest, smallest, most-accurate or knee.")
]
MaxDropOpt = Annotated[
    float | None,
    typer.Option(
        "--max-drop",
        min=0,
        help="Largest accuracy drop from the baseline (default: the study's constraint).",
    ),
]
RelativeOpt = Annotated[
    bool, typer.Option("--relative", help="--max-drop is a fraction of the baseline's accuracy.")
]
MaxLatencyOpt = Annotated[
    float | None,
    typer.Option("--max-latency-ms", help="Latency budget in ms (smallest, most-accurate)."),
]
LatencyMetricOpt = Annotated[
    str | None,
    typer.Option(
        "--latency-metric", help="latency_p50_ms (default), latency_p90_ms or latency_p99_ms."
    ),
]


@app.command()
@guarded
def best(
    study: StudyOpt,
    storage: StorageOpt = None,
    policy: PolicyOpt = "knee",
    max_drop: MaxDropOpt = None,
    relative: RelativeOpt = False,
    max_latency_ms: MaxLatencyOpt = None,
    latency_metric: LatencyMetricOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Choose one trial by a policy; if none meets it, show the nearest on each side (exit 1)."""
    import json

    import pandas as pd

    selection = api.select(
        study,
        storage,
        policy,
        max_drop=max_drop,
        relative=relative,
        max_latency_ms=max_latency_ms,
        latency_metric=latency_metric,
    )
    if format is Format.json:
        sys.stdout.write(json.dumps(selection.to_dict(), indent=1, default=str) + "\n")
    else:
        if format is Format.table:
            out.print(selection.reason, highlight=False, markup=False)
        frame = pd.DataFrame(selection_rows(selection, selection.metric_name))
        if len(frame):
            emit(frame, format, f"{selection.policy.describe()} in '{study}'")
    if not selection.found:
        raise typer.Exit(1)


@app.command()
@guarded
def export(
    study: StudyOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="Bundle folder to write.")],
    storage: StorageOpt = None,
    trial: Annotated[int | None, typer.Option("--trial", min=0, help="Trial number.")] = None,
    policy: Annotated[
        str | None,
        typer.Option("--policy", help="Choose the trial: fastest, smallest, most-accurate, knee."),
    ] = None,
    max_drop: MaxDropOpt = None,
    relative: RelativeOpt = False,
    max_latency_ms: MaxLatencyOpt = None,
    latency_metric: LatencyMetricOpt = None,
    triton: Annotated[
        bool, typer.Option("--triton", help="Also write a Triton model repository (ONNX bundles).")
    ] = False,
    triton_name: Annotated[
        str | None, typer.Option("--triton-name", help="Triton model name.")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Stage cache (default: the experiment's).")
    ] = None,
    accuracy_tolerance: Annotated[
        float,
        typer.Option("--accuracy-tolerance", min=0, help="Largest accepted accuracy difference."),
    ] = api.DEFAULT_ACCURACY_TOLERANCE,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a non-empty --out.")
    ] = False,
) -> None:
    """Rebuild a trial, write a deployable bundle, re-measure it, and fail if it differs."""

    def started(number: int) -> None:
        # Said once the arguments are checked and the trial is known to be exportable.
        err.print(
            f"exporting trial {number} of '{study}' to {out_dir} (rebuild, verify, re-time)...",
            highlight=False,
            markup=False,
        )

    result = api.export(
        study,
        storage,
        out=out_dir,
        trial=trial,
        policy=policy,
        max_drop=max_drop,
        relative=relative,
        max_latency_ms=max_latency_ms,
        latency_metric=latency_metric,
        triton=triton,
        triton_name=triton_name,
        cache_dir=cache_dir,
        accuracy_tolerance=accuracy_tolerance,
        overwrite=overwrite,
        on_start=started,
    )
    if result.selection is not None:
        out.print(result.selection.summary(), highlight=False, markup=False)
    out.print(result.summary(), highlight=False, markup=False)


@app.command()
@guarded
def dashboard(
    storage: StorageOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8080,
    optuna_port: Annotated[
        int,
        typer.Option(
            "--optuna-port",
            min=0,
            max=65535,
            help="Port for Optuna's own dashboard alongside (0: don't start it).",
        ),
    ] = 8081,
    results_dir: Annotated[
        Path, typer.Option("--results-dir", help="Where `autoopt run` wrote tables and plots.")
    ] = Path("results"),
) -> None:
    """Serve a read-only web dashboard of the studies (it keeps up with running sweeps)."""
    import contextlib

    import uvicorn

    from autoopt.dashboard import create_app, optuna_dashboard

    with contextlib.ExitStack() as stack:
        optuna_url = None
        if optuna_port:
            err.print(f"starting Optuna's dashboard on port {optuna_port}...", highlight=False)
            optuna_url = stack.enter_context(
                optuna_dashboard(api.storage_url(storage), host, optuna_port)
            )
        web = create_app(storage, results_dir, optuna_url=optuna_url)
        err.print(
            f"autoopt dashboard: http://{host}:{port}/"
            + (f"  (Optuna's: {optuna_url})" if optuna_url else ""),
            highlight=False,
        )
        uvicorn.run(web, host=host, port=port, log_level="warning")
