"""The run ledger: a study's creation, its runs, resuming them, and what each trial built with.

Kept entirely in the study database, so that any controller can pick a study up: the creator
enqueues the baseline (trial 0) and the seed candidates; each invocation is a *run* (study
attribute ``run:<id>`` with its budget); a run whose controller died is adopted by the next
invocation, which fails and re-queues the trials it left RUNNING and counts the trials the run
already finished against its budget. Each run also records a *snapshot* of what its trials are
built with (experiment, space, plugins, workload options: ``snapshot:<digest>``), named by
every trial it tells, so that export rebuilds a trial as it was measured even after the
experiment file changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from autoopt.cache import resolve_root
from autoopt.config._space import encode_choice
from autoopt.errors import ConfigError
from autoopt.quiet import logger_level
from autoopt.resolve import baseline_params
from autoopt.search.sampling import make_sampler
from autoopt.study import schema as S
from autoopt.study.recorder import requeue
from autoopt.study.storage import open_storage

if TYPE_CHECKING:
    from autoopt.artifacts import ArtifactKind
    from autoopt.config import Experiment, Target
    from autoopt.study.recorder import TrialRecorder

#: An untagged RUNNING trial younger than this is being asked by another controller now.
_ASKING_GRACE_S = 60.0


@dataclass(frozen=True)
class RunState:
    run_id: str
    #: The run's trial budget (None: time budget only) and the trials it already finished.
    budget: int | None
    done: int
    resumed: bool


def counts_toward_budget(t: optuna.trial.FrozenTrial, distinct: bool) -> bool:
    """Whether a finished trial took a slot of its run's trial budget: a candidate measured,
    failed while built or measured (or a repeat of one that did), or stopped early (a slice
    below the floor, a rung); not
    one refused before it ran, nor one a dead controller left, nor (with ``distinct``) a
    repeat of a measured candidate."""
    attrs = t.user_attrs
    if attrs.get(S.ATTR_DUPLICATE_OF) is not None and distinct:
        return False
    if t.state == TrialState.COMPLETE:
        return True
    if t.state == TrialState.FAIL:
        # Not a trial a dead controller left, nor a proposal of a candidate in flight.
        return attrs.get(S.ATTR_FAILURE_STAGE) not in ("controller", "propose")
    if t.state == TrialState.PRUNED:
        # Stopped early, or a repeat of a failed candidate (told PRUNED to steer the sampler).
        return attrs.get(S.ATTR_STATUS) in (*S.JUDGED_EARLY, "failed")
    return False


def controller_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def controller_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid = rest.split(":")[0]
    if host != socket.gethostname():
        return True  # another machine's controller: assume it is alive
    return pid.isdigit() and _pid_alive(int(pid))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()


class RunLedger:
    def __init__(
        self,
        exp: Experiment,
        target: Target,
        storage_url: str,
        study_name: str,
        owner: str,
    ) -> None:
        self.exp = exp
        self.target = target
        self.storage_url = storage_url
        self.study_name = study_name
        self.owner = owner
        #: Whether :meth:`open` created the study (False: it continues an existing one).
        self.created = False

    # ---- the study ------------------------------------------------------------------------
    def open(
        self,
        n_trials: int | None,
        workload_version: str,
        metric_name: str,
        teacher_kind: ArtifactKind = "torch",
    ) -> optuna.Study:
        """Create the study (recording what it measures and queueing the baseline for a
        teacher of ``teacher_kind``), or load it after checking that this experiment may
        continue it."""
        storage = open_storage(self.storage_url, create=True)
        self.sampler_config = self.exp.sampler
        sampler = make_sampler(self.exp.sampler, self.exp.space, n_trials)
        try:
            # Optuna logs "A new study created in RDB" at INFO; the run reports it itself.
            with logger_level("optuna", logging.WARNING):
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
        self.created = created
        self._reseed(study, n_trials)
        self._check_continuable(study, workload_version)
        if created or not study.user_attrs.get(S.STUDY_OBJECTIVES):
            study.set_user_attr(S.STUDY_OBJECTIVES, list(self.exp.objectives))
            study.set_user_attr(S.STUDY_WORKLOAD, self.exp.workload.name)
            study.set_user_attr(S.STUDY_WORKLOAD_VERSION, workload_version)
            study.set_user_attr(S.STUDY_CONSTRAINT, self.exp.constraint.model_dump())
            study.set_user_attr(S.STUDY_TARGET, self.target.model_dump())
        study.set_user_attr(S.STUDY_METRIC, metric_name)
        study.set_user_attr(S.STUDY_EXPERIMENT, self.exp.model_dump(mode="json"))
        study.set_user_attr(S.STUDY_CACHE_DIR, resolve_root(self.exp.cache_dir))
        self._ensure_baseline_queued(study, created, teacher_kind)
        return study

    def _reseed(self, study: optuna.Study, n_trials: int | None) -> None:
        """A later run must not replay the first run's proposals, nor two controllers sharing
        the study each other's: offset the seed by the runs so far, plus a salt when another
        controller is running now."""
        runs = [v for k, v in study.user_attrs.items() if k.startswith(S.STUDY_RUN_PREFIX)]
        if not runs:
            return
        live = any(
            not r.get("finished") and controller_alive(r.get("controller", "")) for r in runs
        )
        seed = (self.exp.sampler.seed or 0) + len(runs)
        if live:
            seed += uuid.uuid4().int % 100_000
        self.sampler_config = self.exp.sampler.model_copy(update={"seed": seed})
        study.sampler = make_sampler(self.sampler_config, self.exp.space, n_trials)

    def after_queue(self, study: optuna.Study, n_trials: int | None) -> None:
        """Make the sampler's random start-up follow the trials queued now (baseline, seeds,
        starting points), rather than count them."""
        queued = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        if queued:
            study.sampler = make_sampler(self.sampler_config, self.exp.space, n_trials, queued)

    def _check_continuable(self, study: optuna.Study, workload_version: str) -> None:
        existing = study.user_attrs.get(S.STUDY_OBJECTIVES)
        source = self.exp.source
        if existing and list(existing) != list(self.exp.objectives):
            raise ConfigError(
                f"{source}: objectives: study '{self.study_name}' in {self.storage_url} was "
                f"created with objectives {existing}, got {self.exp.objectives}; pass "
                "--study NEW_NAME to start a new study"
            )
        recorded = {
            "workload": study.user_attrs.get(S.STUDY_WORKLOAD),
            "version": study.user_attrs.get(S.STUDY_WORKLOAD_VERSION),
        }
        current = {"workload": self.exp.workload.name, "version": workload_version}
        if existing and recorded["version"] and recorded != current:
            # Its trials were scored against another teacher or other data: one front cannot
            # mix them.
            raise ConfigError(
                f"{source}: workload: study '{self.study_name}' in {self.storage_url} was "
                f"measured with workload '{recorded['workload']}' version "
                f"{recorded['version']}, this experiment's is '{current['workload']}' version "
                f"{current['version']} (its options, data or weights differ); pass "
                "--study NEW_NAME to start a new study"
            )

    def baseline_trials(self, study: optuna.Study, states: tuple[TrialState, ...]) -> list[Any]:
        return [
            t
            for t in study.get_trials(deepcopy=False, states=states)
            if t.user_attrs.get(S.ATTR_BASELINE)
        ]

    def baseline_lost(self, study: optuna.Study) -> bool:
        """True when no baseline is complete, running or waiting anywhere: it failed."""
        live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
        return not self.baseline_trials(study, live)

    def _ensure_baseline_queued(
        self, study: optuna.Study, created: bool, teacher_kind: ArtifactKind = "torch"
    ) -> None:
        """The baseline is enqueued once, by whoever created the study (or finds none)."""
        live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
        if not created:
            # Another controller may have just created the study: give it a moment to
            # enqueue the baseline rather than enqueueing a second one.
            deadline = time.monotonic() + 10.0
            while not study.get_trials(deepcopy=False) and time.monotonic() < deadline:
                time.sleep(0.25)
            if self.baseline_trials(study, live):
                return
        params = baseline_params(self.exp.space, teacher_kind) or {}
        study.enqueue_trial(params, user_attrs={S.ATTR_BASELINE: True}, skip_if_exists=False)
        if created:
            for seed in self.exp.seed_candidates:
                study.enqueue_trial(
                    {k: encode_choice(v) for k, v in seed.params.items()},
                    user_attrs={S.ATTR_SEED: seed.name},
                    skip_if_exists=False,
                )

    # ---- runs -----------------------------------------------------------------------------
    def recover_stale(self, study: optuna.Study, recorder: TrialRecorder) -> int:
        """Trials a dead controller left RUNNING: failed with the reason, then re-queued."""
        n = 0
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.user_attrs.get(S.ATTR_CONTROLLER, "")
            if owner and controller_alive(owner):
                continue  # another live controller's trial (shared storage)
            if (
                not owner
                and t.datetime_start
                and (dt.datetime.now() - t.datetime_start).total_seconds() < _ASKING_GRACE_S
            ):
                # ask() makes a trial RUNNING before its asker can tag it with its id: an
                # untagged trial this young is being asked by another controller right now.
                continue
            recorder.fail_stale(
                t,
                f"the controller ({owner or 'unknown'}) stopped before this trial finished; "
                "re-queued",
            )
            requeue(study, t.number, t.params, t.user_attrs)
            n += 1
        return n

    def start(
        self, study: optuna.Study, n_trials: int | None, timeout_s: float | None
    ) -> RunState:
        """Adopt a run whose controller died, or start a new one."""
        for key, run in sorted(study.user_attrs.items()):
            if not key.startswith(S.STUDY_RUN_PREFIX) or run.get("finished"):
                continue
            if run.get("target", self.target.name) != self.target.name:
                continue
            if controller_alive(run.get("controller", "")):
                continue
            run_id = key.removeprefix(S.STUDY_RUN_PREFIX)
            distinct = self.exp.sampler.distinct
            done = sum(
                1
                for t in study.get_trials(deepcopy=False)
                if t.user_attrs.get(S.ATTR_RUN) == run_id and counts_toward_budget(t, distinct)
            )
            study.set_user_attr(key, {**run, "controller": self.owner, "resumed": True})
            return RunState(run_id, run.get("n_trials"), done, resumed=True)
        run_id = uuid.uuid4().hex[:8]
        study.set_user_attr(
            S.STUDY_RUN_PREFIX + run_id,
            {
                "controller": self.owner,
                "target": self.target.name,
                "n_trials": n_trials,
                "timeout_s": timeout_s,
                "started": dt.datetime.now(dt.UTC).isoformat(),
                "finished": False,
            },
        )
        return RunState(run_id, n_trials, 0, resumed=False)

    def finish(self, study: optuna.Study, run_id: str, stopped: str) -> None:
        key = S.STUDY_RUN_PREFIX + run_id
        run = dict(study.user_attrs.get(key, {}))
        run.update(
            {"finished": True, "stopped": stopped, "ended": dt.datetime.now(dt.UTC).isoformat()}
        )
        study.set_user_attr(key, run)

    def study_event(self, study: optuna.Study) -> dict[str, Any]:
        """Whether this run starts the study or continues one, and what it holds already: a
        second run of the same command adds to the first one's study."""
        done = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
        trials = study.get_trials(deepcopy=False, states=done)
        return {
            "type": "study",
            "created": self.created,
            "storage": self.storage_url,
            "trials": len(trials),
            "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        }

    def snapshot_content(self) -> dict[str, Any]:
        """What this run builds with: enough for export to rebuild any of its trials."""
        return {
            "experiment": self.exp.model_dump(mode="json"),
            "cache_dir": resolve_root(self.exp.cache_dir),
            "device": self.target.device,
            "sys_path": [os.getcwd()],
        }

    def record_snapshot(self, study: optuna.Study, snapshot: dict[str, Any]) -> str:
        """Store what this run's trials are built with, once per distinct content; returns
        the digest its trials record."""
        blob = json.dumps(snapshot, sort_keys=True, default=str)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
        key = S.STUDY_SNAPSHOT_PREFIX + digest
        if key not in study.user_attrs:
            study.set_user_attr(key, snapshot)
        return digest
