"""A candidate recipe: a pure, hashable description of how to build one candidate.

Recipes come from sampled Optuna parameters (:func:`recipe_from_params`); every field is
validated by the chosen method's config class, so a recipe always names valid settings, and
defaults are filled in so that equal candidates hash equally.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from autoopt.config._space import FAMILIES, NONE_METHOD, SearchSpace, decode_choice
from autoopt.errors import ConfigError

#: Families that may be skipped; precision and backend are always present.
OPTIONAL_FAMILIES = ("distillation", "pruning", "quantization")
#: The method a required family gets when its ``<family>.method`` parameter is inactive
#: (e.g. ``precision.method`` declared ``when: {quantization.method: none}``).
DEFAULT_METHODS = {"precision": "fp32"}


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Step:
    """One technique or backend method with its full, validated config."""

    key: str
    config: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def make(cls, key: str, config: Mapping[str, Any] | None = None) -> Step:
        from autoopt import registry

        config_cls = registry.get(key).Config
        try:
            full = config_cls.model_validate(dict(config or {})).model_dump(mode="json")
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{key}.{loc}: {err['msg']}; got {err.get('input')!r}") from e
        return cls(key, tuple(sorted((k, _freeze(v)) for k, v in full.items())))

    @property
    def family(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def method(self) -> str:
        return self.key.split(".", 1)[1]

    @property
    def params(self) -> dict[str, Any]:
        return {k: _thaw(v) for k, v in self.config}

    def parsed(self) -> Any:
        """The config as the method's pydantic model."""
        from autoopt import registry

        return registry.get(self.key).Config.model_validate(self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "config": self.params}

    def describe(self) -> str:
        """``method(field=value,...)`` with only the fields that differ from the defaults."""
        from autoopt import registry

        try:
            defaults = registry.get(self.key).Config().model_dump(mode="json")
        except ValueError:  # a config with required fields has no defaults to hide
            defaults = {}
        inner = ",".join(
            f"{k}={_short(v)}" for k, v in self.params.items() if defaults.get(k, object()) != v
        )
        return f"{self.method}({inner})" if inner else self.method


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "+".join(str(v) for v in value) or "-"
    return str(value)


@dataclass(frozen=True)
class Recipe:
    precision: Step
    backend: Step
    distillation: Step | None = None
    pruning: Step | None = None
    quantization: Step | None = None
    #: Technique keys in the order the pipeline applies them.
    steps: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def techniques(self) -> list[Step]:
        """The model-transforming steps in pipeline order (backend excluded)."""
        return [
            s
            for s in (self.distillation, self.pruning, self.quantization, self.precision)
            if s is not None
        ]

    @property
    def is_baseline(self) -> bool:
        return (
            self.distillation is None
            and self.pruning is None
            and self.quantization is None
            and self.precision.method == "fp32"
            and self.backend.method == "torch_eager"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            f: (s.to_dict() if (s := getattr(self, f)) is not None else None) for f in FAMILIES
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        kwargs = {}
        for f in FAMILIES:
            s = data.get(f)
            kwargs[f] = Step.make(s["key"], s.get("config")) if s else None
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def describe(self) -> str:
        """One line, e.g. ``kd(width=0.5,...) > structured(amount=0.3) > fp32 @ onnxruntime``."""
        parts = [s.describe() for s in (self.distillation, self.pruning, self.quantization) if s]
        parts.append(self.precision.method)
        return " > ".join(parts) + f" @ {self.backend.describe()}"


def baseline_recipe() -> Recipe:
    """The unoptimized teacher: fp32 on PyTorch eager; trial 0 of every study."""
    return Recipe(precision=Step.make("precision.fp32"), backend=Step.make("backend.torch_eager"))


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
    kwargs: dict[str, Step | None] = {}
    for family in FAMILIES:
        method = values.get(f"{family}.method", DEFAULT_METHODS.get(family, NONE_METHOD))
        if method == NONE_METHOD:
            if family not in OPTIONAL_FAMILIES:
                raise ConfigError(f"parameters: '{family}.method' must name a method")
            kwargs[family] = None
            continue
        prefix = f"{family}.{method}."
        config = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
        kwargs[family] = Step.make(f"{family}.{method}", config)
    return Recipe(**kwargs)  # type: ignore[arg-type]


def baseline_params(space: SearchSpace) -> dict[str, Any] | None:
    """Parameters that make the space produce the baseline recipe, if it can."""
    wanted = {
        "distillation.method": NONE_METHOD,
        "pruning.method": NONE_METHOD,
        "quantization.method": NONE_METHOD,
        "precision.method": "fp32",
        "backend.method": "torch_eager",
    }
    params = {}
    for name, value in wanted.items():
        spec = space.parameters.get(name)
        if spec is None:
            if value != NONE_METHOD:
                return None
            continue
        if spec.kind == "categorical":
            if value not in spec.choices:  # type: ignore[operator]
                return None
            params[name] = value
        elif spec.value != value:
            return None
    return params
