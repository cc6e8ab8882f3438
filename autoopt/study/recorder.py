"""The one writer of trial outcomes: what the controller tells the study, in the schema's terms.

Every outcome goes through here: a measured trial (its measured metrics, the values derived
from them and the baseline's, the accuracy constraint, the objectives' values), a failed or
refused one (with the stage and the reason), and a repeat of a measured or failed candidate
(told that measurement, or that failure). The attributes are written in one statement
(:func:`set_user_attrs`) before the tell, so a reader never sees a told trial without its
record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from autoopt.study import schema as S
from autoopt.study.storage import set_user_attrs

if TYPE_CHECKING:
    from autoopt.config import AccuracyConstraint
    from autoopt.recipe import Recipe
    from autoopt.study.records import TrialRecord

#: Longest failure reason kept (a traceback's first lines are what matters).
MAX_REASON = 2000


@dataclass(frozen=True)
class Outcome:
    """What a build and a measurement returned for one trial."""

    metrics: Mapping[str, float]
    runner: Mapping[str, Any] = field(default_factory=dict)
    hardware: Mapping[str, Any] = field(default_factory=dict)
    node_id: str = ""
    stages: Sequence[Mapping[str, Any]] = ()
    artifact_key: str = ""
    build_s: float = 0.0
    measure_s: float = 0.0
    build_threads: int = 1


class TrialRecorder:
    def __init__(
        self, study: optuna.Study, constraint: AccuracyConstraint, objectives: Sequence[str]
    ) -> None:
        self.study = study
        self.constraint = constraint
        self.objectives = list(objectives)

    def claim(self, trial: optuna.Trial, *, controller: str, run: str, target: str) -> None:
        set_user_attrs(
            trial, {S.ATTR_CONTROLLER: controller, S.ATTR_RUN: run, S.ATTR_TARGET: target}
        )

    def complete(
        self,
        trial: optuna.Trial,
        recipe: Recipe,
        outcome: Outcome,
        baseline: Mapping[str, float],
        *,
        retries: int = 0,
        snapshot: str = "",
    ) -> optuna.trial.FrozenTrial:
        """Record and tell a measured trial; returns it as told (derived values included)."""
        metrics = dict(outcome.metrics)
        metrics.update(S.derive(metrics, baseline, relative=self.constraint.mode == "relative"))
        set_user_attrs(
            trial,
            {
                **metrics,
                S.ATTR_METRIC_NAMES: sorted(metrics),
                S.ATTR_RECIPE: recipe.to_dict(),
                S.ATTR_RECIPE_STR: recipe.describe(),
                S.ATTR_STATUS: "complete",
                S.ATTR_STAGES: list(outcome.stages),
                S.ATTR_ARTIFACT: outcome.artifact_key,
                S.ATTR_RUNNER: dict(outcome.runner),
                S.ATTR_HARDWARE: dict(outcome.hardware),
                S.ATTR_NODE: outcome.node_id,
                S.ATTR_BUILD_S: outcome.build_s,
                S.ATTR_MEASURE_S: outcome.measure_s,
                S.ATTR_BUILD_THREADS: outcome.build_threads,
                S.ATTR_RETRIES: retries,
                S.ATTR_SNAPSHOT: snapshot,
            },
        )
        return self._tell(trial, metrics)

    def note_rung(
        self, trial: optuna.Trial, rungs: Sequence[Mapping[str, Any]], start: int
    ) -> None:
        """Keep what a trial measured at its rungs so far, and the rung a re-queued copy of
        it starts at (the trial is still running)."""
        set_user_attrs(trial, {S.ATTR_RUNGS: [dict(r) for r in rungs], S.ATTR_RUNG_START: start})

    def stop_early(
        self,
        trial: optuna.Trial,
        recipe: Recipe,
        reason: str,
        rungs: Sequence[Mapping[str, Any]],
        stages: Sequence[Mapping[str, Any]] = (),
    ) -> optuna.trial.FrozenTrial:
        """Tell a trial stopped at a rung, since it could no longer reach the feasible front
        (:mod:`autoopt.search.rungs`): PRUNED, with its rungs' measurements and the reason.
        Its constraint is the last rung's, so samplers that read constraints see it."""
        last = rungs[-1] if rungs else {}
        attrs: dict[str, Any] = {
            S.ATTR_STATUS: "stopped-early",
            S.ATTR_FAILURE_STAGE: "rung",
            S.ATTR_FAILURE_REASON: reason[:MAX_REASON],
            S.ATTR_RUNGS: [dict(r) for r in rungs],
            S.ATTR_RECIPE: recipe.to_dict(),
            S.ATTR_RECIPE_STR: recipe.describe(),
        }
        if stages:
            attrs[S.ATTR_STAGES] = list(stages)
        set_user_attrs(trial, attrs)
        if "accuracy_drop" in last:
            drop = float(last["accuracy_drop"])
            trial.set_constraint(S.CONSTRAINT_KEY, drop - self.constraint.max_drop)
        return self.study.tell(trial, state=TrialState.PRUNED)

    def reject_early(
        self,
        trial: optuna.Trial,
        recipe: Recipe,
        reason: str,
        verdict: Mapping[str, Any],
        baseline: Mapping[str, float],
        stages: Sequence[Mapping[str, Any]] = (),
    ) -> optuna.trial.FrozenTrial:
        """Tell a trial whose first evaluation slice scored clearly below the floor
        (:mod:`autoopt.screening`): PRUNED and infeasible, with the slice's figures."""
        attrs: dict[str, Any] = {
            S.ATTR_STATUS: "rejected-early",
            S.ATTR_FAILURE_STAGE: "score",
            S.ATTR_FAILURE_REASON: reason[:MAX_REASON],
            S.ATTR_SLICE: dict(verdict),
            S.ATTR_RECIPE: recipe.to_dict(),
            S.ATTR_RECIPE_STR: recipe.describe(),
        }
        if stages:
            attrs[S.ATTR_STAGES] = list(stages)
        set_user_attrs(trial, attrs)
        relative = self.constraint.mode == "relative"
        score = {"accuracy": float(verdict["score"])}
        drop = S.derive(score, baseline, relative=relative)["accuracy_drop"]
        trial.set_constraint(S.CONSTRAINT_KEY, drop - self.constraint.max_drop)
        return self.study.tell(trial, state=TrialState.PRUNED)

    def repeat_judged(self, trial: optuna.Trial, prior: TrialRecord) -> None:
        """Tell a trial whose candidate ``prior`` already stopped early (below the floor on
        its slice, or at a rung): the same verdict, for free."""
        keep = (
            S.ATTR_STATUS, S.ATTR_FAILURE_STAGE, S.ATTR_FAILURE_REASON, S.ATTR_SLICE,
            S.ATTR_RUNGS, S.ATTR_RECIPE, S.ATTR_RECIPE_STR,
        )  # fmt: skip
        attrs = {k: prior.user_attrs[k] for k in keep if k in prior.user_attrs}
        set_user_attrs(trial, {**attrs, S.ATTR_DUPLICATE_OF: prior.number, S.ATTR_STAGES: []})
        if prior.constraint is not None:
            trial.set_constraint(S.CONSTRAINT_KEY, prior.constraint)
        self.study.tell(trial, state=TrialState.PRUNED)

    def repeat(self, trial: optuna.Trial, prior: TrialRecord) -> optuna.trial.FrozenTrial:
        """Tell a trial whose candidate ``prior`` measured already: its measurement, reused.

        TPE proposes the same point of a categorical space again and again; re-measuring it
        would spend minutes to learn what the study already records (Optuna's FAQ does the
        same).
        """
        own = {
            S.ATTR_CONTROLLER, S.ATTR_RUN, S.ATTR_TARGET, S.ATTR_BASELINE, S.ATTR_SEED,
            S.ATTR_RECOMBINED, S.ATTR_FIXED, S.ATTR_REQUEUED_FROM, S.ATTR_DERIVED,
            S.ATTR_RUNG_START, S.ATTR_EXPLORED,
        }  # fmt: skip
        attrs = {k: v for k, v in prior.user_attrs.items() if k not in own}
        attrs.update(
            {
                S.ATTR_DUPLICATE_OF: prior.number,
                S.ATTR_STAGES: [],
                S.ATTR_BUILD_S: 0.0,
                S.ATTR_MEASURE_S: 0.0,
            }
        )
        set_user_attrs(trial, attrs)
        return self._tell(trial, prior.metrics)

    def fail(
        self,
        trial: optuna.Trial,
        stage: str,
        reason: str,
        *,
        rejected: bool = False,
        recipe: Recipe | None = None,
        stages: Sequence[Mapping[str, Any]] = (),
        retries: int = 0,
        own: bool = False,
    ) -> optuna.trial.FrozenTrial:
        """Record a failed candidate, or one refused before it ran (``rejected``); ``own``:
        the candidate failed by itself (:attr:`autoopt.execution.Failure.own`). Returns the
        trial as told.

        A refused candidate is told as PRUNED, not FAIL: TPE ignores failed trials but counts
        pruned ones among the bad, so it learns to stop proposing what this host refuses.
        """
        attrs: dict[str, Any] = {
            S.ATTR_STATUS: "rejected" if rejected else "failed",
            S.ATTR_FAILURE_STAGE: stage,
            S.ATTR_FAILURE_REASON: reason[:MAX_REASON],
            S.ATTR_RETRIES: retries,
        }
        if own and not rejected:
            attrs[S.ATTR_FAILURE_OWN] = True
        if recipe is not None:
            attrs[S.ATTR_RECIPE] = recipe.to_dict()
            attrs[S.ATTR_RECIPE_STR] = recipe.describe()
        if stages:
            attrs[S.ATTR_STAGES] = list(stages)
        set_user_attrs(trial, attrs)
        return self.study.tell(trial, state=TrialState.PRUNED if rejected else TrialState.FAIL)

    def repeat_failure(
        self, trial: optuna.Trial, prior: TrialRecord, recipe: Recipe
    ) -> optuna.trial.FrozenTrial:
        """Tell a trial whose candidate ``prior`` built already and saw fail by itself: that
        failure, not a rebuild.

        Told PRUNED with the accuracy constraint violated as if the candidate kept none of the
        accuracy: TPE ignores FAIL trials (it kept proposing a failed recipe again and
        again), and ranks an infeasible trial after every feasible and pruned one, so it
        steers away from this point (tests/unit/test_failed_repeats.py measures it).
        """
        set_user_attrs(
            trial,
            {
                S.ATTR_STATUS: "failed",
                S.ATTR_FAILURE_STAGE: prior.failure_stage,
                S.ATTR_FAILURE_REASON: prior.failure_reason,
                S.ATTR_FAILURE_OWN: True,
                S.ATTR_RECIPE: recipe.to_dict(),
                S.ATTR_RECIPE_STR: recipe.describe(),
                S.ATTR_DUPLICATE_OF: prior.number,
                S.ATTR_STAGES: [],
            },
        )
        trial.set_constraint(S.CONSTRAINT_KEY, 1.0 - self.constraint.max_drop)
        return self.study.tell(trial, state=TrialState.PRUNED)

    def fail_stale(self, trial: optuna.trial.FrozenTrial, reason: str) -> None:
        """Fail a trial another (dead) controller left RUNNING, through the storage."""
        storage = self.study._storage
        for key, value in {
            S.ATTR_STATUS: "failed",
            S.ATTR_FAILURE_STAGE: "controller",
            S.ATTR_FAILURE_REASON: reason,
        }.items():
            storage.set_trial_user_attr(trial._trial_id, key, value)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)

    def _tell(self, trial: optuna.Trial, metrics: Mapping[str, float]) -> optuna.trial.FrozenTrial:
        drop = float(metrics["accuracy_drop"])
        trial.set_constraint(S.CONSTRAINT_KEY, drop - self.constraint.max_drop)
        return self.study.tell(trial, [metrics[o] for o in self.objectives])

    def feasible(self, metrics: Mapping[str, float]) -> bool:
        return float(metrics["accuracy_drop"]) <= self.constraint.max_drop


def requeue(
    study: optuna.Study, number: int, params: Mapping[str, Any], user_attrs: Mapping[str, Any]
) -> None:
    """Queue a trial that was stopped before its result again, as what it was (baseline,
    seed, recombination, its run)."""
    kept = (
        S.ATTR_BASELINE, S.ATTR_SEED, S.ATTR_RECOMBINED, S.ATTR_FIXED, S.ATTR_RUN,
        S.ATTR_DERIVED, S.ATTR_RUNG_START, S.ATTR_EXPLORED,
    )  # fmt: skip
    attrs: dict[str, Any] = {
        S.ATTR_REQUEUED_FROM: number,
        **{k: user_attrs[k] for k in kept if user_attrs.get(k)},
    }
    study.enqueue_trial(dict(params), user_attrs=attrs, skip_if_exists=False)
