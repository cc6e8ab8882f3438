"""Choosing which front models to pair with which front settings (pure functions)."""

from __future__ import annotations

from autoopt.search.recombine import Point, pareto_front, recombinations, split

TEACHER = {"distillation.method": "none", "pruning.method": "none"}
STUDENT = {"distillation.method": "kd", "distillation.kd.layers": 3, "pruning.method": "none"}
EAGER = {"quantization.method": "none", "backend.method": "torch_eager"}
INT8 = {"quantization.method": "dynamic_int8", "backend.method": "onnxruntime"}
COMPILE = {"quantization.method": "none", "backend.method": "torch_compile"}


def test_split_separates_what_trains_from_post_training_settings() -> None:
    model, settings = split({**STUDENT, **INT8, "quantization.dynamic_int8.per_channel": True})
    assert model == STUDENT
    assert settings == {**INT8, "quantization.dynamic_int8.per_channel": True}


def test_pareto_front_keeps_undominated_points_most_accurate_first() -> None:
    points = [
        Point(0, {}, 1.00, 27.0),
        Point(1, {}, 0.99, 15.0),
        Point(2, {}, 0.98, 16.0),  # dominated by 1
        Point(3, {}, 0.96, 11.0),
        Point(4, {}, 1.00, 27.0),  # equal to 0: the earlier trial stands for both
        Point(5, {}, 0.95, 11.0),  # as fast as 3 and less accurate
    ]
    assert [p.number for p in pareto_front(points)] == [0, 1, 3]


def test_front_models_get_front_settings_they_lack() -> None:
    points = [
        Point(0, {**TEACHER, **EAGER}, 1.00, 27.0),
        Point(1, {**TEACHER, **INT8}, 0.99, 15.0),
        Point(2, {**STUDENT, **EAGER}, 0.96, 13.0),
        Point(3, {**STUDENT, **COMPILE}, 0.90, 14.0),  # off the front: its settings are not used
    ]
    pairs = {(r.model_from, r.settings_from): r.params for r in recombinations(points, 2)}
    # The student gets int8; the teacher already has both front settings (eager, int8).
    assert pairs == {(2, 1): {**STUDENT, **INT8}}
    # per_model bounds the settings tried, most accurate first: only eager here.
    assert recombinations(points, 1) == []
    assert recombinations(points, 0) == []


def test_a_model_beaten_only_by_other_settings_still_gets_the_front_settings() -> None:
    """The 3-layer student in fp32 is beaten by the teacher with int8, but not by any model in
    fp32: it is paired with int8 (it may be the fastest model above some accuracy then)."""
    four = {**STUDENT, "distillation.kd.layers": 4}
    points = [
        Point(0, {**TEACHER, **EAGER}, 1.00, 27.0),
        Point(1, {**TEACHER, **INT8}, 0.99, 15.0),
        Point(2, {**four, **INT8}, 0.96, 10.0),
        Point(3, {**STUDENT, **EAGER}, 0.95, 14.0),  # off the front: 2 beats it
        Point(4, {**STUDENT, "distillation.kd.lr": 1.0, **EAGER}, 0.50, 20.0),  # 3 beats it
    ]
    assert [p.number for p in pareto_front(points)] == [0, 1, 2]
    pairs = {(r.model_from, r.settings_from) for r in recombinations(points, 2)}
    # Front models first (the 4-layer student in eager), then the 3-layer one with int8; the
    # student that is worse than another in eager is not paired.
    assert pairs == {(2, 0), (3, 1)}


def test_pairs_already_queued_or_refused_are_not_proposed_again() -> None:
    points = [
        Point(0, {**TEACHER, **EAGER}, 1.00, 27.0),
        Point(1, {**STUDENT, **INT8}, 0.95, 9.0),
    ]
    both = {r.params["distillation.method"] for r in recombinations(points, 2)}
    assert both == {"none", "kd"}
    left = recombinations(points, 2, tried=[{**TEACHER, **INT8}])
    assert [(r.model_from, r.settings_from) for r in left] == [(1, 0)]


def test_fixed_overrides_travel_with_the_part_they_belong_to() -> None:
    # A seed that set a space-fixed value (per-tensor int8) lends its settings with that value.
    per_tensor = {"quantization.dynamic_int8.per_channel": False}
    points = [
        Point(0, {**TEACHER, **INT8}, 0.97, 15.0, fixed=per_tensor),
        Point(1, {**STUDENT, **EAGER}, 0.96, 13.0),
    ]
    (r,) = recombinations(points, 1)
    assert (r.model_from, r.settings_from) == (1, 0)
    assert r.params == {**STUDENT, **INT8} and r.fixed == per_tensor
