"""A recipe that failed by itself is not rebuilt: a later proposal of it is told the earlier
failure, in a way that steers TPE away from it (PRUNED with the accuracy constraint violated;
TPE ignores FAIL trials altogether)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from autoopt.config import AccuracyConstraint, SamplerConfig
from autoopt.config._space import SearchSpace
from autoopt.execution import Failure
from autoopt.recipe import Recipe
from autoopt.resolve import recipe_from_params
from autoopt.search.candidates import Candidates
from autoopt.search.controller import Controller
from autoopt.search.points import recipe_key
from autoopt.search.sampling import make_sampler, suggest
from autoopt.study import schema as S
from autoopt.study.recorder import Outcome, TrialRecorder
from autoopt.study.records import TrialRecord, trial_record

SPACE = SearchSpace.model_validate(
    {
        "parameters": {
            "quantization.method": ["none", "dynamic_int8", "static_int8"],
            "precision.method": ["fp32", "bf16", "fp16"],
            "backend.method": ["torch_eager", "onnxruntime", "openvino"],
        }
    }
)
OBJECTIVES = ["accuracy", "latency_p50_ms"]
BASELINE = {"accuracy": 0.9, "latency_p50_ms": 10.0}
CONSTRAINT = AccuracyConstraint(max_drop=0.01)


def _fails(params: dict[str, Any]) -> bool:
    """The candidates that fail by themselves: static int8 on ONNX Runtime (3 of 27)."""
    return params["quantization.method"] == "static_int8" and (
        params["backend.method"] == "onnxruntime"
    )


def _latency(params: dict[str, Any]) -> float:
    """Faster with int8 and on ONNX Runtime; the failing recipes look like the fastest."""
    quant = {"none": 1.0, "dynamic_int8": 0.6, "static_int8": 0.4}[params["quantization.method"]]
    backend = {"torch_eager": 1.0, "onnxruntime": 0.7, "openvino": 0.8}[params["backend.method"]]
    return 10.0 * quant * backend


Tell = Callable[[TrialRecorder, optuna.Trial, Recipe, TrialRecord | None], TrialRecord | None]


def _tell_fail_again(
    recorder: TrialRecorder, trial: optuna.Trial, recipe: Recipe, prior: TrialRecord | None
) -> TrialRecord | None:
    """What the controller did before: rebuild the recipe, which fails again (FAIL)."""
    recorder.fail(trial, "quantization.static_int8", "boom", recipe=recipe, own=True)
    return prior


def _tell_repeat(
    recorder: TrialRecorder, trial: optuna.Trial, recipe: Recipe, prior: TrialRecord | None
) -> TrialRecord | None:
    """What it does now: the first failure is FAIL, a later proposal is told that failure."""
    if prior is not None:
        recorder.repeat_failure(trial, prior, recipe)
        return prior
    told = recorder.fail(trial, "quantization.static_int8", "boom", recipe=recipe, own=True)
    return trial_record(told)


def _sweep(tell: Tell, seed: int, n_trials: int = 40) -> int:
    """How many of ``n_trials`` TPE proposals (autoopt's sampler) are failing recipes."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make_sampler(SamplerConfig(name="tpe", seed=seed), SPACE, n_trials)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    recorder = TrialRecorder(study, CONSTRAINT, OBJECTIVES)
    failed: dict[str, TrialRecord | None] = {}
    proposed_failing = 0
    for _ in range(n_trials):
        trial = study.ask()
        params = suggest(trial, SPACE)
        recipe = recipe_from_params(params, SPACE)
        if _fails(params):
            proposed_failing += 1
            key = recipe_key(recipe)
            failed[key] = tell(recorder, trial, recipe, failed.get(key))
            continue
        accuracy = 0.9 - (0.005 if params["quantization.method"] != "none" else 0.0)
        metrics = {"accuracy": accuracy, "latency_p50_ms": _latency(params)}
        recorder.complete(trial, recipe, Outcome(metrics=metrics), BASELINE)
    return proposed_failing


def test_a_repeat_of_a_failure_is_told_that_failure_and_counts_as_infeasible_for_tpe() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    recorder = TrialRecorder(study, CONSTRAINT, OBJECTIVES)
    params = {"quantization.method": "static_int8", "precision.method": "fp32"}
    recipe = recipe_from_params({**params, "backend.method": "onnxruntime"}, SPACE)
    first = trial_record(
        recorder.fail(study.ask(), "verify", "NaN outputs", recipe=recipe, own=True)
    )
    assert first.state == "FAIL" and first.status == "failed"
    repeat = trial_record(recorder.repeat_failure(study.ask(), first, recipe))
    assert repeat.state == "PRUNED" and repeat.status == "failed"
    assert repeat.duplicate_of == first.number and repeat.is_repeat
    assert (repeat.failure_stage, repeat.failure_reason) == ("verify", "NaN outputs")
    assert repeat.recipe == recipe.to_dict() and repeat.stages == []
    assert not repeat.feasible
    (frozen,) = study.get_trials(states=(TrialState.PRUNED,))
    # Infeasible for TPE's split: ranked after every feasible and pruned trial.
    assert frozen.constraints[S.CONSTRAINT_KEY] == pytest.approx(1.0 - CONSTRAINT.max_drop)


def test_tpe_proposes_a_failed_recipe_far_less_often_when_repeats_are_told_pruned() -> None:
    """Measured over 6 seeds of 40 trials: the 3 failing recipes (of 27) are also the fastest
    looking ones. Told FAIL again (the old way) TPE keeps proposing them; told PRUNED with the
    constraint violated it learns to stop."""
    seeds = range(6)
    before = sum(_sweep(_tell_fail_again, seed) for seed in seeds)
    after = sum(_sweep(_tell_repeat, seed) for seed in seeds)
    print(f"failing proposals in {len(seeds)} x 40 trials: told FAIL {before}, repeat {after}")
    assert after < 0.6 * before, (before, after)


def test_only_the_candidates_own_failures_are_reused() -> None:
    """A worker lost or a time limit says nothing of the recipe: it is built again."""
    assert Failure("build", "x").own is False
    study = optuna.create_study(directions=["maximize", "minimize"])
    recorder = TrialRecorder(study, CONSTRAINT, OBJECTIVES)
    recipe = recipe_from_params(
        {"quantization.method": "none", "precision.method": "fp32", "backend.method": "openvino"},
        SPACE,
    )
    lost = recorder.fail(study.ask(), "build", "worker lost", recipe=recipe)
    own = recorder.fail(study.ask(), "verify", "NaN", recipe=recipe, own=True)
    assert S.ATTR_FAILURE_OWN not in lost.user_attrs
    assert own.user_attrs[S.ATTR_FAILURE_OWN] is True
    controller = Controller.__new__(Controller)
    controller.candidates = Candidates(failed={recipe_key(recipe): trial_record(own)})
    fresh = study.ask()
    assert controller.prior(fresh, recipe).number == own.number  # type: ignore[union-attr]
    seed = study.ask()
    seed.set_user_attr(S.ATTR_SEED, "mine")  # a seed candidate is always built
    assert controller.prior(seed, recipe) is None
