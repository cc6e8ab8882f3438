"""What a run reports when it ends (:class:`RunSummary`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autoopt.study.records import StudyRecord, TrialRecord


@dataclass
class RunSummary:
    study_name: str
    storage: str
    trials_run: int
    completed: int
    failed: int
    rejected: int
    elapsed_s: float
    cache_hits: int
    cache_builds: int
    cache_saved_s: float
    stopped: str
    target: str = "local"
    run_id: str = ""
    resumed: bool = False
    front: list[TrialRecord] = field(default_factory=list)
    baseline: TrialRecord | None = None
    study: StudyRecord | None = None
    results_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)
    #: Summaries of the experiment's other targets (one study each), when it has several.
    siblings: list[RunSummary] = field(default_factory=list)
    #: Seconds the controller itself spent per trial (ask, sample, tell, storage writes).
    controller_overhead_s: float = 0.0
    #: Trials whose candidate had been measured already in this study: told that measurement.
    duplicates: int = 0
    #: Whether the user pressed Ctrl-C during the run (it may have ended on its own first).
    interrupted: bool = False
    #: Trials stopped before their full measurement: a first evaluation slice clearly below
    #: the floor (rejected early), or a rung from which the front was out of reach.
    rejected_early: int = 0
    stopped_early: int = 0
    #: The standard starting points this run queued: trial number -> name
    #: (:mod:`autoopt.search.starting`), and those dropped with the reason.
    derived: dict[int, str] = field(default_factory=dict)
    derived_dropped: list[str] = field(default_factory=list)
