"""What takes a slot of a run's trial budget, and the random draws after repeats."""

from __future__ import annotations

import random
from pathlib import Path

import optuna
from optuna.trial import TrialState, create_trial

from autoopt.config import load_search_space
from autoopt.resolve import recipe_from_params
from autoopt.search.ledger import counts_toward_budget
from autoopt.search.points import allowed, random_point

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


def _trial(state: TrialState, **attrs) -> optuna.trial.FrozenTrial:
    values = [0.9, 1.0] if state == TrialState.COMPLETE else None
    return create_trial(state=state, values=values, user_attrs=attrs)


def test_budget_counts_candidates_built_and_judged_not_refusals_or_repeats() -> None:
    assert counts_toward_budget(_trial(TrialState.COMPLETE, status="complete"), True)
    assert counts_toward_budget(_trial(TrialState.FAIL, failure_stage="build"), True)
    for status in ("rejected-early", "stopped-early"):
        assert counts_toward_budget(_trial(TrialState.PRUNED, status=status), True)
    assert not counts_toward_budget(_trial(TrialState.PRUNED, status="rejected"), True)
    assert not counts_toward_budget(_trial(TrialState.FAIL, failure_stage="controller"), True)
    assert not counts_toward_budget(_trial(TrialState.FAIL, failure_stage="propose"), True)
    repeat = _trial(TrialState.COMPLETE, status="complete", duplicate_of=3)
    assert not counts_toward_budget(repeat, distinct=True)
    assert counts_toward_budget(repeat, distinct=False)


def test_random_points_are_valid_and_reproducible() -> None:
    space = load_search_space(SPACES / "digits_cnn.yaml")
    a = [random_point(space, random.Random(7)) for _ in range(1)]
    b = [random_point(space, random.Random(7)) for _ in range(1)]
    assert a == b
    rng = random.Random(0)
    kinds = set()
    for _ in range(50):
        point = random_point(space, rng)
        for name, value in point.items():
            assert allowed(space.parameters[name], value), (name, value)
        kinds.add(recipe_from_params(point, space).describe().split(" @ ")[-1])
    assert kinds == {
        "torch_eager",
        "onnxruntime",
        "onnxruntime(graph_optimization_level=basic)",
        "openvino",
        "openvino(static_shapes=True)",
    }
