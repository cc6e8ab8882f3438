"""The ``autoopt`` command line: parses, calls :mod:`autoopt.api`, prints. No logic of its own.

Results go to stdout, progress and diagnostics to stderr. Exit codes: 0 success, 2 bad input
(configuration, arguments, unknown study), 1 anything else.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from autoopt import api
from autoopt.errors import AutoOptError, ConfigError, StorageError
from autoopt.study.records import load_note

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Find the fastest deployable version of a trained model within an accuracy budget.",
)
# Not a terminal (a pipe, a file): do not fold long recipes at 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
F = TypeVar("F", bound=Callable[..., Any])


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


StorageOpt = Annotated[
    str | None, typer.Option("--storage", help="SQLAlchemy URL of the study database.")
]
StudyOpt = Annotated[str, typer.Option("--study", help="Study name.")]
FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]


def _errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, StorageError) as e:
            err.print(f"[red]error:[/red] {e}", highlight=False)
            raise typer.Exit(2) from None
        except AutoOptError as e:
            err.print(f"[red]error:[/red] {e}", highlight=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            # A sweep records what was in flight and returns; this is Ctrl-C before that.
            err.print("interrupted", highlight=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
@_errors
def run(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", min=1, help="Trials to add.")
    ] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=1, help="Seconds.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1)] = None,
    sampler: Annotated[
        str | None, typer.Option("--sampler", help="tpe, nsga2, random, grid")
    ] = None,
    storage: StorageOpt = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name.")] = None,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", envvar="RAY_ADDRESS", help="Existing Ray cluster."),
    ] = None,
) -> None:
    """Run (or continue) a sweep and print its feasible Pareto front."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    exp = api.validate(experiment)
    total = n_trials or exp.budget.n_trials
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as progress:
        bar = progress.add_task(f"sweep {study or exp.name}", total=total)

        def on_event(e: dict[str, Any]) -> None:
            kind = e["type"]
            tag = f"[{e['target']}] " if len(exp.targets) > 1 else ""
            if kind == "complete":
                mark = (
                    "[green]feasible[/green]" if e["feasible"] else "[yellow]infeasible[/yellow]"
                )
                progress.console.print(
                    f"{tag}trial {e['trial']:>3} {mark} {e['metric']}={e['accuracy']:.4f} "
                    f"p50={e['latency_p50_ms']:.3f}ms x{e['speedup']:.2f}  {e['recipe']}",
                    highlight=False,
                )
            elif kind in ("failed", "rejected"):
                progress.console.print(
                    f"{tag}trial {e['trial']:>3} [red]{kind}[/red] [{e['stage']}] "
                    f"{e['reason'][:160]}",
                    highlight=False,
                )
            elif kind == "duplicate":
                progress.console.print(
                    f"{tag}trial {e['trial']:>3} [cyan]repeat[/cyan] of trial {e['of']}: its "
                    f"measurement reused  {e['recipe']}",
                    highlight=False,
                )
            elif kind == "starting_points":
                if e["queued"]:
                    progress.console.print(
                        f"{tag}queued {len(e['queued'])} standard starting points: "
                        + ", ".join(e["queued"]),
                        highlight=False,
                    )
            elif kind == "rejected_early":
                progress.console.print(
                    f"{tag}trial {e['trial']:>3} [yellow]rejected early[/yellow] "
                    f"{e['reason'][:160]}",
                    highlight=False,
                )
            elif kind == "rung":
                verdict = "goes on" if e["go_on"] else "[yellow]stopped[/yellow]"
                progress.console.print(
                    f"{tag}trial {e['trial']:>3} at {e['share']:.0%} of its training: "
                    f"{e['metric']}={e['accuracy']:.4f}, "
                    f"{verdict}" + (f" ({e['reason'][:140]})" if e.get("reason") else ""),
                    highlight=False,
                )
            elif kind == "recombined":
                progress.console.print(
                    f"{tag}queued: the model of trial {e['model_from']} with the post-training "
                    f"settings of trial {e['settings_from']}",
                    highlight=False,
                )
            elif kind == "recovered":
                progress.console.print(
                    f"[{e['study']}] {e['count']} trial(s) left RUNNING by a stopped controller: "
                    "marked failed and re-queued"
                )
            elif kind == "selftest":
                counts = ", ".join(f"{n} {status}" for status, n in sorted(e["counts"].items()))
                cached = " (cached for this host)" if e["cached"] else ""
                progress.console.print(
                    f"{tag}host self-test of the space's paths: {counts}{cached}"
                    + (f"; refusing {', '.join(e['failed'])}" if e["failed"] else ""),
                    highlight=False,
                )
            elif kind == "resumed":
                progress.console.print(
                    f"[{e['study']}] resuming interrupted run {e['run']}: {e['done']} of "
                    f"{e['budget']} trials already done"
                )
            # Refused candidates and repeats told a measurement take no slot of the budget.
            counted = ("complete", "failed", "rejected_early", "stopped")
            if kind in counted or (kind == "duplicate" and not exp.sampler.distinct):
                progress.advance(bar)

        summary = api.run(
            exp,
            n_trials=n_trials,
            timeout=timeout,
            workers=workers,
            sampler=sampler,
            storage=storage,
            study=study,
            ray_address=ray_address,
            on_event=on_event,
        )
    for s in [summary, *summary.siblings]:
        _print_summary(s)
    if summary.stopped == "interrupted" or summary.interrupted:
        raise typer.Exit(130)


def _print_summary(summary: Any) -> None:
    record = summary.study
    table = Table(title=f"Feasible Pareto front of '{summary.study_name}'")
    for col in (
        "trial",
        record.metric_name,
        "p50 ms",
        "p90 ms",
        "size MB",
        "speedup",
        "smaller",
        "host",
        "recipe",
    ):
        table.add_column(col, overflow="fold")
    for t in summary.front:
        r = record.ratios(t)
        table.add_row(
            str(t.number),
            f"{t.metrics['accuracy']:.4f}",
            f"{t.metrics['latency_p50_ms']:.3f}",
            f"{t.metrics['latency_p90_ms']:.3f}",
            f"{t.metrics['size_mb']:.3f}",
            f"{r.get('speedup', 0):.2f}x",
            f"{r.get('size_ratio', 0):.2f}x",
            t.load_note,
            t.recipe_str,
        )
    out.print(table)
    if not summary.front:
        out.print(
            f"No trial met the {record.metric_name} floor; the best trials found are in "
            "trials.csv."
        )
    early = [
        f"{n} {what}"
        for n, what in (
            (summary.rejected_early, "rejected early on their first evaluation slice"),
            (summary.stopped_early, "stopped at a rung of their training"),
        )
        if n
    ]
    out.print(
        f"{summary.trials_run} trials this run ({summary.completed} complete, {summary.failed} "
        f"failed, {summary.rejected} rejected"
        + "".join(f", {x}" for x in early)
        + (
            f", {summary.duplicates} repeats told their earlier measurement"
            if summary.duplicates
            else ""
        )
        + f") in {summary.elapsed_s:.0f}s; stopped: "
        f"{summary.stopped}. Stage cache: {summary.cache_hits} stage builds reused "
        f"(saved {summary.cache_saved_s:.1f}s), {summary.cache_builds} built."
    )
    if summary.derived:
        out.print(
            "Standard starting points (derived): "
            + ", ".join(f"#{n} {name}" for n, name in sorted(summary.derived.items()))
        )
    if summary.results_dir:
        out.print(f"Results: {summary.results_dir}/ (trials.csv, pareto.csv, pareto.png)")
    for warning in summary.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    out.print(f"Study: {summary.study_name} in {summary.storage} (target {summary.target})")


def _emit(frame: Any, fmt: Format, title: str) -> None:
    if fmt is Format.csv:
        sys.stdout.write(frame.to_csv(index=False))
    elif fmt is Format.json:
        sys.stdout.write(frame.to_json(orient="records", indent=1, default_handler=str) + "\n")
    else:
        table = Table(title=title)
        for col in frame.columns:
            table.add_column(str(col), overflow="fold")
        for _, row in frame.iterrows():
            table.add_row(*(_cell(v) for v in row))
        out.print(table)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


_SHORT = [
    "trial",
    "state",
    "status",
    "feasible",
    "pareto",
    "accuracy",
    "latency_p50_ms",
    "latency_p90_ms",
    "size_mb",
    "speedup",
    "size_ratio",
    "host",
    "recipe",
    "failure_reason",
]


def _emit_trials(frame: Any, fmt: Format, title: str, record: Any) -> None:
    """A table shows the main columns (and marks trials timed on a busy host); csv and json
    carry every metric."""
    if fmt is Format.table and len(frame):
        frame = frame.assign(host=[load_note(row) for row in frame.to_dict("records")])
        short = [record.metric_name if c == "accuracy" else c for c in _SHORT]
        frame = frame[[c for c in short if c in frame.columns]]
    _emit(frame, fmt, title)


@app.command()
@_errors
def pareto(study: StudyOpt, storage: StorageOpt = None, format: FormatOpt = Format.table) -> None:
    """Print the feasible Pareto front of a study."""
    record = api.load_study(study, storage)
    frame = record.frame(labelled=True)
    if len(frame):
        frame = frame[frame["pareto"]].sort_values("latency_p50_ms")
    _emit_trials(frame, format, f"Pareto front of '{study}'", record)


@app.command()
@_errors
def trials(study: StudyOpt, storage: StorageOpt = None, format: FormatOpt = Format.table) -> None:
    """Print every trial of a study."""
    record = api.load_study(study, storage)
    _emit_trials(record.frame(labelled=True), format, f"Trials of '{study}'", record)


@app.command()
@_errors
def studies(storage: StorageOpt = None, format: FormatOpt = Format.table) -> None:
    """List the studies in a storage."""
    import pandas as pd

    rows = [
        {
            "study": s.name,
            "workload": s.workload,
            "trials": s.n_trials,
            **{k.lower(): v for k, v in s.counts.items()},
            "best_speedup": s.best_speedup,
            "last_activity": s.last_activity.isoformat(timespec="seconds")
            if s.last_activity
            else "",
        }
        for s in api.list_studies(storage)
    ]
    _emit(pd.DataFrame(rows), format, "Studies")


@app.command()
@_errors
def validate(experiment: Annotated[Path, typer.Argument(help="Experiment YAML file.")]) -> None:
    """Check an experiment, its search space and its workload entry point; runs nothing."""
    exp = api.validate(experiment)
    n = len(exp.space.parameters)
    out.print(
        f"{experiment}: ok — workload '{exp.workload.name}', {n} parameters, objectives "
        f"{', '.join(exp.objectives)}, sampler {exp.sampler.name}, storage {exp.storage}"
    )


class ReportFormat(StrEnum):
    table = "table"
    json = "json"


_STATUS_STYLE = {
    "pass": "[green]pass[/green]",
    "fail": "[bold red]FAIL[/bold red]",
    "refused": "[yellow]refused[/yellow]",
    "inconclusive": "[cyan]inconclusive[/cyan]",
}


@app.command()
@_errors
def doctor(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Run every path again, ignoring cached results.")
    ] = False,
    format: Annotated[
        ReportFormat, typer.Option("--format", help="Output format.")
    ] = ReportFormat.table,
) -> None:
    """Self-test on this host every path the experiment's search space can produce."""
    import json

    def on_result(r: Any) -> None:
        tag = " (cached)" if r.cached else f" ({r.seconds:.1f}s)"
        err.print(f"{_STATUS_STYLE[r.status]} {r.label}{tag}", highlight=False)

    report = api.doctor(experiment, refresh=refresh, on_result=on_result)
    if format is ReportFormat.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=1) + "\n")
        return
    out.print(
        f"Host: {report.host.describe()}; {report.host.describe_versions()}", highlight=False
    )
    if report.probe:
        out.print(f"Probe: {report.probe} (from {report.workload})", highlight=False)
    table = Table(title=f"Host self-test of '{report.experiment}' ({report.device})")
    for col in ("path", "status", "mean cos", "min cos", "speed vs fp32 eager", "reason, notes"):
        table.add_column(col, overflow="fold")
    for r in report.results:
        table.add_row(
            r.label,
            _STATUS_STYLE[r.status],
            "" if r.mean_cosine is None else f"{r.mean_cosine:.4f}",
            "" if r.min_cosine is None else f"{r.min_cosine:.4f}",
            "" if r.speedup is None else f"{r.speedup:.2f}x",
            "; ".join([*([] if r.status == "pass" else [r.reason]), *r.notes]),
        )
    out.print(table)
    counts = {s: sum(r.status == s for r in report.results) for s in _STATUS_STYLE}
    out.print(", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)


# ---- select and export ----------------------------------------------------------------------

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


def _selection_rows(selection: Any) -> list[dict[str, Any]]:
    lat = selection.policy.latency_metric
    rows = []
    entries = [("chosen", selection.trial, "")] if selection.trial is not None else []
    entries += [("slower", n.trial, n.misses) for n in selection.slower]
    entries += [("less accurate", n.trial, n.misses) for n in selection.less_accurate]
    for role, t, misses in entries:
        rows.append(
            {
                "role": role,
                "trial": t.number,
                "accuracy": t.metrics.get("accuracy"),
                lat: t.metrics.get(lat),
                "size_mb": t.metrics.get("size_mb"),
                "feasible": t.feasible,
                "recipe": t.recipe_str,
                "misses": misses,
            }
        )
    return rows


@app.command()
@_errors
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
            out.print(selection.reason, highlight=False)
        frame = pd.DataFrame(_selection_rows(selection))
        if len(frame):
            _emit(frame, format, f"{selection.policy.describe()} in '{study}'")
    if not selection.found:
        raise typer.Exit(1)


@app.command()
@_errors
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
    which = f"trial {trial}" if trial is not None else f"the trial chosen by policy {policy}"
    err.print(
        f"exporting {which} of '{study}' to {out_dir} (rebuild, verify, re-time)...",
        highlight=False,
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
    )
    if result.selection is not None:
        out.print(result.selection.summary(), highlight=False)
    out.print(result.summary(), highlight=False)


@app.command()
@_errors
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


if __name__ == "__main__":
    app()
