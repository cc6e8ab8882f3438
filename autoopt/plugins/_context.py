"""What a technique or backend may read while it checks or builds a candidate."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoopt.artifacts import ArtifactKind
    from autoopt.checkpoints import TrainingSession
    from autoopt.hardware import Hardware
    from autoopt.recipe import Recipe
    from autoopt.workloads import Workload


@dataclass
class Context:
    """The candidate being built and where. Never written to.

    The pipeline makes it (:func:`autoopt.pipeline.make_context`), resolving what the recipe's
    backend serves.
    """

    workload: Workload
    recipe: Recipe
    hardware: Hardware
    #: Scratch space for intermediate files (ONNX graphs); removed after the build.
    workdir: Path = field(default_factory=lambda: Path("."))
    seed: int = 0
    #: The target's device ("cpu" or "cuda"): where the candidate trains, runs and is timed.
    device: str = "cpu"
    #: What the recipe's backend serves: a PyTorch module or an ONNX graph.
    backend_kind: ArtifactKind = field(kw_only=True)
    #: For the stage being built, when it trains: where its training resumes and stops (set
    #: by the pipeline on the stage's own copy of the context; None: train in one go).
    training: TrainingSession | None = field(default=None, kw_only=True)
