"""Declared search spaces: which technique methods and settings the search may try.

A space is a flat, ordered mapping of Optuna parameter names to declarations::

    parameters:
      pruning.method: [none, structured]          # list: a categorical choice
      pruning.structured.amount: {low: 0.1, high: 0.6}
      pruning.structured.recovery_steps: {choices: [0, 100, 300]}
      quantization.static_int8.exclude: {choices: [[], [fc2]]}
      backend.onnxruntime.graph_optimization_level: all   # scalar: fixed, not searched

Names are ``<family>.method`` (which method of a family, ``none`` to skip it) and
``<family>.<method>.<field>`` (a field of that method's config). A field parameter is only
sampled when its method was chosen; ``when`` adds further conditions on earlier parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from autoopt.config._strict import Strict
from autoopt.plugins import FAMILIES

Scalar = bool | int | float | str | None


class ParameterSpec(Strict):
    """One declared parameter: categorical ``choices``, a numeric range, or a fixed ``value``."""

    choices: list[Scalar | list[Scalar]] | None = None
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    type: Literal["int", "float"] | None = None
    value: Scalar | list[Scalar] = None
    when: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"choices": data}
        if not isinstance(data, dict):
            return {"value": data}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> ParameterSpec:
        has_range = self.low is not None or self.high is not None
        kinds = sum([self.choices is not None, has_range])
        if kinds > 1:
            raise ValueError("give either 'choices' or 'low'/'high', not both")
        if self.choices is not None and len(self.choices) == 0:
            raise ValueError("'choices' must not be empty")
        if has_range:
            if self.low is None or self.high is None:
                raise ValueError("a range needs both 'low' and 'high'")
            if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
                raise ValueError(f"'low' ({self.low}) must be <= 'high' ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log range needs 'low' > 0")
            if self.log and self.step is not None:
                raise ValueError("'step' cannot be combined with 'log'")
        return self

    @field_validator("choices")
    @classmethod
    def _distinct(cls, v: list[Any] | None) -> list[Any] | None:
        if v is not None:
            keys = [encode_choice(c) for c in v]
            if len(set(keys)) != len(keys):
                raise ValueError(f"'choices' has duplicates: {v}")
        return v

    @property
    def kind(self) -> Literal["categorical", "int", "float", "fixed"]:
        if self.choices is not None:
            return "categorical"
        if self.low is None:
            return "fixed"
        if self.type is not None:
            return self.type
        ints = all(isinstance(x, int) for x in (self.low, self.high, self.step) if x is not None)
        return "int" if ints else "float"

    @property
    def is_finite(self) -> bool:
        return self.kind in ("categorical", "fixed", "int") or self.step is not None

    def grid_values(self) -> list[Any]:
        """Every value this parameter can take (only for finite parameters)."""
        if self.kind == "categorical":
            return [encode_choice(c) for c in self.choices or []]
        if self.kind == "fixed":
            return [encode_choice(self.value)]
        step = self.step or 1
        n = int(math.floor((self.high - self.low) / step + 1e-9)) + 1  # type: ignore[operator]
        values = [self.low + i * step for i in range(n)]  # type: ignore[operator]
        return [int(v) for v in values] if self.kind == "int" else [float(v) for v in values]

    def example_values(self) -> list[Any]:
        """A few values that cover this parameter: every choice, or both ends of a range."""
        if self.kind in ("categorical", "fixed"):
            return self.grid_values()
        cast = int if self.kind == "int" else float
        return [cast(self.low), cast(self.high)]  # type: ignore[arg-type]


def encode_choice(value: Any) -> Scalar:
    """Optuna categoricals hold scalars: a list choice is stored as 'a+b' ('-' for empty)."""
    if isinstance(value, list):
        return "+".join(str(v) for v in value) if value else "-"
    return value


def decode_choice(spec: ParameterSpec, value: Any) -> Any:
    if spec.kind == "categorical" and any(isinstance(c, list) for c in spec.choices or []):
        if isinstance(value, list):
            return value
        return [] if value in ("-", "") else str(value).split("+")
    return value


class SearchSpace(Strict):
    description: str = ""
    parameters: dict[str, ParameterSpec]

    @field_validator("parameters")
    @classmethod
    def _names(cls, v: dict[str, ParameterSpec]) -> dict[str, ParameterSpec]:
        seen: list[str] = []
        for name, spec in v.items():
            parts = name.split(".")
            if parts[0] not in FAMILIES or len(parts) not in (2, 3):
                raise ValueError(
                    f"parameter '{name}' must be '<family>.method' or '<family>.<method>.<field>'"
                    f" with family one of {', '.join(FAMILIES)}"
                )
            if len(parts) == 2 and parts[1] != "method":
                raise ValueError(f"parameter '{name}': did you mean '{parts[0]}.method'?")
            for cond in spec.when:
                if cond not in seen:
                    raise ValueError(
                        f"parameter '{name}': 'when' refers to '{cond}', which is not declared "
                        "before it"
                    )
            seen.append(name)
        return v

    def method_choices(self, family: str) -> list[str]:
        spec = self.parameters.get(f"{family}.method")
        if spec is None:
            return []
        values = spec.choices if spec.kind == "categorical" else [spec.value]
        return [str(v) for v in values or []]

    def is_active(self, name: str, sampled: Mapping[str, Any]) -> bool:
        """Whether ``name`` is sampled given the values sampled before it."""
        parts = name.split(".")
        if len(parts) == 3:
            method_param = f"{parts[0]}.method"
            if method_param in self.parameters and sampled.get(method_param) != parts[1]:
                return False
        for cond, expected in self.parameters[name].when.items():
            allowed = expected if isinstance(expected, list) else [expected]
            if sampled.get(cond) not in allowed:
                return False
        return True
