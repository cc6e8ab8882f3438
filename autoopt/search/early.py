"""Stopping a candidate before its full measurement: the task at its current rung, the rung
rule's verdict (:mod:`autoopt.search.rungs`), and a first evaluation slice below the floor
(:mod:`autoopt.screening`). Functions of the controller, whose study they tell."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

import optuna

from autoopt.execution import Finished, TrialTask
from autoopt.search import rungs
from autoopt.search.points import recipe_key
from autoopt.study import schema as S
from autoopt.study.records import trial_record

if TYPE_CHECKING:
    from autoopt.config import Experiment
    from autoopt.recipe import Recipe
    from autoopt.search.candidates import Candidates
    from autoopt.search.proposals import Asked, Proposals
    from autoopt.search.summary import Tally
    from autoopt.study.recorder import TrialRecorder


class Controller(Protocol):
    """What these functions use of the controller (:class:`.controller.Controller`)."""

    exp: Experiment
    baseline: dict[str, float] | None
    asked: dict[int, Asked]
    candidates: Candidates
    tally: Tally
    overhead: float
    plans: dict[int, rungs.RungPlan]
    proposals: Proposals
    recorder: TrialRecorder
    workload: Any

    def on_event(self, event: dict[str, Any]) -> None: ...
    def flush_held(self, recipe: Recipe) -> None: ...
    def record_build(self, built: dict[str, Any]) -> None: ...


def task_for(c: Controller, asked: Asked) -> TrialTask:
    """The task that builds and measures ``asked`` at its current rung, with the floor
    its first evaluation slice is screened against."""
    number = asked.trial.number
    # The baseline and the experiment's own seed candidates are measured in full: every
    # ratio needs the one, and the user asked for the others by name.
    in_full = asked.is_baseline or bool(asked.trial.user_attrs.get(S.ATTR_SEED))
    plan = c.plans.get(number)
    if plan is None:
        shares = (1.0,)
        if not in_full:
            shares = rungs.schedule(rungs.training_steps(asked.recipe), c.exp.sampler.rungs)
        start = int(asked.trial.user_attrs.get(S.ATTR_RUNG_START, 0) or 0)
        plan = c.plans[number] = rungs.RungPlan(shares, min(start, len(shares) - 1))
    floor = None
    if c.baseline is not None and not in_full:
        floor = c.exp.constraint.floor(float(c.baseline["accuracy"]))
    return c.proposals.task(
        number, asked.recipe, floor=floor, fidelity=plan.share, rungs=plan.shares
    )


# ---- telling --------------------------------------------------------------------------


def at_rung(c: Controller, study: optuna.Study, asked: Asked, done: Finished) -> TrialTask | None:
    """A trial measured at a rung: go on to the next one while it can still reach the
    front (:func:`autoopt.search.rungs.decide`), else stop it there."""
    t0 = time.perf_counter()
    assert c.baseline is not None  # noqa: S101 - told only once the baseline is known
    plan = c.plans[done.number]
    share = float((done.built or {})["fidelity"])
    metrics = dict((done.measured or {})["metrics"])
    relative = c.exp.constraint.mode == "relative"
    metrics.update(S.derive(metrics, c.baseline, relative=relative))
    dims = ["accuracy", *(o for o in c.exp.objectives if o != "accuracy")]
    plan.measured.append(
        {"share": share, "seconds": (done.built or {}).get("seconds", 0.0)}
        | {k: metrics[k] for k in (*dims, "speedup", "accuracy_drop") if k in metrics}
    )
    directions = [S.direction(d) for d in dims]
    front = [
        [float(t.user_attrs[d]) for d in dims]
        for t in best_trials(study)
        if all(d in t.user_attrs for d in dims)
    ]
    decision = rungs.decide(
        [float(metrics[d]) for d in dims],
        share,
        accuracy_index=0,
        directions=directions,
        floor=c.exp.constraint.floor(float(c.baseline["accuracy"])),
        reference=float(c.baseline["accuracy"]),
        front=front,
    )
    plan.measured[-1]["optimistic"] = decision.optimistic
    c.overhead += time.perf_counter() - t0
    event = {"type": "rung", "trial": done.number, "share": share}
    event |= {"metric": c.workload.metric_name, "accuracy": metrics["accuracy"]}
    event |= {"go_on": decision.go_on}
    if not decision.go_on:
        stop_early(c, asked, decision.reason, plan, done)
        c.on_event({**event, "reason": decision.reason})
        return None
    plan.advance(share)
    c.recorder.note_rung(asked.trial, plan.measured, plan.index)
    c.on_event(event)
    return task_for(c, asked)


def stop_early(
    c: Controller, asked: Asked, reason: str, plan: rungs.RungPlan, done: Finished
) -> None:
    t0 = time.perf_counter()
    told = c.recorder.stop_early(asked.trial, asked.recipe, reason, plan.measured, done.stages)
    _after_early(c, asked, told, "stopped_early")
    c.overhead += time.perf_counter() - t0
    c.on_event({"type": "stopped", "trial": asked.trial.number, "reason": reason})


def reject_early(c: Controller, asked: Asked, done: Finished) -> None:
    t0 = time.perf_counter()
    assert done.failure is not None and done.failure.below_floor is not None  # noqa: S101
    assert c.baseline is not None  # noqa: S101 - tell_finished checked it
    c.record_build(done.built or {})
    told = c.recorder.reject_early(
        asked.trial,
        asked.recipe,
        done.failure.reason,
        done.failure.below_floor,
        c.baseline,
        done.stages,
    )
    _after_early(c, asked, told, "rejected_early")
    c.overhead += time.perf_counter() - t0
    event = {"type": "rejected_early", "trial": asked.trial.number}
    c.on_event({**event, "reason": done.failure.reason, "recipe": asked.recipe.describe()})


def _after_early(c: Controller, asked: Asked, told: optuna.trial.FrozenTrial, kind: str) -> None:
    number = asked.trial.number
    c.candidates.judged.setdefault(recipe_key(asked.recipe), trial_record(told))
    c.plans.pop(number, None)
    c.asked.pop(number, None)
    c.tally.counts[kind] += 1
    c.flush_held(asked.recipe)


def best_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The feasible Pareto front (none before any trial is complete)."""
    try:
        return list(study.best_trials)
    except (RuntimeError, ValueError):
        return []
