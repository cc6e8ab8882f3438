"""The paths a search space can produce: which kernels a candidate's numbers come from.

A *path* is a recipe stripped to what selects kernels: the backend and its kernel fields
(``Backend.kernel_fields``: torch.compile's mode, ONNX Runtime's optimization level, ...), the
precision method, and the quantization method with its kernel fields
(``Technique.kernel_fields``: per-channel scales, the op types made int8). Distillation and
pruning change the model's weights and widths, not the kernels it runs, so no path has them.
Everything here is pure: no model is loaded and nothing runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from autoopt import plugins
from autoopt.config._space import ParameterSpec, SearchSpace, encode_choice
from autoopt.plugins import NONE_METHOD
from autoopt.recipe import Recipe, Step
from autoopt.resolve import baseline_recipe, make_step, recipe_from_params

if TYPE_CHECKING:
    from autoopt.artifacts import ArtifactKind

#: Families a path never has: they change the weights, not the kernels.
SKIPPED_FAMILIES = ("distillation", "pruning")
#: Fields that name the full model's modules (``bert.encoder.layer.*.output.dense``). The
#: probe is one block, wrapped, so such names would match nothing there; which layers stay
#: float changes how many int8 kernels run, not which: a path quantizes every layer.
MODULE_NAME_FIELDS = ("exclude",)


def enumerate_paths(space: SearchSpace, teacher_kind: ArtifactKind = "torch") -> list[Recipe]:
    """Every path of ``space``, baseline first (that of a ``teacher_kind`` teacher), each as
    a recipe.

    The combinations of the choices of every method parameter and kernel field that the
    space's conditions (a field follows its method; ``when:``) allow, walked in declaration
    order as the sampler walks them. Other fields get their config default where the space
    allows it, else the space's first choice (or a range's low end); fixed values stay fixed.
    Distillation and pruning are ``none`` whatever the space allows.
    """
    combos: list[dict[str, Any]] = [{}]
    for name, spec in space.parameters.items():
        grown: list[dict[str, Any]] = []
        for sampled in combos:
            if _family(name) in SKIPPED_FAMILIES:
                # Recorded so that a ``when:`` on it evaluates as for a candidate without it.
                if _is_method_param(name):
                    sampled = {**sampled, name: NONE_METHOD}
                grown.append(sampled)
                continue
            if not space.is_active(name, sampled):
                grown.append(sampled)
                continue
            grown.extend({**sampled, name: value} for value in _values(name, spec))
        combos = grown
    recipes = [baseline_recipe(teacher_kind)]
    recipes.extend(_for_selftest(recipe_from_params(params, space)) for params in combos)
    unique: dict[str, Recipe] = {}
    for recipe in recipes:
        # The recipe itself, not its bare path: a fixed non-kernel field may be what makes
        # the path work (transformer fusions given the model's head count).
        unique.setdefault(path_key(recipe), recipe)
    return list(unique.values())


def path_of(recipe: Recipe) -> Recipe:
    """The path a candidate runs on: ``recipe`` without distillation and pruning, its backend
    and quantization reduced to their kernel fields (the rest at their defaults)."""
    return Recipe(
        precision=recipe.precision,
        backend=_kernel_step(recipe.backend),
        quantization=_kernel_step(recipe.quantization) if recipe.quantization else None,
    )


def kernel_settings(recipe: Recipe) -> dict[str, Any]:
    """What identifies ``recipe``'s path: method keys and kernel field values (JSON-able)."""
    path = path_of(recipe)
    out: dict[str, Any] = {
        "backend": path.backend.to_dict(),
        "precision": path.precision.key,
        "quantization": path.quantization.to_dict() if path.quantization else None,
    }
    return out


def path_key(recipe: Recipe) -> str:
    """A stable short hash of :func:`kernel_settings`: equal for recipes on the same path."""
    blob = json.dumps(kernel_settings(recipe), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def describe_path(recipe: Recipe) -> str:
    """One line, e.g. ``torch_compile(max-autotune-no-cudagraphs, freezing) + static_int8``:
    each kernel field that differs from its default (a true flag by its name)."""
    path = path_of(recipe)
    parts = [_describe_step(path.backend)]
    if path.precision.method != "fp32" or path.quantization is None:
        parts.append(path.precision.method)
    if path.quantization is not None:
        parts.append(_describe_step(path.quantization))
    return " + ".join(parts)


# ---- internals ---------------------------------------------------------------------------


def _family(name: str) -> str:
    return name.split(".", 1)[0]


def _is_method_param(name: str) -> bool:
    return name.count(".") == 1


def _kernel_fields(key: str) -> tuple[str, ...]:
    return tuple(plugins.get(key).kernel_fields)


def _values(name: str, spec: ParameterSpec) -> list[Any]:
    """The values a path walks for one active parameter (encoded as the sampler stores them)."""
    if _is_method_param(name):
        return spec.grid_values()
    family, method, field = name.split(".")
    if field in _kernel_fields(f"{family}.{method}"):
        return spec.grid_values() if spec.is_finite else spec.example_values()
    if field in MODULE_NAME_FIELDS:
        return [[]]
    return [_representative(f"{family}.{method}", field, spec)]


def _representative(key: str, field: str, spec: ParameterSpec) -> Any:
    """One value for a field that does not select kernels: the method's default where the
    space allows it, else the space's first choice, a range's low end or the fixed value."""
    if spec.kind == "fixed":
        return encode_choice(spec.value)
    info = plugins.get(key).Config.model_fields.get(field)
    default = info.get_default(call_default_factory=True) if info is not None else None
    if spec.kind == "categorical":
        choices = spec.grid_values()
        encoded = encode_choice(default)
        return encoded if default is not None and encoded in choices else choices[0]
    low, high = spec.low, spec.high
    if isinstance(default, int | float) and not isinstance(default, bool):
        if low <= default <= high:  # type: ignore[operator]
            return default
    return spec.example_values()[0]


def _for_selftest(recipe: Recipe) -> Recipe:
    """``recipe`` with its quantization method's ``selftest_config`` applied (a QAT path
    trains two steps, not the space's hundreds: the same kernels either way)."""
    step = recipe.quantization
    overrides = plugins.get_technique(step.key).selftest_config if step is not None else {}
    if step is None or not overrides:
        return recipe
    return replace(recipe, quantization=make_step(step.key, {**step.params, **overrides}))


def _kernel_step(step: Step) -> Step:
    fields = _kernel_fields(step.key)
    return make_step(step.key, {k: v for k, v in step.params.items() if k in fields})


def _describe_step(step: Step) -> str:
    defaults = _defaults(step.key)
    shown = []
    for field in _kernel_fields(step.key):
        value = step.params.get(field)
        if field not in defaults or value == defaults[field]:
            continue
        if value is True:
            shown.append(field)
        elif value is False:
            shown.append(f"no {field}")
        elif isinstance(value, list):
            shown.append(f"{field}={'+'.join(str(v) for v in value) or '-'}")
        else:
            shown.append(str(value))
    return f"{step.method}({', '.join(shown)})" if shown else step.method


def _defaults(key: str) -> Mapping[str, Any]:
    try:
        return plugins.get(key).Config().model_dump(mode="json")
    except ValueError:  # a config with required fields has no defaults
        return {}
