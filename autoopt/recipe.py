"""A candidate recipe: a pure, hashable description of how to build one candidate.

A recipe holds one validated method config per family; it knows no registry. Recipes are made
from names (sampled parameters, a stored recipe, a method key) in :mod:`autoopt.resolve`,
which fills in every default, so equal candidates are equal, hash equally and serialise
identically (:meth:`Recipe.to_json`, :meth:`Recipe.digest`: study records and stage-cache keys
depend on that).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# The private module: the package's Context refers to Recipe.
from autoopt.plugins._families import FAMILIES

if TYPE_CHECKING:
    from autoopt.plugins._config import MethodConfig


@dataclass(frozen=True)
class Step:
    """One technique or backend method with its validated config."""

    key: str
    config: MethodConfig

    @property
    def family(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def method(self) -> str:
        return self.key.split(".", 1)[1]

    @property
    def params(self) -> dict[str, Any]:
        """Every field as JSON values, in name order: what a recipe serialises."""
        return dict(sorted(self.config.model_dump(mode="json").items()))

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "config": self.params}

    def describe(self) -> str:
        """``method(field=value,...)`` with only the fields that differ from the defaults."""
        try:
            defaults = type(self.config)().model_dump(mode="json")
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

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def describe(self) -> str:
        """One line, e.g. ``kd(width=0.5,...) > structured(amount=0.3) > fp32 @ onnxruntime``."""
        parts = [s.describe() for s in (self.distillation, self.pruning, self.quantization) if s]
        parts.append(self.precision.method)
        return " > ".join(parts) + f" @ {self.backend.describe()}"
