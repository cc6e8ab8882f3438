"""The commands that build and measure: run a sweep, validate an experiment, self-test a host."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from autoopt import api
from autoopt.cli._console import StorageOpt, app, err, guarded, out
from autoopt.cli._progress import RunLog
from autoopt.cli._tables import print_summary


@app.command()
@guarded
def run(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", min=1, help="Trials to add.")
    ] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=1, help="Seconds.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Trials in flight at once (default: the experiment's execution.workers).",
        ),
    ] = None,
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
    exp = api.validate(experiment, sampler=sampler)  # bad input fails before anything is drawn
    total = n_trials or exp.budget.n_trials
    with RunLog(err, total, len(exp.targets), study or exp.name) as log:
        summary = api.run(
            exp,
            n_trials=n_trials,
            timeout=timeout,
            workers=workers,
            storage=storage,
            study=study,
            ray_address=ray_address,
            on_event=log.on_event,
        )
    for s in [summary, *summary.siblings]:
        print_summary(s)
    if summary.stopped == "interrupted" or summary.interrupted:
        raise typer.Exit(130)


@app.command()
@guarded
def validate(experiment: Annotated[Path, typer.Argument(help="Experiment YAML file.")]) -> None:
    """Check an experiment, its search space and its workload entry point; runs nothing."""
    exp = api.validate(experiment)
    n = len(exp.space.parameters)
    out.print(
        f"{experiment}: ok — workload '{exp.workload.name}', {n} parameters, objectives "
        f"{', '.join(exp.objectives)}, sampler {exp.sampler.name}, storage {exp.storage}",
        highlight=False,
        markup=False,
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
@guarded
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
        err.print(f"{_STATUS_STYLE[r.status]} {escape(r.label)}{tag}", highlight=False)

    report = api.doctor(experiment, refresh=refresh, on_result=on_result)
    if format is ReportFormat.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=1) + "\n")
        return
    out.print(
        f"Host: {report.host.describe()}; {report.host.describe_versions()}",
        highlight=False,
        markup=False,
    )
    if report.probe:
        out.print(f"Probe: {report.probe} (from {report.workload})", highlight=False, markup=False)
    table = Table(title=escape(f"Host self-test of '{report.experiment}' ({report.device})"))
    for col in ("path", "status", "mean cos", "min cos", "speed vs fp32 eager", "reason, notes"):
        table.add_column(col, overflow="fold")
    for r in report.results:
        table.add_row(
            escape(r.label),
            _STATUS_STYLE[r.status],
            "" if r.mean_cosine is None else f"{r.mean_cosine:.4f}",
            "" if r.min_cosine is None else f"{r.min_cosine:.4f}",
            "" if r.speedup is None else f"{r.speedup:.2f}x",
            escape("; ".join([*([] if r.status == "pass" else [r.reason]), *r.notes])),
        )
    out.print(table)
    counts = {s: sum(r.status == s for r in report.results) for s in _STATUS_STYLE}
    out.print(", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)
