"""Recipes from names: the one place a method key is resolved to its config class.

A :class:`~autoopt.recipe.Recipe` holds validated configs and knows no registry. Recipes come
in through these edges: sampled Optuna parameters (:func:`recipe_from_params`), a stored
recipe (:func:`recipe_from_dict`: a trial's record, a Ray task, a bundle's manifest) and a key
with settings (:func:`make_step`). Each validates the settings with the method's config class
and fills in its defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from autoopt import plugins
from autoopt.config._space import SearchSpace, decode_choice
from autoopt.errors import ConfigError
from autoopt.plugins import DEFAULT_METHODS, FAMILIES, NONE_METHOD, OPTIONAL_FAMILIES
from autoopt.recipe import Recipe, Step

if TYPE_CHECKING:
    from autoopt.artifacts import ArtifactKind

#: The backend that serves each kind of teacher unchanged: the baseline's.
BASELINE_BACKENDS: dict[str, str] = {"torch": "torch_eager", "onnx": "onnxruntime"}


def make_step(key: str, config: Mapping[str, Any] | None = None) -> Step:
    """``key``'s method with ``config`` validated (ConfigError naming the field if invalid)."""
    config_cls = plugins.get(key).Config
    try:
        parsed = config_cls.model_validate(dict(config or {}))
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{key}.{loc}: {err['msg']}; got {err.get('input')!r}") from e
    return Step(key, parsed)


def _recipe(steps: Mapping[str, Step | None], where: str) -> Recipe:
    precision, backend = steps.get("precision"), steps.get("backend")
    if precision is None or backend is None:
        missing = "precision" if precision is None else "backend"
        raise ConfigError(f"{where}: '{missing}.method' must name a method")
    return Recipe(
        precision=precision,
        backend=backend,
        distillation=steps.get("distillation"),
        pruning=steps.get("pruning"),
        quantization=steps.get("quantization"),
    )


def recipe_from_dict(data: Mapping[str, Any]) -> Recipe:
    """The recipe :meth:`Recipe.to_dict` wrote (``{family: {key, config} | None}``)."""
    steps: dict[str, Step | None] = {
        f: make_step(s["key"], s.get("config")) if (s := data.get(f)) else None for f in FAMILIES
    }
    return _recipe(steps, "recipe")


def baseline_recipe(teacher_kind: ArtifactKind = "torch") -> Recipe:
    """The unoptimized teacher, trial 0 of every study: fp32 on PyTorch eager for a PyTorch
    teacher, the graph as it is on ONNX Runtime (default settings) for an ONNX teacher."""
    backend = _baseline_backend(teacher_kind)
    return Recipe(precision=make_step("precision.fp32"), backend=make_step(f"backend.{backend}"))


def _baseline_backend(teacher_kind: str) -> str:
    if teacher_kind not in BASELINE_BACKENDS:
        raise ConfigError(
            f"a teacher of kind '{teacher_kind}' has no baseline; allowed kinds: "
            f"{', '.join(BASELINE_BACKENDS)}"
        )
    return BASELINE_BACKENDS[teacher_kind]


def recipe_from_params(
    params: Mapping[str, Any], space: SearchSpace, fixed: Mapping[str, Any] | None = None
) -> Recipe:
    """Turn one trial's sampled parameters (plus the space's fixed values) into a recipe.

    ``fixed`` replaces the values of parameters the space fixes (where active): a seed
    candidate, such as a standard recipe, may lie outside the searched space, e.g.
    ``per_channel: false`` where the space searches per-channel int8 only. Optuna records
    only sampled parameters, so the seed's are applied here.
    """
    fixed = fixed or {}
    values: dict[str, Any] = {}
    for name, spec in space.parameters.items():
        if name in params:
            values[name] = decode_choice(spec, params[name])
        elif spec.kind == "fixed" and space.is_active(name, values):
            values[name] = fixed.get(name, spec.value)
    steps: dict[str, Step | None] = {}
    for family in FAMILIES:
        method = values.get(f"{family}.method", DEFAULT_METHODS.get(family, NONE_METHOD))
        if method == NONE_METHOD:
            if family not in OPTIONAL_FAMILIES:
                raise ConfigError(f"parameters: '{family}.method' must name a method")
            steps[family] = None
            continue
        prefix = f"{family}.{method}."
        config = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
        steps[family] = make_step(f"{family}.{method}", config)
    return _recipe(steps, "parameters")


def baseline_params(
    space: SearchSpace, teacher_kind: ArtifactKind = "torch"
) -> dict[str, Any] | None:
    """Parameters that make the space produce the baseline recipe, if it can."""
    wanted = {
        "distillation.method": NONE_METHOD,
        "pruning.method": NONE_METHOD,
        "quantization.method": NONE_METHOD,
        "precision.method": "fp32",
        "backend.method": _baseline_backend(teacher_kind),
    }
    params = {}
    for name, value in wanted.items():
        spec = space.parameters.get(name)
        if spec is None:
            if value != NONE_METHOD:
                return None
            continue
        if spec.kind == "categorical":
            if value not in (spec.choices or []):
                return None
            params[name] = value
        elif spec.value != value:
            return None
    return params
