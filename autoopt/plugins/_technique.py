"""The technique interface: a registered method with a static config and a pure ``apply``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Generic

from autoopt.plugins._config import ConfigT

if TYPE_CHECKING:
    from autoopt.artifacts import Artifact, ArtifactKind
    from autoopt.plugins._context import Context
    from autoopt.plugins._families import TechniqueFamily


class Technique(ABC, Generic[ConfigT]):
    """A model transformation. Subclasses set ``key`` (``family.method``), ``family`` and
    ``Config`` (the :class:`~autoopt.plugins.MethodConfig` subclass ``ConfigT``), and register
    with :func:`~autoopt.plugins.register`.

    Lifecycle, per candidate, on the worker that builds it (the controller may also call
    ``check`` first, on its own host):

    1. ``check(config, ctx)`` before anything runs. A reason refuses the candidate (the trial
       is recorded as rejected with it).
    2. ``needs_torch(config)``, when the recipe's backend serves ONNX and this method accepts
       ONNX: whether it still needs the PyTorch model (the pipeline then exports after it).
    3. ``apply(artifact, config, ctx)`` with the previous stage's output, unless the stage
       cache already holds the result for (input key, key, config, code version). It returns a
       new artifact and never mutates its input.
    """

    key: ClassVar[str]
    family: ClassVar[TechniqueFamily]
    Config: type[ConfigT]
    #: Artifact kinds ``apply`` accepts. The pipeline exports to ONNX before techniques that
    #: only take ONNX, when the recipe's backend runs ONNX.
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch",)
    #: Config fields that change which kernels run (per-channel scales, the op types made
    #: int8), as opposed to which layers or how much: the host self-test runs every
    #: combination of their declared choices (:mod:`autoopt.selftest`).
    kernel_fields: ClassVar[tuple[str, ...]] = ()
    #: Config values the host self-test builds this method's paths with, whatever the space
    #: gives those fields: a training method trains a step or two there (its kernels do not
    #: depend on how long it trains, and the probe's train split is its calibration rows).
    selftest_config: ClassVar[dict[str, Any]] = {}

    def check(self, config: ConfigT, ctx: Context) -> str | None:
        """A reason this method cannot build this candidate here, or None."""
        return None

    def needs_torch(self, config: ConfigT) -> bool:
        """Whether this configuration needs the PyTorch model even when it accepts ONNX (it
        then converts the model itself): the pipeline does not export before it."""
        return False

    @abstractmethod
    def apply(self, artifact: Artifact, config: ConfigT, ctx: Context) -> Artifact:
        """Return the transformed artifact. Must not mutate ``artifact``."""
