"""The tables the commands print: a run's summary, a study's trials, a selection's rows."""

from __future__ import annotations

import math
from typing import Any

from rich.markup import escape
from rich.table import Table

from autoopt.cli._console import Format, emit, err, out
from autoopt.study.records import load_note


def _front_table(summary: Any, inline: bool) -> tuple[Table, list[str]]:
    """The run's feasible front, and why any slower-than-baseline trial is on it."""
    record = summary.study
    table = Table(title=f"Feasible Pareto front of '{summary.study_name}' (fastest first)")
    for col in (
        "trial",
        record.metric_name,
        "p50 ms",
        "p90 ms",
        "size MB",
        "speedup",
        "smaller",
        "host",
    ):
        table.add_column(col, no_wrap=True, justify="left" if col == "trial" else "right")
    if inline:
        table.add_column("recipe", overflow="fold")
    notes = []
    for t in summary.front:
        r = record.ratios(t)
        speedup = r.get("speedup")
        slower = speedup is not None and speedup < 1
        if slower:
            notes.append(slower_note(record, t, speedup, r.get("size_ratio")))
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
    return table, notes


def print_summary(summary: Any) -> None:
    """A run's front, counts, where its results went, and its warnings."""
    name = summary.study.metric_name
    # A terminal narrower than a recipe leaves the recipe column a few letters wide: list the
    # recipes under the table instead. Files and pipes are not folded at all.
    inline = not out.is_terminal or out.width >= 140
    table, notes = _front_table(summary, inline)
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


def slower_note(record: Any, t: Any, speedup: float, size_ratio: float | None) -> str:
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


#: The columns a trials table shows (csv and json carry every column).
SHORT = [
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
STATES = {
    "COMPLETE": "complete",
    "FAIL": "failed",
    "PRUNED": "rejected",
    "RUNNING": "running",
    "WAITING": "queued",
}


def state_label(state: str, repeat_of: Any) -> str:
    if state == "COMPLETE" and isinstance(repeat_of, int | float) and math.isfinite(repeat_of):
        return f"repeat of {int(repeat_of)}"
    return STATES.get(state, state.lower())


def emit_trials(frame: Any, fmt: Format, title: str, record: Any) -> None:
    """A table shows the main columns, in words, and marks trials timed on a busy host; csv and
    json carry every column as stored (``state`` is Optuna's, ``status`` autoopt's,
    ``duplicate_of`` names the trial a repeat reused)."""
    if fmt is Format.table and len(frame):
        frame = frame.assign(host=[load_note(row) for row in frame.to_dict("records")])
        measured = frame["state"] == "COMPLETE"
        frame["state"] = [
            state_label(state, repeat_of)
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
        short = [record.metric_name if c == "accuracy" else c for c in SHORT]
        frame = frame[[c for c in short if c in frame.columns]]
    emit(frame, fmt, title)


def selection_rows(selection: Any, metric_name: str) -> list[dict[str, Any]]:
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
