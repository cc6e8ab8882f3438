"""The base of every method's config."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict


def _frozen(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return value


class MethodConfig(BaseModel):
    """What a user may set for one method: frozen, unknown keys rejected, hashable.

    A subclass declares its fields with their defaults and bounds; the search space declares
    which of them the search explores. A recipe holds the validated config, so equal
    candidates are equal, hash equally and serialise identically.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def training_steps(self) -> int:
        """Optimizer steps this configuration trains for (0: the method does not train). A
        method that trains through :func:`autoopt.techniques._training.train_against_teacher`
        says how many, so the pipeline can build it in rungs and keep its checkpoints."""
        return 0

    def __hash__(self) -> int:
        # Pydantic's own hash for frozen models fails on list fields (``exclude``).
        return hash((type(self), _frozen(self.model_dump())))


ConfigT = TypeVar("ConfigT", bound=MethodConfig)
