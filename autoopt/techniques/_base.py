"""The technique interface: a registered method with a static config and a pure ``apply``.

Lifecycle, per candidate, on the worker that builds it:

1. ``check(config, ctx)`` is called before anything runs. Returning a reason refuses the
   candidate (the trial is recorded as rejected with that reason).
2. ``apply(artifact, config, ctx)`` is called with the previous stage's output, unless the
   stage cache already holds the result for (input key, key, config, code version).
   It returns a new artifact and never mutates its input.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from autoopt.artifacts import Artifact, ArtifactKind
    from autoopt.hardware import Hardware
    from autoopt.recipe import Recipe
    from autoopt.workloads import Workload

Family = Literal["distillation", "pruning", "quantization", "precision"]


class MethodConfig(BaseModel):
    """Base of every method config: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class Context:
    """What a technique may read while it checks or builds. Never written to."""

    workload: Workload
    recipe: Recipe
    hardware: Hardware
    #: Scratch space for intermediate files (ONNX graphs); removed after the build.
    workdir: Path = field(default_factory=lambda: Path("."))
    seed: int = 0
    #: The target's device ("cpu" or "cuda"): where the candidate trains, runs and is timed.
    device: str = "cpu"

    @property
    def backend_kind(self) -> ArtifactKind:
        from autoopt import registry

        return registry.get(self.recipe.backend.key).artifact_kind  # type: ignore[union-attr]


class Technique(ABC):
    """A model transformation. Subclasses set ``key``, ``family`` and ``Config``."""

    key: ClassVar[str]
    family: ClassVar[Family]
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    #: Artifact kinds ``apply`` accepts. The pipeline exports to ONNX before techniques that
    #: only take ONNX, when the recipe's backend runs ONNX.
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch",)
    #: Config fields that change which kernels run (per-channel scales, the op types made
    #: int8), as opposed to which layers or how much: the host self-test runs every
    #: combination of their declared choices (:mod:`autoopt.selftest`).
    kernel_fields: ClassVar[tuple[str, ...]] = ()

    def check(self, config: MethodConfig, ctx: Context) -> str | None:
        """A reason this method cannot build this candidate here, or None."""
        return None

    def needs_torch(self, config: MethodConfig) -> bool:
        """Whether this configuration needs the PyTorch model even when it accepts ONNX (it
        then converts the model itself): the pipeline does not export before it."""
        return False

    @abstractmethod
    def apply(self, artifact: Artifact, config: MethodConfig, ctx: Context) -> Artifact:
        """Return the transformed artifact. Must not mutate ``artifact``."""
