"""Points of a declared search space: complete assignments of its active parameters.

The sampler walks a space one parameter at a time (:func:`autoopt.search.sampling.suggest`);
these pure functions walk it the same way to write points down directly: a point that
agrees with some required values and prefers others (:func:`expand`, the derived starting
points), or every point of a finite space (:func:`enumerate_points`, the search benchmark's
ground truth). Values are encoded as the sampler stores them (a list choice is ``a+b``), so a
point can be enqueued as it is and compared with sampled trials.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping
from typing import Any

from autoopt import plugins
from autoopt.config._space import ParameterSpec, SearchSpace, encode_choice
from autoopt.plugins import DEFAULT_METHODS, NONE_METHOD
from autoopt.recipe import Recipe
from autoopt.resolve import recipe_from_params

#: The baseline's method per family: what a point gets for a family it says nothing about.
BASELINE_METHODS: Mapping[str, str] = {
    "distillation": NONE_METHOD,
    "pruning": NONE_METHOD,
    "quantization": NONE_METHOD,
    "precision": DEFAULT_METHODS.get("precision", "fp32"),
    "backend": "torch_eager",
}
Vary = Callable[[str, ParameterSpec], bool]


def _never(_name: str, _spec: ParameterSpec) -> bool:
    return False


def _always(_name: str, _spec: ParameterSpec) -> bool:
    return True


def allowed(spec: ParameterSpec, value: Any) -> bool:
    """Whether a sampled parameter may take ``value`` (encoded or not)."""
    if spec.kind == "fixed":
        return encode_choice(spec.value) == encode_choice(value)
    if spec.kind == "categorical":
        return encode_choice(value) in spec.grid_values()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    low, high = float(spec.low), float(spec.high)  # type: ignore[arg-type]
    if not low - 1e-9 <= float(value) <= high + 1e-9:
        return False
    if spec.kind == "int" and float(value) != int(value):
        return False
    if spec.step:
        k = (float(value) - low) / float(spec.step)
        return abs(k - round(k)) < 1e-6
    return True


def nearest(spec: ParameterSpec, target: float) -> Any:
    """The value of a numeric parameter (a range, or a categorical of numbers) nearest to
    ``target``; on a tie the smaller one."""
    if spec.kind == "categorical":
        numbers = [c for c in spec.grid_values() if isinstance(c, int | float)]
        numbers = [c for c in numbers if not isinstance(c, bool)]
        return min(numbers, key=lambda c: (abs(c - target), c)) if numbers else None
    if spec.kind == "fixed":
        return spec.value
    low, high = float(spec.low), float(spec.high)  # type: ignore[arg-type]
    value = min(max(target, low), high)
    if spec.step:
        step = float(spec.step)
        value = low + math.floor((value - low) / step + 0.5) * step
        value = min(value, high)
    return int(round(value)) if spec.kind == "int" else float(value)


def representative(name: str, spec: ParameterSpec) -> Any:
    """What a point gets for a parameter it says nothing about: the baseline's method for a
    ``<family>.method``, a field's config default (the nearest allowed value for a range),
    else the first choice."""
    parts = name.split(".")
    if spec.kind == "fixed":
        return encode_choice(spec.value)
    if len(parts) == 2:
        choices = spec.grid_values()
        want = BASELINE_METHODS.get(parts[0])
        return want if want in choices else choices[0]
    family, method, field = parts
    default = None
    info = plugins.get(f"{family}.{method}").Config.model_fields.get(field)
    if info is not None:
        default = info.get_default(call_default_factory=True)
    if spec.kind == "categorical":
        choices = spec.grid_values()
        encoded = encode_choice(default) if default is not None else None
        return encoded if encoded in choices else choices[0]
    if isinstance(default, int | float) and not isinstance(default, bool):
        return nearest(spec, float(default))
    return spec.example_values()[0]


def _values(spec: ParameterSpec) -> list[Any]:
    return spec.grid_values() if spec.is_finite else spec.example_values()


def expand(
    space: SearchSpace,
    require: Mapping[str, Any] | None = None,
    prefer: Mapping[str, Any] | None = None,
    vary: Vary = _never,
) -> list[dict[str, Any]]:
    """The points of ``space`` that agree with ``require``, in declaration order.

    Each active parameter takes its ``require``d value (no point if the space does not allow
    it, or if a required parameter is never active), else its ``prefer``red value where the
    space allows it, else every value when ``vary`` selects it, else its
    :func:`representative` value. Parameters the space fixes keep their value (a required
    different value means no point). Inactive parameters are left out, as the sampler
    leaves them.
    """
    require = {k: encode_choice(v) for k, v in (require or {}).items()}
    prefer = {k: encode_choice(v) for k, v in (prefer or {}).items()}
    for name in require:
        if name not in space.parameters and require[name] not in (None, NONE_METHOD):
            return []
    points: list[dict[str, Any]] = [{}]
    for name, spec in space.parameters.items():
        grown: list[dict[str, Any]] = []
        for point in points:
            if not space.is_active(name, point):
                grown.append(point)
                continue
            if spec.kind == "fixed":
                if name in require and not allowed(spec, require[name]):
                    continue
                grown.append(point)
                continue
            if name in require:
                if allowed(spec, require[name]):
                    grown.append({**point, name: require[name]})
                continue
            if name in prefer and allowed(spec, prefer[name]):
                grown.append({**point, name: prefer[name]})
            elif vary(name, spec):
                grown.extend({**point, name: v} for v in _values(spec))
            else:
                grown.append({**point, name: representative(name, spec)})
        points = grown
    # A required parameter may be active on some branches only: keep the points that have
    # it, or that leave it inactive where the recipe gets the required value anyway (a
    # family's ``none``, or its default method: precision fp32 around int8).
    declared = {n: v for n, v in require.items() if n in space.parameters}
    return [p for p in points if all(_agrees(space, p, n, v) for n, v in declared.items())]


def _agrees(space: SearchSpace, point: Mapping[str, Any], name: str, value: Any) -> bool:
    if name in point:
        return bool(point[name] == value)
    if not space.is_active(name, point):
        family = name.split(".", 1)[0]
        return name.endswith(".method") and value in (NONE_METHOD, DEFAULT_METHODS.get(family))
    spec = space.parameters[name]
    return spec.kind == "fixed" and encode_choice(spec.value) == value


def enumerate_points(space: SearchSpace) -> list[dict[str, Any]]:
    """Every point of a finite space (a range without a step gives its two ends), one per
    distinct candidate, in declaration order."""
    unique: dict[str, dict[str, Any]] = {}
    for point in expand(space, vary=_always):
        try:
            key = recipe_key(recipe_from_params(point, space))
        except Exception:  # noqa: BLE001 - a combination no method config accepts is no point
            continue
        unique.setdefault(key, point)
    return list(unique.values())


def recipe_key(recipe: Recipe | Mapping[str, Any]) -> str:
    """A candidate's identity: its recipe, serialised (equal candidates, equal keys)."""
    data = recipe.to_dict() if isinstance(recipe, Recipe) else recipe
    return json.dumps(data, sort_keys=True, default=str)


def random_point(space: SearchSpace, rng: random.Random) -> dict[str, Any]:
    """A point drawn as a random sampler draws it: each active parameter uniformly among its
    choices, or in its range (on its steps; log-uniformly for a log range)."""
    point: dict[str, Any] = {}
    for name, spec in space.parameters.items():
        if spec.kind == "fixed" or not space.is_active(name, point):
            continue
        if spec.is_finite:
            point[name] = rng.choice(spec.grid_values())
            continue
        low, high = float(spec.low), float(spec.high)  # type: ignore[arg-type]
        if spec.log:
            point[name] = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            point[name] = rng.uniform(low, high)
    return point
