"""The backend interface: turn a built artifact into a Runner that serves batches.

Lifecycle, in the measuring worker: ``unavailable_reason()`` (class-level, cheap; a backend
that cannot run on this host says why and is never imitated) → ``check(config, ctx)`` →
``compile(artifact, config, threads, device)`` → ``Runner.run`` / ``Runner.timed``. Timing itself
lives in :mod:`autoopt.measure`, not here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from autoopt.techniques._base import MethodConfig

if TYPE_CHECKING:
    from autoopt.artifacts import Artifact, ArtifactKind
    from autoopt.techniques._base import Context


class Runner(ABC):
    @abstractmethod
    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Run one batch; returns the first output as float32 numpy."""

    @abstractmethod
    def timed(self, inputs: Sequence[np.ndarray]) -> Callable[[], Any]:
        """A zero-argument call that runs the batch with inputs already converted (and on the
        device), for timing; it returns only once the device has finished the batch."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What actually runs: provider, dtypes, thread settings, graph details."""


class Backend(ABC):
    key: ClassVar[str]
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    artifact_kind: ClassVar[ArtifactKind]
    #: Config fields that change which kernels run (a compile mode, a graph optimization
    #: level), as opposed to tuning within them: the host self-test runs every combination
    #: of their declared choices (:mod:`autoopt.selftest`).
    kernel_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this backend cannot run on this host, or None if it can."""
        return None

    def check(self, config: MethodConfig, ctx: Context) -> str | None:
        """A reason this backend cannot serve this candidate (e.g. its precision), or None."""
        return None

    @abstractmethod
    def compile(
        self, artifact: Artifact, config: MethodConfig, threads: int, device: str = "cpu"
    ) -> Runner:
        """Prepare the artifact for serving on ``device`` ("cpu" or "cuda") with a fixed
        number of intra-op CPU threads."""
