"""The commands that read a study: its front, its trials, the storage's studies."""

from __future__ import annotations

from autoopt import api
from autoopt.cli._console import Format, FormatOpt, StorageOpt, StudyOpt, app, emit, guarded, out
from autoopt.cli._tables import STATES, emit_trials, slower_note


@app.command()
@guarded
def pareto(study: StudyOpt, storage: StorageOpt = None, format: FormatOpt = Format.table) -> None:
    """Print the feasible Pareto front of a study."""
    record = api.load_study(study, storage)
    frame = record.frame(labelled=True)
    if len(frame):
        frame = frame[frame["pareto"]].sort_values("latency_p50_ms")
    emit_trials(frame, format, f"Pareto front of '{study}' (fastest first)", record)
    if format is Format.table:
        for t in record.front():
            r = record.ratios(t)
            if r.get("speedup") is not None and r["speedup"] < 1:
                note = slower_note(record, t, r["speedup"], r.get("size_ratio"))
                out.print(f"* {note}", highlight=False, markup=False)


@app.command()
@guarded
def trials(study: StudyOpt, storage: StorageOpt = None, format: FormatOpt = Format.table) -> None:
    """Print every trial of a study."""
    record = api.load_study(study, storage)
    emit_trials(record.frame(labelled=True), format, f"Trials of '{study}'", record)


@app.command()
@guarded
def studies(storage: StorageOpt = None, format: FormatOpt = Format.table) -> None:
    """List the studies in a storage."""
    import pandas as pd

    rows = [
        {
            "study": s.name,
            "workload": s.workload,
            "trials": s.n_trials,
            **{STATES.get(k, k.lower()): v for k, v in s.counts.items()},
            "best_speedup": s.best_speedup,
            "last_activity": s.last_activity.isoformat(timespec="seconds")
            if s.last_activity
            else "",
        }
        for s in api.list_studies(storage)
    ]
    emit(pd.DataFrame(rows), format, "Studies")
