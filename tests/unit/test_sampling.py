"""Every declared parameter of every bundled space yields a valid recipe."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autoopt.config import SamplerConfig, load_search_space
from autoopt.config._space import decode_choice
from autoopt.resolve import baseline_params, baseline_recipe, recipe_from_dict, recipe_from_params
from autoopt.search.sampling import make_sampler, suggest

SPACES = sorted((Path(__file__).resolve().parents[2] / "search_spaces").glob("*.yaml"))


def _activating(space, name: str, value) -> dict:
    """Parameters that make ``name`` active with ``value`` (first choice elsewhere)."""
    params = {}
    family, *rest = name.split(".")
    for other, spec in space.parameters.items():
        if spec.kind != "categorical" or not other.endswith(".method"):
            continue
        params[other] = spec.choices[0]
    if len(rest) == 2:
        params[f"{family}.method"] = rest[0]
    for cond, expected in space.parameters[name].when.items():
        params[cond] = expected[0] if isinstance(expected, list) else expected
    params[name] = value
    return params


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_every_space_parameter_yields_valid_recipe(path: Path) -> None:
    space = load_search_space(path)
    checked = 0
    for name, spec in space.parameters.items():
        for value in spec.example_values():
            recipe = recipe_from_params(_activating(space, name, value), space)
            family, *rest = name.split(".")
            step = getattr(recipe, family)
            if len(rest) == 2:
                assert step is not None and step.method == rest[0]
                assert step.params[rest[1]] == decode_choice(spec, value)
            checked += 1
            assert recipe_from_dict(recipe.to_dict()) == recipe
    assert checked >= len(space.parameters)


@pytest.mark.parametrize("sampler", ["tpe", "random", "nsga2"])
def test_sampled_trials_make_valid_distinct_recipes(sampler: str) -> None:
    space = load_search_space(SPACES[0])
    study = optuna.create_study(
        directions=["maximize", "minimize"],
        sampler=make_sampler(SamplerConfig(name=sampler, seed=1), space, 40),
    )
    digests = set()
    for i in range(25):
        trial = study.ask()
        params = suggest(trial, space)
        recipe = recipe_from_params(params, space)
        for family in ("distillation", "pruning", "quantization"):
            method = params.get(f"{family}.method", "none")
            step = getattr(recipe, family)
            assert (step is None) == (method == "none")
            # Field parameters of methods that were not chosen are never sampled.
            for p in params:
                if p.startswith(f"{family}.") and p != f"{family}.method":
                    assert p.split(".")[1] == method
        digests.add(recipe.digest())
        study.tell(trial, [float(i % 3), float(i)])
    assert len(digests) > 10


def test_baseline_params_reproduce_baseline_recipe() -> None:
    space = load_search_space(SPACES[0])
    params = baseline_params(space)
    assert params is not None
    assert recipe_from_params(params, space) == baseline_recipe()
    assert baseline_recipe().is_baseline


def test_recipe_digest_is_stable_and_config_sensitive() -> None:
    space = load_search_space(SPACES[0])
    base = dict(baseline_params(space))
    a = recipe_from_params(
        {**base, "pruning.method": "structured", "pruning.structured.amount": 0.5}, space
    )
    b = recipe_from_params(
        {**base, "pruning.method": "structured", "pruning.structured.amount": 0.5}, space
    )
    c = recipe_from_params(
        {**base, "pruning.method": "structured", "pruning.structured.amount": 0.4}, space
    )
    assert a.digest() == b.digest() != c.digest()
    assert "structured(" in a.describe() and a.describe().endswith("@ torch_eager")
