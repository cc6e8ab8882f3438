"""The controller: Optuna ask/tell over an executor, the only writer to its study.

It keeps ``workers`` trials in flight, tells each result as it arrives, and stops at the trial
or time budget (at the time budget it cancels, by default, the trials still running and queues
them again for the next run). Its parts: the run ledger (:mod:`.ledger`: the study, its runs,
resuming), the trial recorder (:mod:`autoopt.study.recorder`: every outcome in the schema's
terms), the executor (:mod:`autoopt.execution`: builds, measurements, retries and limits), the
proposals (:mod:`.proposals`: queued trials, then the sampler's) and the loop (:mod:`.loop`),
which hands candidates out and brings back what ends; the controller tells it to the study.

The baseline (trial 0) is measured alone before any candidate is dispatched: every ratio and
the constraint need it, and its timing must not share the host with candidates' builds.
Several controllers may share a study (PostgreSQL): Optuna hands each WAITING trial to exactly
one of them, and results that arrive before the baseline is known are held until it is.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

from autoopt.config import Experiment, Target
from autoopt.errors import ConfigError
from autoopt.execution import Executor, Finished, RayExecutor, TrialTask
from autoopt.execution.cluster import check_targets, ensure_ray
from autoopt.recipe import Recipe
from autoopt.search import early, rungs
from autoopt.search.candidates import Candidates
from autoopt.search.host import HostCheck
from autoopt.search.ledger import RunLedger, controller_id
from autoopt.search.loop import RunLoop
from autoopt.search.points import recipe_key
from autoopt.search.proposals import Asked, Proposals
from autoopt.search.summary import RunSummary, Tally
from autoopt.study import schema as S
from autoopt.study.recorder import Outcome, TrialRecorder
from autoopt.study.records import TrialRecord, study_record, trial_record
from autoopt.study.storage import normalize_url

log = logging.getLogger(__name__)
EventHandler = Callable[[dict[str, Any]], None]


def _fixed(trial: optuna.Trial) -> bool:
    """The baseline, a seed candidate or a re-queued trial: always measured."""
    attrs = trial.user_attrs
    return bool(
        attrs.get(S.ATTR_BASELINE) or attrs.get(S.ATTR_SEED) or S.ATTR_REQUEUED_FROM in attrs
    )


class Controller:
    def __init__(
        self,
        experiment: Experiment,
        *,
        target: Target | None = None,
        storage: str | None = None,
        study_name: str | None = None,
        workers: int | None = None,
        on_event: EventHandler | None = None,
        ray_address: str | None = None,
    ) -> None:
        self.exp = experiment
        self.target = target or experiment.targets[0]
        self.storage_url = normalize_url(storage or experiment.storage)
        self.study_name = study_name or experiment.study_name(self.target)
        self.workers = workers or experiment.execution.workers
        self._on_event = on_event or (lambda e: None)
        self.ray_address = ray_address
        self.controller_id = controller_id()
        self.ledger = RunLedger(
            experiment, self.target, self.storage_url, self.study_name, self.controller_id
        )
        self.stop_requested = threading.Event()
        self.warnings: list[str] = []
        #: Whether the loop has started: from then on a stop request is recorded, not raised.
        self.looping = False
        self.baseline: dict[str, float] | None = None
        self.asked: dict[int, Asked] = {}
        self.candidates = Candidates()
        self.plans: dict[int, rungs.RungPlan] = {}
        self._derived: Any = None
        self.pending: list[Finished] = []
        self.tally = Tally()
        self.overhead = 0.0
        self.workload: Any = None
        self._run_id = ""
        self._snapshot = ""

    def on_event(self, event: dict[str, Any]) -> None:
        self._on_event({**event, "target": self.target.name, "study": self.study_name})

    # ---- the run --------------------------------------------------------------------------
    def run(self, n_trials: int | None = None, timeout_s: float | None = None) -> RunSummary:
        n_trials = n_trials if n_trials is not None else self.exp.budget.n_trials
        timeout_s = timeout_s if timeout_s is not None else self.exp.budget.timeout_s
        if n_trials is None and timeout_s is None:
            raise ConfigError("give a trial budget (--n-trials) or a time budget (--timeout)")
        start = time.monotonic()
        study, budget, done, resumed = self._setup(n_trials, timeout_s)
        executor = self._executor()
        self._check_host(study, executor)
        self._derived = self.proposals.queue_starting_points(study)
        self.ledger.after_queue(study, n_trials)
        loop = RunLoop(self, study, executor, budget, done, start, timeout_s)
        try:
            stopped = loop.run()
        finally:
            executor.close()
        self.ledger.finish(study, self._run_id, stopped)
        return self._summary(study, loop, stopped, resumed, start)

    def _setup(
        self, n_trials: int | None, timeout_s: float | None
    ) -> tuple[optuna.Study, int | None, int, bool]:
        from autoopt.workloads import load_workload

        # Loaded here first so a workload that trains its teacher does it once, not per worker.
        # That may take minutes on first use: say so before, and how long it took after.
        name = self.exp.workload.name
        self.on_event({"type": "workload", "phase": "loading", "name": name})
        t0 = time.monotonic()
        self.workload = load_workload(name, self.exp.workload.options)
        seconds = time.monotonic() - t0
        self.on_event({"type": "workload", "phase": "ready", "name": name, "seconds": seconds})
        ensure_ray(num_cpus=max(self.workers, os.cpu_count() or 1), address=self.ray_address)
        check_targets([self.target], self.exp.task_cpus)
        study = self.ledger.open(
            n_trials,
            self.workload.version,
            self.workload.metric_name,
            teacher_kind=self.workload.teacher_kind,
        )
        self.on_event(self.ledger.study_event(study))
        self.recorder = TrialRecorder(study, self.exp.constraint, self.exp.objectives)
        stale = self.ledger.recover_stale(study, self.recorder)
        if stale:
            self.on_event({"type": "recovered", "count": stale})
        run = self.ledger.start(study, n_trials, timeout_s)
        self._run_id = run.run_id
        if run.resumed:
            self.on_event(
                {"type": "resumed", "run": run.run_id, "done": run.done, "budget": run.budget}
            )
        self._snapshot = self.ledger.record_snapshot(study, self.ledger.snapshot_content())
        self.proposals = Proposals(
            self.exp,
            self.target,
            self.recorder,
            self.workload,
            owner=self.controller_id,
            run_id=self._run_id,
            ray_address=self.ray_address,
            on_event=self.on_event,
        )
        self.baseline = self.find_baseline(study)
        self.candidates = Candidates.of(study)
        return study, run.budget, run.done, run.resumed or run.done > 0

    def _check_host(self, study: optuna.Study, executor: Executor) -> None:
        """Self-test the space's paths on the target before any candidate is built."""
        if self.exp.execution.self_test:
            self.on_event({"type": "selftest", "phase": "start"})
        host = HostCheck.run(self.exp, self.target, executor)
        host.record(study)
        self.proposals.host = host
        if host.error:
            self.warnings.append(f"the host self-test did not complete ({host.error})")
        if host.results:
            failed = [r.label for r in host.results if r.status == "fail"]
            cached = all(r.cached for r in host.results)
            event = {"type": "selftest", "phase": "done", "counts": host.counts()}
            event["failed"] = failed
            self.on_event({**event, "cached": cached})

    def _executor(self) -> Executor:
        return RayExecutor(
            self.target,
            self.exp.latency.threads,
            self.exp.execution.build_threads,
            self.exp.execution.max_retries,
        )

    def find_baseline(self, study: optuna.Study) -> dict[str, float] | None:
        for t in self.ledger.baseline_trials(study, (TrialState.COMPLETE,)):
            return trial_record(t).metrics
        return None

    def _summary(
        self, study: optuna.Study, loop: RunLoop, stopped: str, resumed: bool, start: float
    ) -> RunSummary:
        record = study_record(study, self.storage_url)
        dropped = [f"{n}: {why}" for n, why in (self._derived.dropped if self._derived else [])]
        return self.tally.summary(
            record,
            storage=self.storage_url,
            trials_run=loop.started - loop.first + loop.refused + loop.repeated_total,
            elapsed_s=time.monotonic() - start,
            stopped=stopped,
            target=self.target.name,
            run_id=self._run_id,
            resumed=resumed,
            warnings=self.warnings,
            overhead_s=self.overhead,
            derived_dropped=dropped,
        )

    # ---- proposals ------------------------------------------------------------------------
    def prior(self, trial: optuna.Trial, recipe: Recipe) -> TrialRecord | None:
        """The trial that measured this candidate already, stopped it early or saw it fail by
        itself, if it is not one to re-measure."""
        if _fixed(trial):
            return None
        return self.candidates.earlier(recipe)

    def twin(self, trial: optuna.Trial, recipe: Recipe) -> int | None:
        """The trial in flight that measures this candidate now, if it is not one to
        re-measure."""
        if _fixed(trial):
            return None
        key = recipe_key(recipe)
        return next((n for n, a in self.asked.items() if recipe_key(a.recipe) == key), None)

    def hold(self, trial: optuna.Trial, recipe: Recipe, twin: int) -> None:
        """A proposal of a candidate another trial is measuring now: not built twice, but
        told that trial's measurement when it arrives (it takes no slot of the budget)."""
        self.candidates.hold(trial, recipe)
        self.on_event({"type": "held", "trial": trial.number, "of": twin})

    def release_held(self, reason: str) -> None:
        """The run ends: what is still held fails with ``reason``."""
        for trial, recipe in self.candidates.take_held():
            self.fail(Asked(trial, recipe), "propose", reason)

    def flush_held(self, recipe: Recipe) -> None:
        """Tell the repeats held for ``recipe`` what its trial came to."""
        for trial, held_recipe in self.candidates.take_held(recipe):
            prior = self.candidates.earlier(recipe)
            if prior is not None:
                self.tell_repeat(trial, held_recipe, prior)
            else:
                reason = "the trial measuring this candidate failed or was stopped"
                self.fail(Asked(trial, held_recipe), "propose", reason)

    def known(self, study: optuna.Study) -> set[str]:
        """Recipe keys of every candidate measured, failed, in flight or queued."""
        keys = self.candidates.keys() | {recipe_key(a.recipe) for a in self.asked.values()}
        return keys | self.proposals.queued_keys(study)

    def task_for(self, asked: Asked) -> TrialTask:
        return early.task_for(self, asked)

    # ---- telling --------------------------------------------------------------------------
    def tell_finished(self, study: optuna.Study, done: Finished) -> TrialTask | None:
        """Tell what a trial came back with; returns its next rung's task when it goes on."""
        asked = self.asked[done.number]
        if done.failure is not None:
            failure = done.failure
            if failure.below_floor is not None and self.baseline is not None:
                early.reject_early(self, asked, done)
                return None
            self.fail(
                asked,
                failure.stage,
                failure.reason,
                failure.rejected,
                stages=done.stages,
                retries=done.attempts,
                own=failure.own,
            )
            return None
        self.record_build(done.built or {})
        if asked.is_baseline and self.baseline is None:
            self.baseline = dict((done.measured or {})["metrics"])
        if self.baseline is None:
            # The baseline is still being measured (by another controller): every ratio and
            # the constraint need it, so hold this result until it is known.
            self.pending.append(done)
            return None
        return self._told(study, asked, done)

    def tell_pending(self, study: optuna.Study) -> list[TrialTask]:
        tasks: list[TrialTask] = []
        if self.baseline is not None:
            for done in self.pending:
                task = self._told(study, self.asked[done.number], done)
                if task is not None:
                    tasks.append(task)
            self.pending.clear()
        return tasks

    def _told(self, study: optuna.Study, asked: Asked, done: Finished) -> TrialTask | None:
        if float((done.built or {}).get("fidelity", 1.0)) < 1.0:
            return early.at_rung(self, study, asked, done)
        self.plans.pop(done.number, None)
        self._complete(study, asked, done)
        return None

    def _complete(self, study: optuna.Study, asked: Asked, done: Finished) -> None:
        t0 = time.perf_counter()
        built, measured = done.built or {}, done.measured or {}
        outcome = Outcome(
            metrics=measured["metrics"],
            runner=measured.get("runner", {}),
            hardware=measured.get("hardware", {}),
            node_id=measured.get("node_id", ""),
            stages=built.get("events", []),
            artifact_key=built.get("key", ""),
            build_s=built.get("seconds", 0.0),
            measure_s=measured.get("seconds", 0.0),
            build_threads=built.get("threads", 1),
        )
        assert self.baseline is not None  # noqa: S101 - tell_finished holds results until then
        told = self.recorder.complete(
            asked.trial,
            asked.recipe,
            outcome,
            self.baseline,
            retries=done.attempts,
            snapshot=self._snapshot,
        )
        record = trial_record(told)
        metrics = record.metrics
        self.candidates.measured.setdefault(recipe_key(asked.recipe), record)
        self.asked.pop(done.number, None)
        self.flush_held(asked.recipe)
        self.overhead += time.perf_counter() - t0
        self.tally.counts["complete"] += 1
        t1 = time.perf_counter()
        self.proposals.recombine(study)
        self.overhead += time.perf_counter() - t1
        self.on_event(
            {
                "type": "complete",
                "trial": asked.trial.number,
                "recipe": asked.recipe.describe(),
                "metric": self.workload.metric_name,
                "accuracy": metrics["accuracy"],
                "latency_p50_ms": metrics["latency_p50_ms"],
                "speedup": metrics.get("speedup", float("nan")),
                "feasible": self.recorder.feasible(metrics),
                "baseline": asked.is_baseline,
            }
        )

    def tell_repeat(self, trial: optuna.Trial, recipe: Recipe, prior: TrialRecord) -> None:
        t0 = time.perf_counter()
        if prior.state == "COMPLETE":
            self.recorder.repeat(trial, prior)
            self.tally.counts["complete"] += 1
        elif prior.state == "FAIL":
            self.recorder.repeat_failure(trial, prior, recipe)
            self.tally.counts["failed"] += 1
        else:
            self.recorder.repeat_judged(trial, prior)
        self.overhead += time.perf_counter() - t0
        failed = prior.state == "FAIL"
        self.tally.counts["duplicate"] += 1
        event = {"type": "duplicate", "trial": trial.number, "of": prior.number}
        if failed:
            event.update(stage=prior.failure_stage, reason=prior.failure_reason)
        self.on_event({**event, "recipe": recipe.describe(), "failed": failed})

    def tell_refused(self, trial: optuna.Trial, recipe: Recipe | None, reason: str) -> None:
        self.fail(Asked(trial, recipe) if recipe else trial, "check", reason, True)

    def fail(
        self,
        asked: Asked | optuna.Trial,
        stage: str,
        reason: str,
        rejected: bool = False,
        *,
        stages: list[dict[str, Any]] | None = None,
        retries: int = 0,
        own: bool = False,
    ) -> None:
        t0 = time.perf_counter()
        trial = asked.trial if isinstance(asked, Asked) else asked
        recipe = asked.recipe if isinstance(asked, Asked) else None
        told = self.recorder.fail(
            trial,
            stage,
            reason,
            rejected=rejected,
            recipe=recipe,
            stages=stages or (),
            retries=retries,
            own=own,
        )
        if own and not rejected and recipe is not None:
            # The same recipe would fail again: a later proposal of it is told this failure.
            self.candidates.failed.setdefault(recipe_key(recipe), trial_record(told))
        self.asked.pop(trial.number, None)
        self.plans.pop(trial.number, None)
        if recipe is not None and not rejected and stage != "propose":
            self.flush_held(recipe)
        self.overhead += time.perf_counter() - t0
        self.tally.counts["rejected" if rejected else "failed"] += 1
        self.on_event(
            {
                "type": "rejected" if rejected else "failed",
                "trial": trial.number,
                "stage": stage,
                "reason": reason,
                "recipe": recipe.describe() if recipe else "",
            }
        )

    def record_build(self, built: dict[str, Any]) -> None:
        self.tally.record_build(built)
