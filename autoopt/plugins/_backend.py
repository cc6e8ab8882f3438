"""The backend interface: turn a built artifact into a Runner that serves batches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic

from autoopt.plugins._config import ConfigT

if TYPE_CHECKING:
    import numpy as np

    from autoopt.artifacts import Artifact, ArtifactKind
    from autoopt.plugins._context import Context


class Runner(ABC):
    """A compiled candidate, ready to serve batches of numpy inputs."""

    @abstractmethod
    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Run one batch; returns the first output as float32 numpy."""

    @abstractmethod
    def timed(self, inputs: Sequence[np.ndarray]) -> Callable[[], Any]:
        """A zero-argument call that runs the batch with inputs already converted (and on the
        device), for timing; it returns only once the device has finished the batch."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What actually runs: at least ``dtype`` and ``threads``, plus provider and graph
        details."""


class Backend(ABC, Generic[ConfigT]):
    """An inference runtime. Subclasses set ``key`` (``backend.name``), ``Config`` and
    ``artifact_kind`` (what it serves: ``"torch"`` or ``"onnx"``), and register with
    :func:`~autoopt.plugins.register`.

    Lifecycle, in the worker that measures a candidate: ``unavailable_reason()`` (class-level,
    cheap; a backend that cannot run on this host says why and is never imitated) →
    ``check(config, ctx)`` before anything is built → ``compile(artifact, config, threads,
    device)`` → ``Runner.run`` / ``Runner.timed``. Timing itself lives in
    :mod:`autoopt.measure`, not here.
    """

    key: ClassVar[str]
    Config: type[ConfigT]
    artifact_kind: ClassVar[ArtifactKind]
    #: Config fields that change which kernels run (a compile mode, a graph optimization
    #: level), as opposed to tuning within them: the host self-test runs every combination
    #: of their declared choices (:mod:`autoopt.selftest`).
    kernel_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this backend cannot run on this host (one sentence), or None if it can."""
        return None

    def check(self, config: ConfigT, ctx: Context) -> str | None:
        """A reason this backend cannot serve this candidate (e.g. its precision), or None."""
        return None

    @abstractmethod
    def compile(
        self, artifact: Artifact, config: ConfigT, threads: int, device: str = "cpu"
    ) -> Runner:
        """Prepare the artifact for serving on ``device`` ("cpu" or "cuda") with a fixed
        number of intra-op CPU threads."""
