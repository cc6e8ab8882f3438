"""The controller: Optuna ask/tell over Ray tasks, the only writer to its study.

It keeps ``workers`` trials in flight, tells each result as it arrives (every metric as a
user attribute, the accuracy floor as an Optuna constraint), records failed and refused
candidates with their reason, and stops at the trial or time budget (at the time budget it
cancels, by default, the trials still running and queues them again for the next run).

Lifecycle of a study, all of it kept in the study database so that any controller can pick
it up: the creator enqueues the baseline (trial 0); each invocation is a *run* (study user
attribute ``run:<id>`` with its budget); a run whose controller died is adopted by the next
invocation, which fails and re-queues the trials it left RUNNING and counts the trials the
run already finished against its budget. Several controllers may share a study (PostgreSQL):
Optuna hands each WAITING trial to exactly one of them, and results that arrive before the
baseline is known are held until it is.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from autoopt.cache import resolve_root
from autoopt.config import Experiment, Target
from autoopt.config._space import encode_choice
from autoopt.errors import AutoOptError, CandidateError, ConfigError
from autoopt.recipe import Recipe, baseline_params, baseline_recipe, recipe_from_params
from autoopt.search import recombine
from autoopt.search import records as R
from autoopt.search.executor import RayExecutor, TrialTask, check_targets, ensure_ray
from autoopt.search.sampling import make_sampler, suggest
from autoopt.search.storage import normalize_url, open_storage, set_user_attrs

log = logging.getLogger(__name__)
EventHandler = Callable[[dict[str, Any]], None]
ATTR_CONTROLLER = "controller"
ATTR_RUN = "run_id"
RUN_PREFIX = "run:"


@dataclass(frozen=True)
class _Measured:
    """A complete trial's recorded outcome, for telling a repeat of its candidate."""

    number: int
    user_attrs: dict[str, Any]
    values: list[float]

    @classmethod
    def of(cls, t: optuna.trial.FrozenTrial) -> _Measured:
        return cls(t.number, dict(t.user_attrs), list(t.values or []))


def _recipe_key(recipe: Recipe | dict[str, Any]) -> str:
    data = recipe.to_dict() if isinstance(recipe, Recipe) else recipe
    return json.dumps(data, sort_keys=True, default=str)


def _fixed(trial: optuna.Trial) -> bool:
    """The baseline, a seed candidate or a re-queued trial: always measured."""
    attrs = trial.user_attrs
    return bool(
        attrs.get(R.ATTR_BASELINE) or attrs.get(R.ATTR_SEED) or R.ATTR_REQUEUED_FROM in attrs
    )


@dataclass
class _InFlight:
    trial: optuna.Trial
    recipe: Recipe
    task: TrialTask
    ref: Any
    phase: str
    started: float
    attempts: int = 0
    built: dict[str, Any] | None = None


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
    front: list[R.TrialRecord] = field(default_factory=list)
    baseline: R.TrialRecord | None = None
    study: R.StudyRecord | None = None
    results_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)
    #: Summaries of the experiment's other targets (one study each), when it has several.
    siblings: list[RunSummary] = field(default_factory=list)
    #: Seconds the controller itself spent per trial (ask, sample, tell, storage writes).
    controller_overhead_s: float = 0.0
    #: Trials whose candidate had been measured already in this study: told that measurement.
    duplicates: int = 0


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
        self._seeds = {seed.name: seed for seed in experiment.seed_candidates}
        self._on_event = on_event or (lambda e: None)
        self.ray_address = ray_address
        self.controller_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stop_requested = threading.Event()
        self._baseline: dict[str, float] | None = None
        self._hits = self._builds = 0
        self._saved = 0.0
        self._overhead = 0.0
        self._counts = {"complete": 0, "failed": 0, "rejected": 0, "duplicate": 0}
        self._measured: dict[str, _Measured] = {}
        self._pending: list[tuple[_InFlight, dict[str, Any]]] = []
        self.warnings: list[str] = []
        self._workload: Any = None
        self._run_id = ""

    def on_event(self, event: dict[str, Any]) -> None:
        self._on_event({**event, "target": self.target.name, "study": self.study_name})

    # ---- study set-up -------------------------------------------------------------------
    def _open_study(self, n_trials: int | None) -> optuna.Study:
        storage = open_storage(self.storage_url, create=True)
        sampler = make_sampler(self.exp.sampler, self.exp.space, n_trials)
        try:
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                directions=self.exp.directions,
                sampler=sampler,
            )
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=self.study_name, storage=storage, sampler=sampler)
            created = False
        runs = [v for k, v in study.user_attrs.items() if k.startswith(RUN_PREFIX)]
        if runs:
            # A later run must not replay the first run's proposals, nor two controllers
            # sharing the study each other's: offset the seed by the runs so far, plus a salt
            # when another controller is running now.
            live = any(
                not r.get("finished") and self._controller_alive(r.get("controller", ""))
                for r in runs
            )
            seed = (self.exp.sampler.seed or 0) + len(runs)
            if live:
                seed += uuid.uuid4().int % 100_000
            study.sampler = make_sampler(
                self.exp.sampler.model_copy(update={"seed": seed}), self.exp.space, n_trials
            )
        existing = study.user_attrs.get(R.STUDY_OBJECTIVES)
        if existing and list(existing) != list(self.exp.objectives):
            raise ConfigError(
                f"{self.exp.source}: objectives: study '{self.study_name}' in {self.storage_url} "
                f"was created with objectives {existing}, got {self.exp.objectives}; pass "
                "--study NEW_NAME to start a new study"
            )
        recorded = {
            "workload": study.user_attrs.get(R.STUDY_WORKLOAD),
            "version": study.user_attrs.get(R.STUDY_WORKLOAD_VERSION),
        }
        current = {"workload": self.exp.workload.name, "version": self._workload.version}
        if existing and recorded["version"] and recorded != current:
            # Its trials were scored against another teacher or other data: one front cannot
            # mix them.
            raise ConfigError(
                f"{self.exp.source}: workload: study '{self.study_name}' in {self.storage_url} "
                f"was measured with workload '{recorded['workload']}' version "
                f"{recorded['version']}, this experiment's is '{current['workload']}' version "
                f"{current['version']} (its options, data or weights differ); pass "
                "--study NEW_NAME to start a new study"
            )
        if created or not existing:
            study.set_user_attr(R.STUDY_OBJECTIVES, list(self.exp.objectives))
            study.set_user_attr(R.STUDY_WORKLOAD, self.exp.workload.name)
            study.set_user_attr(R.STUDY_WORKLOAD_VERSION, self._workload.version)
            study.set_user_attr(R.STUDY_CONSTRAINT, self.exp.constraint.model_dump())
            study.set_user_attr(R.STUDY_TARGET, self.target.model_dump())
        study.set_user_attr(R.STUDY_EXPERIMENT, self.exp.model_dump(mode="json"))
        study.set_user_attr(R.STUDY_CACHE_DIR, resolve_root(self.exp.cache_dir))
        self._ensure_baseline_queued(study, created)
        return study

    def _baseline_trials(self, study: optuna.Study, states: tuple[TrialState, ...]) -> list[Any]:
        return [
            t
            for t in study.get_trials(deepcopy=False, states=states)
            if t.user_attrs.get(R.ATTR_BASELINE)
        ]

    def _ensure_baseline_queued(self, study: optuna.Study, created: bool) -> None:
        """The baseline is enqueued once, by whoever created the study (or finds none)."""
        live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
        if not created:
            # Another controller may have just created the study: give it a moment to
            # enqueue the baseline rather than enqueueing a second one.
            deadline = time.monotonic() + 10.0
            while not study.get_trials(deepcopy=False) and time.monotonic() < deadline:
                time.sleep(0.25)
            if self._baseline_trials(study, live):
                return
        params = baseline_params(self.exp.space) or {}
        study.enqueue_trial(params, user_attrs={R.ATTR_BASELINE: True}, skip_if_exists=False)
        if created:
            for seed in self.exp.seed_candidates:
                study.enqueue_trial(
                    {k: encode_choice(v) for k, v in seed.params.items()},
                    user_attrs={R.ATTR_SEED: seed.name},
                    skip_if_exists=False,
                )

    def _controller_alive(self, owner: str) -> bool:
        host, _, rest = owner.partition(":")
        pid = rest.split(":")[0]
        if host != socket.gethostname():
            return True  # another machine's controller: assume it is alive
        return pid.isdigit() and _pid_alive(int(pid))

    def _recover_stale(self, study: optuna.Study) -> int:
        """Trials a dead controller left RUNNING: failed with the reason, then re-queued."""
        n = 0
        storage = study._storage
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.user_attrs.get(ATTR_CONTROLLER, "")
            if owner and self._controller_alive(owner):
                continue  # another live controller's trial (shared storage)
            if (
                not owner
                and t.datetime_start
                and (dt.datetime.now() - t.datetime_start).total_seconds() < 60
            ):
                # ask() makes a trial RUNNING before its asker can tag it with its id: an
                # untagged trial this young is being asked by another controller right now.
                continue
            storage.set_trial_user_attr(t._trial_id, R.ATTR_STATUS, "failed")
            storage.set_trial_user_attr(t._trial_id, R.ATTR_FAILURE_STAGE, "controller")
            storage.set_trial_user_attr(
                t._trial_id,
                R.ATTR_FAILURE_REASON,
                f"the controller ({owner or 'unknown'}) stopped before this trial finished; "
                "re-queued",
            )
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            _requeue(study, t.number, t.params, t.user_attrs)
            n += 1
        return n

    def _start_run(
        self, study: optuna.Study, n_trials: int | None, timeout_s: float | None
    ) -> tuple[int | None, int]:
        """Adopt a run whose controller died, or start a new one; returns (budget, done)."""
        for key, run in sorted(study.user_attrs.items()):
            if not key.startswith(RUN_PREFIX) or run.get("finished"):
                continue
            if run.get("target", self.target.name) != self.target.name:
                continue
            if self._controller_alive(run.get("controller", "")):
                continue
            self._run_id = key.removeprefix(RUN_PREFIX)
            budget = run.get("n_trials")
            done = sum(
                1
                for t in study.get_trials(deepcopy=False)
                if t.user_attrs.get(ATTR_RUN) == self._run_id
                and t.state in (TrialState.COMPLETE, TrialState.FAIL)
                and t.user_attrs.get(R.ATTR_FAILURE_STAGE) != "controller"
            )
            study.set_user_attr(key, {**run, "controller": self.controller_id, "resumed": True})
            self.on_event({"type": "resumed", "run": self._run_id, "done": done, "budget": budget})
            return budget, done
        self._run_id = uuid.uuid4().hex[:8]
        study.set_user_attr(
            RUN_PREFIX + self._run_id,
            {
                "controller": self.controller_id,
                "target": self.target.name,
                "n_trials": n_trials,
                "timeout_s": timeout_s,
                "started": dt.datetime.now(dt.UTC).isoformat(),
                "finished": False,
            },
        )
        return n_trials, 0

    def _finish_run(self, study: optuna.Study, stopped: str) -> None:
        key = RUN_PREFIX + self._run_id
        run = dict(study.user_attrs.get(key, {}))
        run.update(
            {"finished": True, "stopped": stopped, "ended": dt.datetime.now(dt.UTC).isoformat()}
        )
        study.set_user_attr(key, run)

    def _find_baseline(self, study: optuna.Study) -> dict[str, float] | None:
        for t in self._baseline_trials(study, (TrialState.COMPLETE,)):
            names = t.user_attrs.get(R.ATTR_METRIC_NAMES, [])
            return {k: float(t.user_attrs[k]) for k in names}
        return None

    def _baseline_lost(self, study: optuna.Study) -> bool:
        """True when no baseline is complete, running or waiting anywhere: it failed."""
        live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
        return not self._baseline_trials(study, live)

    # ---- tasks -------------------------------------------------------------------------
    def _task(self, number: int, recipe: Recipe) -> TrialTask:
        return TrialTask(
            trial_number=number,
            recipe=recipe.to_dict(),
            workload=self.exp.workload.name,
            workload_options=dict(self.exp.workload.options),
            cache_dir=resolve_root(self.exp.cache_dir),
            latency=self.exp.latency.model_dump(),
            verify=self.exp.verify.model_dump(),
            plugins=list(self.exp.plugins),
            seed=self.exp.sampler.seed or 0,
            sys_path=[os.getcwd(), *sys.path],
            build_threads=self.exp.execution.build_threads,
            device=self.target.device,
        )

    def _ask(self, study: optuna.Study) -> tuple[optuna.Trial, Recipe | None, str]:
        trial = study.ask()  # pops a WAITING trial (the baseline, a re-queued one) first
        set_user_attrs(
            trial,
            {
                ATTR_CONTROLLER: self.controller_id,
                ATTR_RUN: self._run_id,
                R.ATTR_TARGET: self.target.name,
            },
        )
        try:
            if trial.user_attrs.get(R.ATTR_BASELINE):
                if baseline_params(self.exp.space) is not None:
                    suggest(trial, self.exp.space)  # record the enqueued baseline params
                return trial, baseline_recipe(), ""
            params = suggest(trial, self.exp.space)
            return trial, recipe_from_params(params, self.exp.space, self._overrides(trial)), ""
        except ConfigError as e:
            return trial, None, str(e)

    def _overrides(self, trial: optuna.Trial | optuna.trial.FrozenTrial) -> dict[str, Any]:
        """The values a trial sets for parameters the space fixes (a seed's, a recombination's)."""
        seed = self._seeds.get(trial.user_attrs.get(R.ATTR_SEED, ""))
        if seed is not None:
            space = self.exp.space.parameters
            return {
                k: v for k, v in seed.params.items() if k in space and space[k].kind == "fixed"
            }
        return dict(trial.user_attrs.get(R.ATTR_FIXED, {}))

    def _recombine(self, study: optuna.Study) -> None:
        """Queue the front's models with the front's post-training settings (see
        :mod:`autoopt.search.recombine`); Optuna hands queued trials out before sampling."""
        per_model = self.exp.sampler.recombine
        if per_model <= 0:
            return
        t0 = time.perf_counter()
        # A baseline with no parameters (the space cannot express it) has no model part.
        expressible = baseline_params(self.exp.space) is not None
        points, tried = [], []
        for t in study.get_trials(deepcopy=False):
            fixed = self._overrides(t)
            if t.state == TrialState.COMPLETE:
                if t.user_attrs.get(R.ATTR_BASELINE) and not expressible:
                    continue
                points.append(
                    recombine.Point(
                        t.number,
                        t.params,
                        float(t.user_attrs["accuracy"]),
                        float(t.user_attrs["latency_p50_ms"]),
                        fixed,
                    )
                )
            else:
                params = t.params or t.system_attrs.get("fixed_params", {})
                tried.append({**params, **fixed})
        for r in recombine.recombinations(points, per_model, tried):
            study.enqueue_trial(
                r.params,
                user_attrs={
                    R.ATTR_RECOMBINED: {
                        "model_from": r.model_from,
                        "settings_from": r.settings_from,
                    },
                    R.ATTR_FIXED: r.fixed,
                },
            )
            self.on_event(
                {
                    "type": "recombined",
                    "model_from": r.model_from,
                    "settings_from": r.settings_from,
                }
            )
        self._overhead += time.perf_counter() - t0

    def _precheck(self, recipe: Recipe) -> str:
        """Refuse here what this host's checks refuse, without a Ray round trip (workers
        check again on their own hardware)."""
        from autoopt import hardware
        from autoopt.pipeline import check_recipe
        from autoopt.techniques._base import Context

        if self.target.resources or self.target.labels or self.ray_address:
            return ""  # the target's hardware may differ from the controller's
        try:
            check_recipe(
                recipe,
                Context(self._workload, recipe, hardware.current(), device=self.target.device),
            )
        except CandidateError as e:
            return str(e)
        return ""

    # ---- telling -----------------------------------------------------------------------
    def _fail(
        self,
        study: optuna.Study,
        item: _InFlight | optuna.Trial,
        stage: str,
        reason: str,
        status: str = "failed",
        recipe: Recipe | None = None,
    ) -> None:
        t0 = time.perf_counter()
        trial = item.trial if isinstance(item, _InFlight) else item
        recipe = item.recipe if isinstance(item, _InFlight) else recipe
        attrs: dict[str, Any] = {}
        if recipe is not None:
            attrs[R.ATTR_RECIPE] = recipe.to_dict()
            attrs[R.ATTR_RECIPE_STR] = recipe.describe()
        if isinstance(item, _InFlight):
            attrs["retries"] = item.attempts
            if item.built:
                attrs[R.ATTR_STAGES] = item.built.get("events", [])
        attrs[R.ATTR_STATUS] = status
        attrs[R.ATTR_FAILURE_STAGE] = stage
        attrs[R.ATTR_FAILURE_REASON] = reason[:2000]
        set_user_attrs(trial, attrs)
        # A refused candidate is told as PRUNED, not FAIL: TPE ignores failed trials but counts
        # pruned ones among the bad, so it learns to stop proposing what this host refuses.
        study.tell(trial, state=TrialState.PRUNED if status == "rejected" else TrialState.FAIL)
        self._overhead += time.perf_counter() - t0
        self._counts["rejected" if status == "rejected" else "failed"] += 1
        self.on_event(
            {
                "type": status,
                "trial": trial.number,
                "stage": stage,
                "reason": reason,
                "recipe": recipe.describe() if recipe else "",
            }
        )

    def _complete(self, study: optuna.Study, item: _InFlight, result: dict[str, Any]) -> None:
        trial, metrics = item.trial, dict(result["metrics"])
        is_baseline = bool(trial.user_attrs.get(R.ATTR_BASELINE))
        if is_baseline and self._baseline is None:
            self._baseline = dict(metrics)
        if self._baseline is None:
            # The baseline is still being measured (here or by another controller): every
            # ratio and the constraint need it, so hold this result until it is known.
            self._pending.append((item, result))
            return
        t0 = time.perf_counter()
        base = self._baseline
        # A paired timing's ratio was taken under one load; trial 0's was minutes earlier.
        metrics["speedup"] = metrics.get(
            "paired_speedup", base["latency_p50_ms"] / metrics["latency_p50_ms"]
        )
        metrics["size_ratio"] = base["size_mb"] / metrics["size_mb"]
        drop = base["accuracy"] - metrics["accuracy"]
        if self.exp.constraint.mode == "relative":
            drop = drop / base["accuracy"] if base["accuracy"] else drop
        metrics["accuracy_drop"] = drop
        built = item.built or {}
        set_user_attrs(
            trial,
            {
                **metrics,
                R.ATTR_METRIC_NAMES: sorted(metrics),
                R.ATTR_RECIPE: item.recipe.to_dict(),
                R.ATTR_RECIPE_STR: item.recipe.describe(),
                R.ATTR_STATUS: "complete",
                R.ATTR_STAGES: built.get("events", []),
                R.ATTR_ARTIFACT: built.get("key", ""),
                R.ATTR_RUNNER: result.get("runner", {}),
                R.ATTR_HARDWARE: result.get("hardware", {}),
                R.ATTR_NODE: result.get("node_id", ""),
                "build_s": built.get("seconds", 0.0),
                "measure_s": result.get("seconds", 0.0),
                "build_threads": built.get("threads", 1),
                "retries": item.attempts,
            },
        )
        trial.set_constraint(R.CONSTRAINT_KEY, drop - self.exp.constraint.max_drop)
        values = [metrics[o] for o in self.exp.objectives]
        study.tell(trial, values)
        self._measured.setdefault(
            _recipe_key(item.recipe), _Measured(trial.number, trial.user_attrs, values)
        )
        self._overhead += time.perf_counter() - t0
        self._counts["complete"] += 1
        self._recombine(study)
        self.on_event(
            {
                "type": "complete",
                "trial": trial.number,
                "recipe": item.recipe.describe(),
                "accuracy": metrics["accuracy"],
                "latency_p50_ms": metrics["latency_p50_ms"],
                "speedup": metrics["speedup"],
                "feasible": drop <= self.exp.constraint.max_drop,
                "baseline": is_baseline,
            }
        )

    def _tell_duplicate(
        self, study: optuna.Study, trial: optuna.Trial, recipe: Recipe, prior: _Measured
    ) -> None:
        """A candidate this study has measured already: told that measurement, not rebuilt.

        TPE proposes the same point of a categorical space again and again; re-measuring it
        would spend minutes to learn what the study already records (Optuna's FAQ does the
        same). The trial counts toward the budget and says which trial it repeats.
        """
        own = {ATTR_CONTROLLER, ATTR_RUN, R.ATTR_TARGET, R.ATTR_BASELINE, R.ATTR_SEED}
        attrs = {k: v for k, v in prior.user_attrs.items() if k not in own}
        attrs.update(
            {
                R.ATTR_DUPLICATE_OF: prior.number,
                R.ATTR_STAGES: [],
                "build_s": 0.0,
                "measure_s": 0.0,
            }
        )
        set_user_attrs(trial, attrs)
        drop = float(prior.user_attrs["accuracy_drop"])
        trial.set_constraint(R.CONSTRAINT_KEY, drop - self.exp.constraint.max_drop)
        study.tell(trial, prior.values)
        self._counts["complete"] += 1
        self._counts["duplicate"] += 1
        self.on_event(
            {
                "type": "duplicate",
                "trial": trial.number,
                "of": prior.number,
                "recipe": recipe.describe(),
            }
        )

    def _record_build(self, built: dict[str, Any]) -> None:
        for e in built.get("events", []):
            if e["hit"]:
                self._hits += 1
                self._saved += e["saved_seconds"]
            else:
                self._builds += 1

    # ---- the loop ----------------------------------------------------------------------
    def run(self, n_trials: int | None = None, timeout_s: float | None = None) -> RunSummary:
        import ray

        n_trials = n_trials if n_trials is not None else self.exp.budget.n_trials
        timeout_s = timeout_s if timeout_s is not None else self.exp.budget.timeout_s
        if n_trials is None and timeout_s is None:
            raise ConfigError("give a trial budget (--n-trials) or a time budget (--timeout)")
        start = time.monotonic()
        from autoopt.workloads import load_workload

        # Loaded here first so a workload that trains its teacher does it once, not per worker.
        self._workload = load_workload(self.exp.workload.name, self.exp.workload.options)
        ensure_ray(num_cpus=max(self.workers, os.cpu_count() or 1), address=self.ray_address)
        check_targets([self.target], self.exp.task_cpus)
        study = self._open_study(n_trials)
        stale = self._recover_stale(study)
        if stale:
            self.on_event({"type": "recovered", "count": stale})
        n_trials, started = self._start_run(study, n_trials, timeout_s)
        resumed = started > 0 or bool(
            study.user_attrs.get(RUN_PREFIX + self._run_id, {}).get("resumed")
        )
        executor = RayExecutor(
            self.target, self.exp.latency.threads, self.exp.execution.build_threads
        )
        self._baseline = self._find_baseline(study)
        self._measured = {}
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.user_attrs.get(R.ATTR_RECIPE) and R.ATTR_DUPLICATE_OF not in t.user_attrs:
                # The first measurement of a candidate is the one repeats point to.
                self._measured.setdefault(
                    _recipe_key(t.user_attrs[R.ATTR_RECIPE]), _Measured.of(t)
                )

        inflight: dict[Any, _InFlight] = {}
        run_started = started
        refused = 0
        max_refused = max(20, 3 * (n_trials or 20))
        stopped = "budget"
        exhausted = False

        def out_of_time() -> bool:
            return timeout_s is not None and time.monotonic() - start >= timeout_s

        def budget_left() -> bool:
            if n_trials is not None and started >= n_trials:
                return False
            return not out_of_time() and not exhausted

        def launch() -> None:
            nonlocal started, exhausted, refused
            t0 = time.perf_counter()
            trial, recipe, error = self._ask(study)
            if recipe is not None and not error:
                error = self._precheck(recipe)
            if error:
                # Refused before anything ran: recorded, but not counted against the budget
                # (a bounded number of them), so N trials means N candidates really tried.
                self._fail(study, trial, "check", error, status="rejected", recipe=recipe)
                refused += 1
                if refused > max_refused:
                    exhausted = True
                    self.warnings.append(
                        f"stopped after {refused} refused candidates: the space mostly "
                        "declares combinations this host cannot run (see the reasons)"
                    )
                self._overhead += time.perf_counter() - t0
                return
            assert recipe is not None  # noqa: S101 - no error means a recipe
            started += 1
            prior = None if _fixed(trial) else self._measured.get(_recipe_key(recipe))
            if prior is not None:
                self._tell_duplicate(study, trial, recipe, prior)
            else:
                task = self._task(trial.number, recipe)
                ref = executor.submit_build(task)
                inflight[ref] = _InFlight(trial, recipe, task, ref, "build", time.monotonic())
                self.on_event(
                    {"type": "start", "trial": trial.number, "recipe": recipe.describe()}
                )
            if self.exp.sampler.name == "grid" and _grid_exhausted(study):
                exhausted = True
            self._overhead += time.perf_counter() - t0

        try:
            while True:
                if self.stop_requested.is_set():
                    raise KeyboardInterrupt
                if self._baseline is None:
                    self._baseline = self._find_baseline(study)
                if self._baseline is not None and self._pending:
                    for item, result in self._pending:
                        self._complete(study, item, result)
                    self._pending.clear()
                while len(inflight) < self.workers and budget_left():
                    launch()
                if not inflight:
                    if self._pending and self._baseline is None and not self._baseline_lost(study):
                        time.sleep(0.5)  # another controller is still measuring the baseline
                        continue
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
                for ref in ready:
                    self._handle(study, executor, inflight, inflight.pop(ref), ref)
                self._enforce_timeouts(study, executor, inflight)
                if self._baseline is None and self._baseline_lost(study):
                    self._cancel_all(study, executor, inflight, "cancelled: the baseline failed")
                    raise AutoOptError(
                        "the baseline (unoptimized teacher) failed, so no candidate can be "
                        f"judged against it: {_last_failure(study)}"
                    )
                if out_of_time() and self.exp.budget.at_timeout == "cancel":
                    self._cancel_all(
                        study,
                        executor,
                        inflight,
                        f"cancelled at the run's time budget of {timeout_s:g}s; queued again "
                        "for the study's next run",
                        requeue=True,
                    )
        except KeyboardInterrupt:
            stopped = "interrupted"
            self._cancel_all(study, executor, inflight, "interrupted by the user (Ctrl-C)")
        for item, _ in self._pending:
            self._fail(study, item, "tell", "no baseline was measured to judge this trial against")
        self._pending.clear()
        if timeout_s is not None and time.monotonic() - start >= timeout_s and stopped == "budget":
            stopped = "timeout"
        self._finish_run(study, stopped)
        record = R.study_record(study, self.storage_url)
        told = self._counts["complete"] + self._counts["failed"]
        return RunSummary(
            study_name=self.study_name,
            storage=self.storage_url,
            trials_run=started - run_started + refused,
            completed=self._counts["complete"],
            failed=self._counts["failed"],
            rejected=self._counts["rejected"],
            elapsed_s=time.monotonic() - start,
            cache_hits=self._hits,
            cache_builds=self._builds,
            cache_saved_s=self._saved,
            stopped=stopped,
            target=self.target.name,
            run_id=self._run_id,
            resumed=resumed,
            front=record.front(),
            baseline=record.baseline,
            study=record,
            warnings=self.warnings,
            controller_overhead_s=self._overhead / max(1, told + self._counts["rejected"]),
            duplicates=self._counts["duplicate"],
        )

    def _handle(
        self,
        study: optuna.Study,
        executor: RayExecutor,
        inflight: dict[Any, _InFlight],
        item: _InFlight,
        ref: Any,
    ) -> None:
        import ray

        try:
            result = ray.get(ref)
        except (
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.ObjectLostError,
            ray.exceptions.OutOfMemoryError,
        ) as e:
            if item.attempts < self.exp.execution.max_retries:
                item.attempts += 1
                log.warning(
                    "trial %d: worker lost (%s); retrying", item.trial.number, type(e).__name__
                )
                self._resubmit(executor, inflight, item)
                return
            self._fail(
                study,
                item,
                item.phase,
                f"worker lost {item.attempts + 1} times: {type(e).__name__}: {e}",
            )
            return
        except ray.exceptions.TaskCancelledError:
            self._fail(study, item, item.phase, "task cancelled")
            return
        except ray.exceptions.RayError as e:
            self._fail(study, item, item.phase, f"{type(e).__name__}: {e}")
            return
        if "error" in result:
            err = result["error"]
            if item.phase == "build" or item.built is None:
                item.built = None
            self._fail(
                study,
                item,
                err["stage"],
                err["reason"],
                status="rejected" if err["rejected"] else "failed",
            )
            return
        if item.phase == "build":
            item.built = result
            self._record_build(result)
            item.phase, item.started = "measure", time.monotonic()
            new_ref = executor.submit_measure(item.task, result)
            item.ref = new_ref
            inflight[new_ref] = item
            return
        self._complete(study, item, result)

    def _resubmit(
        self, executor: RayExecutor, inflight: dict[Any, _InFlight], item: _InFlight
    ) -> None:
        if item.phase == "build" or item.built is None:
            item.ref = executor.submit_build(item.task)
        else:
            item.ref = executor.submit_measure(item.task, item.built)
        item.started = time.monotonic()
        inflight[item.ref] = item

    def _cancel_all(
        self,
        study: optuna.Study,
        executor: RayExecutor,
        inflight: dict[Any, _InFlight],
        reason: str,
        *,
        requeue: bool = False,
    ) -> None:
        for ref, item in list(inflight.items()):
            executor.cancel(ref)
            self._fail(study, item, item.phase, reason)
            if requeue:
                t = item.trial
                _requeue(study, t.number, t.params, t.user_attrs)
        inflight.clear()

    def _enforce_timeouts(
        self, study: optuna.Study, executor: RayExecutor, inflight: dict[Any, _InFlight]
    ) -> None:
        limit = self.exp.execution.trial_timeout_s
        now = time.monotonic()
        for ref, item in list(inflight.items()):
            if now - item.started > limit:
                executor.cancel(ref)
                del inflight[ref]
                self._fail(
                    study,
                    item,
                    item.phase,
                    f"{item.phase} exceeded the per-trial timeout of {limit:g}s and was cancelled",
                )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()


def _requeue(
    study: optuna.Study, number: int, params: dict[str, Any], user_attrs: dict[str, Any]
) -> None:
    """Queue a trial that was stopped before its result again, as what it was (baseline,
    seed, recombination, its run)."""
    kept = (R.ATTR_BASELINE, R.ATTR_SEED, R.ATTR_RECOMBINED, R.ATTR_FIXED, ATTR_RUN)
    attrs: dict[str, Any] = {
        R.ATTR_REQUEUED_FROM: number,
        **{k: user_attrs[k] for k in kept if user_attrs.get(k)},
    }
    study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)


def _grid_exhausted(study: optuna.Study) -> bool:
    sampler = study.sampler
    return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)


def _last_failure(study: optuna.Study) -> str:
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    if not failed:
        return "unknown reason"
    attrs = failed[-1].user_attrs
    return f"[{attrs.get(R.ATTR_FAILURE_STAGE, '?')}] {attrs.get(R.ATTR_FAILURE_REASON, '?')}"
