"""The ``autoopt`` command line: parses, calls :mod:`autoopt.api`, prints. No logic of its own.

Results go to stdout, progress and diagnostics to stderr. Exit codes: 0 success, 2 bad input
(configuration, arguments, unknown study), 1 anything else.
"""

from __future__ import annotations

import functools
import logging
import math
import sys
import threading
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autoopt import api
from autoopt.errors import AutoOptError, ConfigError, StorageError
from autoopt.study.records import load_note

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Find the fastest deployable version of a trained model within an accuracy budget.",
)
# Not a terminal (a pipe, a file): lines and tables are never folded (rich would otherwise
# fold them at 80 columns), so a recipe or a reason stays one line a program can grep.
_UNFOLDED = 100_000
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else _UNFOLDED)
err = Console(
    stderr=True,
    soft_wrap=not sys.stderr.isatty(),
    width=None if sys.stderr.isatty() else _UNFOLDED,
)
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
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
            raise typer.Exit(2) from None
        except AutoOptError as e:
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            # A sweep records what was in flight and returns; this is Ctrl-C before that.
            err.print("interrupted", highlight=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also print informational log messages (autoopt's and its libraries').",
        ),
    ] = False,
) -> None:
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
    with _RunLog(err, total, len(exp.targets), study or exp.name) as log:
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
        _print_summary(s)
    if summary.stopped == "interrupted" or summary.interrupted:
        raise typer.Exit(130)


class _RunLog:
    """A sweep's progress on stderr: a line per trial and, on a terminal, a live bar.

    Without a terminal (a file, a pipe) a bar would only be drawn once, at the end: each line
    then carries the count instead. A start-up step that takes a while (a workload training
    its teacher on first use, the host self-test) says what it is doing once it has taken
    longer than :attr:`NOTICE_AFTER_S`; a quick one prints nothing.
    """

    NOTICE_AFTER_S = 5.0

    def __init__(self, console: Console, total: int | None, targets: int, name: str) -> None:
        self.console = console
        self.total = total * targets if total else None
        self.targets = targets
        self.done = 0
        self.progress: Any = None
        self.name = name
        self._timer: threading.Timer | None = None
        self._shown: set[str] = set()

    def __enter__(self) -> _RunLog:
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self.progress.start()
            self.bar = self.progress.add_task(f"sweep {self.name}", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        self._cancel()
        if self.progress is not None:
            self.progress.stop()

    # ---- output ---------------------------------------------------------------------------
    def line(self, text: str, *, counted: bool = False) -> None:
        """One line of progress; ``text`` is rich markup with every value already escaped."""
        if counted:
            self.done += 1
            if self.progress is not None:
                self.progress.advance(self.bar)
        if self.progress is None:
            width = len(str(self.total or self.done))
            count = f"{self.done:>{width}}" + (f"/{self.total}" if self.total else "")
            pad = " " * len(count)
            text = f"[{count}] {text}" if counted else f" {pad} {text}"
        self.console.print(text, highlight=False)

    def _later(self, key: str, text: str) -> None:
        """Print ``text`` if the step ``key`` is still going after NOTICE_AFTER_S."""
        self._cancel()

        def show() -> None:
            self._shown.add(key)
            self.line(text)

        self._timer = threading.Timer(self.NOTICE_AFTER_S, show)
        self._timer.daemon = True
        self._timer.start()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
            self._timer = None

    # ---- events ---------------------------------------------------------------------------
    def on_event(self, e: dict[str, Any]) -> None:
        kind = e["type"]
        tag = f"[{escape(e['target'])}] " if self.targets > 1 else ""
        recipe = escape(e.get("recipe", ""))
        if kind == "workload":
            name = escape(e["name"])
            if e["phase"] == "loading":
                self._later(
                    "workload",
                    f"{tag}loading workload '{name}': a workload that trains or downloads its "
                    "model does so on first use, which can take a few minutes...",
                )
            else:
                self._cancel()
                if "workload" in self._shown:
                    self.line(f"{tag}workload '{name}' ready after {e['seconds']:.0f}s")
        elif kind == "study":
            where = escape(f"'{e['study']}' in {e['storage']}")
            if e["created"]:
                self.line(f"{tag}new study {where}")
            else:
                self.line(
                    f"{tag}continuing study {where}: {e['trials']} trials so far "
                    f"({e['complete']} complete); this run adds to them "
                    "(--study NAME starts a new study)"
                )
        elif kind == "selftest":
            if e["phase"] == "start":
                self._later(
                    "selftest",
                    f"{tag}self-testing each of the space's paths on this host before any "
                    "candidate is built (the first run on a host and library versions does; "
                    "later ones read its results)...",
                )
                return
            self._cancel()
            counts = ", ".join(f"{n} {status}" for status, n in sorted(e["counts"].items()))
            cached = " (cached for this host)" if e["cached"] else ""
            refusing = f"; refusing {escape(', '.join(e['failed']))}" if e["failed"] else ""
            self.line(f"{tag}host self-test of the space's paths: {counts}{cached}{refusing}")
        elif kind == "complete":
            if e["baseline"]:
                mark = "[bold]baseline[/bold]"
            elif e["feasible"]:
                mark = "[green]feasible[/green]"
            else:
                mark = "[yellow]infeasible[/yellow]"
            self.line(
                f"{tag}trial {e['trial']:>3} {mark} {escape(e['metric'])}={e['accuracy']:.4f} "
                f"p50={e['latency_p50_ms']:.3f}ms x{e['speedup']:.2f}  {recipe}",
                counted=True,
            )
        elif kind in ("failed", "rejected"):
            # The whole reason: it is the user's fix ("use fp32 or fp16 on ...").
            self.line(
                f"{tag}trial {e['trial']:>3} [red]{kind}[/red] "
                f"{escape('[' + e['stage'] + ']')} {escape(e['reason'])}",
                counted=kind == "failed",
            )
        elif kind == "duplicate":
            self.line(
                f"{tag}trial {e['trial']:>3} [cyan]repeat[/cyan] of trial {e['of']}: its "
                f"measurement reused  {recipe}",
                counted=True,
            )
        elif kind == "recombined":
            self.line(
                f"{tag}queued: the model of trial {e['model_from']} with the post-training "
                f"settings of trial {e['settings_from']}"
            )
        elif kind == "recovered":
            self.line(
                f"{tag}{e['count']} trial(s) left RUNNING by a stopped controller: marked "
                "failed and re-queued"
            )
        elif kind == "resumed":
            self.line(
                f"{tag}resuming interrupted run {escape(e['run'])}: {e['done']} of "
                f"{e['budget']} trials already done"
            )


def _print_summary(summary: Any) -> None:
    record = summary.study
    name = record.metric_name
    # A terminal narrower than a recipe leaves the recipe column a few letters wide: list the
    # recipes under the table instead. Files and pipes are not folded at all.
    inline = not out.is_terminal or out.width >= 140
    table = Table(title=f"Feasible Pareto front of '{summary.study_name}' (fastest first)")
    for col in ("trial", name, "p50 ms", "p90 ms", "size MB", "speedup", "smaller", "host"):
        table.add_column(col, no_wrap=True, justify="left" if col == "trial" else "right")
    if inline:
        table.add_column("recipe", overflow="fold")
    notes = []
    for t in summary.front:
        r = record.ratios(t)
        speedup = r.get("speedup")
        slower = speedup is not None and speedup < 1
        if slower:
            notes.append(_slower_note(record, t, speedup, r.get("size_ratio")))
        row = [
            str(t.number),
            f"{t.metrics['accuracy']:.4f}",
            f"{t.metrics['latency_p50_ms']:.3f}",
            f"{t.metrics['latency_p90_ms']:.3f}",
            f"{t.metrics['size_mb']:.3f}",
            "–" if speedup is None else f"{speedup:.2f}x" + ("*" if slower else ""),
            f"{r['size_ratio']:.2f}x" if "size_ratio" in r else "–",
            t.load_note,
        ]
        table.add_row(*row, *([escape(t.recipe_str)] if inline else []))
    out.print(table)
    if summary.front and not inline:
        width = max(len(str(t.number)) for t in summary.front)
        for t in summary.front:
            out.print(f"  {t.number:>{width}}  {t.recipe_str}", highlight=False, markup=False)
    for note in notes:
        out.print(f"* {note}", highlight=False, markup=False)
    if not summary.front:
        out.print(
            f"No trial met the {name} floor; the best trials found are in trials.csv.",
            highlight=False,
        )
    d = summary.duplicates
    repeats = f" ({d} {'a repeat' if d == 1 else 'repeats'} of a measured candidate)" if d else ""
    out.print(
        f"{summary.trials_run} trials this run ({summary.completed} complete{repeats}, "
        f"{summary.failed} failed, {summary.rejected} rejected) in {summary.elapsed_s:.0f}s; "
        f"stopped: {summary.stopped}. Stage cache: {summary.cache_hits} stage builds reused "
        f"(saved {summary.cache_saved_s:.1f}s), {summary.cache_builds} built.",
        highlight=False,
    )
    if summary.results_dir:
        out.print(
            f"Results: {summary.results_dir}/ (trials.csv, pareto.csv, pareto.png)",
            highlight=False,
            markup=False,
        )
    for warning in summary.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    out.print(
        f"Study: {summary.study_name} in {summary.storage} (target {summary.target})",
        highlight=False,
        markup=False,
    )


def _slower_note(record: Any, t: Any, speedup: float, size_ratio: float | None) -> str:
    """Why a trial slower than the baseline is on the front: an objective besides speed."""
    others = [o for o in record.objectives if o != "accuracy" and not o.startswith("latency")]
    wins = [
        f"{o} ({size_ratio:.2f}x smaller)" if o == "size_mb" and size_ratio else o for o in others
    ]
    return (
        f"trial {t.number} is slower than the baseline ({speedup:.2f}x); it is on the front for "
        f"{' and '.join(wins) or 'another objective'}, an objective of this study. "
        "`autoopt best --policy fastest` chooses by speed."
    )


def _emit(frame: Any, fmt: Format, title: str) -> None:
    if fmt is Format.csv:
        sys.stdout.write(frame.to_csv(index=False))
    elif fmt is Format.json:
        sys.stdout.write(frame.to_json(orient="records", indent=1, default_handler=str) + "\n")
    else:
        table = Table(title=escape(title))
        for col in frame.columns:
            table.add_column(escape(str(col)), overflow="fold")
        for _, row in frame.iterrows():
            table.add_row(*(escape(_cell(v)) for v in row))
        out.print(table)


def _cell(v: Any) -> str:
    """A table cell: missing values (None, NaN: a metric a failed trial never had) blank."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


#: The columns a trials table shows (csv and json carry every column).
_SHORT = [
    "trial",
    "state",
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
#: Optuna's state names as the dashboard shows them (a refused candidate is told PRUNED).
_STATES = {
    "COMPLETE": "complete",
    "FAIL": "failed",
    "PRUNED": "rejected",
    "RUNNING": "running",
    "WAITING": "queued",
}


def _state_label(state: str, repeat_of: Any) -> str:
    if state == "COMPLETE" and isinstance(repeat_of, int | float) and math.isfinite(repeat_of):
        return f"repeat of {int(repeat_of)}"
    return _STATES.get(state, state.lower())


def _emit_trials(frame: Any, fmt: Format, title: str, record: Any) -> None:
    """A table shows the main columns, in words, and marks trials timed on a busy host; csv and
    json carry every column as stored (``state`` is Optuna's, ``status`` autoopt's,
    ``duplicate_of`` names the trial a repeat reused)."""
    if fmt is Format.table and len(frame):
        frame = frame.assign(host=[load_note(row) for row in frame.to_dict("records")])
        measured = frame["state"] == "COMPLETE"
        frame["state"] = [
            _state_label(state, repeat_of)
            for state, repeat_of in zip(frame["state"], frame["duplicate_of"], strict=True)
        ]
        # Feasibility means nothing for a trial that measured nothing: blank, not "False".
        for col in ("feasible", "pareto"):
            frame[col] = [
                ("yes" if v else "no") if m else ""
                for v, m in zip(frame[col], measured, strict=True)
            ]
        if "failure_stage" in frame:
            frame["failure_reason"] = [
                f"[{stage}] {reason}" if reason else ""
                for stage, reason in zip(
                    frame["failure_stage"], frame["failure_reason"], strict=True
                )
            ]
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
    _emit_trials(frame, format, f"Pareto front of '{study}' (fastest first)", record)
    if format is Format.table:
        for t in record.front():
            r = record.ratios(t)
            if r.get("speedup") is not None and r["speedup"] < 1:
                note = _slower_note(record, t, r["speedup"], r.get("size_ratio"))
                out.print(f"* {note}", highlight=False, markup=False)


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
            **{_STATES.get(k, k.lower()): v for k, v in s.counts.items()},
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


def _selection_rows(selection: Any, metric_name: str) -> list[dict[str, Any]]:
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
                metric_name: t.metrics.get("accuracy"),
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
            out.print(selection.reason, highlight=False, markup=False)
        frame = pd.DataFrame(_selection_rows(selection, selection.metric_name))
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
