"""What a run reports when it ends (:class:`RunSummary`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


#: What a run counts of the trials it tells.
OUTCOMES = ("complete", "failed", "rejected", "duplicate", "rejected_early", "stopped_early")


@dataclass
class Tally:
    """What a run counted as it told its trials: their outcomes and the stage cache's work."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    cache_hits: int = 0
    cache_builds: int = 0
    cache_saved_s: float = 0.0

    def record_build(self, built: dict[str, Any]) -> None:
        for e in built.get("events", []):
            if e["hit"]:
                self.cache_hits += 1
                self.cache_saved_s += e["saved_seconds"]
            else:
                self.cache_builds += 1

    def summary(
        self, record: StudyRecord, *, overhead_s: float, run_id: str, **run: Any
    ) -> RunSummary:
        """The run's summary: ``run`` holds what the tally does not know (the study's
        storage, the run's duration, why it stopped, ...)."""
        told = sum(v for k, v in self.counts.items() if k != "duplicate")
        return RunSummary(
            study_name=record.name,
            completed=self.counts["complete"],
            failed=self.counts["failed"],
            rejected=self.counts["rejected"],
            cache_hits=self.cache_hits,
            cache_builds=self.cache_builds,
            cache_saved_s=self.cache_saved_s,
            run_id=run_id,
            front=record.front(),
            baseline=record.baseline,
            study=record,
            controller_overhead_s=overhead_s / max(1, told),
            duplicates=self.counts["duplicate"],
            rejected_early=self.counts["rejected_early"],
            stopped_early=self.counts["stopped_early"],
            derived={
                t.number: t.derived for t in record.trials if t.derived and t.run_id == run_id
            },
            **run,
        )
