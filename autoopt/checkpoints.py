"""Training checkpoints in the stage cache: a training stage that stops before its last step
(a rung, a trial cut by the time budget) is continued later, not restarted.

A checkpoint holds everything the training loop needs to go on exactly as if it had never
stopped: the model's weights, the optimizer's state, the LR schedule's, the batch order's
position and the random generator's state (dropout), and the steps done. It is stored under
a key made of the stage's own cache key and the steps done, at fixed step counts (every
``1/CHECKPOINTS`` of the stage's steps, and each rung's), so that a later build of the same
stage finds the latest one by asking for those keys, newest first. The entries are published
like every stage output (atomically), so a build killed mid-training leaves the last one it
published; each new checkpoint evicts the older ones of its stage, and the stage's completion
evicts them all (a MiniLM student's checkpoint with Adam's moments is ~200 MB).

What the pipeline hands a training technique is a :class:`TrainingSession`: how many steps
the full run has, where this build stops, the state to resume from, and where to publish
checkpoints (:func:`autoopt.techniques._training.train_against_teacher` honours it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoopt.cache import stage_key

if TYPE_CHECKING:
    from autoopt.cache import StageCache

log = logging.getLogger(__name__)
#: Checkpoints per full training run (besides the rungs'): a cut build loses at most this
#: share of its training.
CHECKPOINTS = 12
CHECKPOINT_KIND = "training"


def rung_steps(total: int, fraction: float) -> int:
    """The steps a stage of ``total`` steps trains at a rung of ``fraction`` of them."""
    if fraction >= 1.0:
        return total
    return max(1, min(total, round(total * fraction)))


def checkpoint_points(total: int, fractions: Iterable[float] = ()) -> tuple[int, ...]:
    """The step counts at which a stage of ``total`` steps publishes a checkpoint: every
    ``total / CHECKPOINTS`` steps and at each rung, below ``total``."""
    every = max(1, math.ceil(total / CHECKPOINTS))
    points = set(range(every, total, every))
    points.update(rung_steps(total, f) for f in fractions if f < 1.0)
    return tuple(sorted(p for p in points if 0 < p < total))


def output_key(full_key: str, steps: int, total: int) -> str:
    """Where a stage's output after ``steps`` of its ``total`` steps is cached: its own key
    when complete, else a key of its own (a rung's model must never pass for the full one)."""
    if steps >= total:
        return full_key
    return stage_key(full_key, "rung", {"steps": steps}, "")


@dataclass
class TrainingState:
    """A training loop's state after ``step`` steps (tensors on the CPU)."""

    step: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    #: The batch order: the generator's state when the current epoch's order was drawn, and
    #: the position in that order.
    batches: dict[str, Any]
    rng: Any
    cuda_rng: Any = None


@dataclass
class CheckpointArtifact:
    """A :class:`TrainingState` as a stage-cache entry (not a model: no stage builds on it)."""

    state: TrainingState
    kind: str = CHECKPOINT_KIND
    FILENAME = "training.pt"

    def save(self, directory: Path) -> Path:
        import torch

        path = directory / self.FILENAME
        torch.save(self.state.__dict__, path)
        return path

    @classmethod
    def load(cls, directory: Path) -> TrainingState:
        import torch

        data = torch.load(directory / cls.FILENAME, weights_only=False, map_location="cpu")
        return TrainingState(**data)


@dataclass
class TrainingSession:
    """One build of one training stage: its full length, where it stops, what it resumes."""

    total: int
    stop_at: int
    resume: TrainingState | None = None
    #: Step counts at which a checkpoint is published.
    points: tuple[int, ...] = ()
    publish: Callable[[TrainingState], None] = field(default=lambda _s: None, repr=False)

    def wants_checkpoint(self, step: int) -> bool:
        return step in self.points and step < self.total


class CheckpointStore:
    """The checkpoints of one training stage (its full cache key) in the stage cache."""

    def __init__(self, cache: StageCache, full_key: str, points: tuple[int, ...]) -> None:
        self.cache, self.full_key, self.points = cache, full_key, points

    def key(self, step: int) -> str:
        return stage_key(self.full_key, "checkpoint", {"steps": step}, "")

    def latest(self, upto: int) -> TrainingState | None:
        """The newest checkpoint at or before ``upto`` steps, if any survives."""
        for step in sorted((p for p in self.points if p <= upto), reverse=True):
            entry = self.cache.lookup(self.key(step))
            if entry is None:
                continue
            try:
                return CheckpointArtifact.load(entry.path)
            except Exception as e:  # noqa: BLE001 - a damaged checkpoint: try an older one
                log.warning("checkpoint %s unreadable (%s); trying an older one", entry.key, e)
        return None

    def publish(self, state: TrainingState) -> None:
        """Store ``state``, then drop this stage's older checkpoints (the newest is enough
        to go on from)."""
        self.cache.publish(
            self.key(state.step),
            CheckpointArtifact(state),  # type: ignore[arg-type]
            {"stage": "checkpoint", "steps": state.step, "parent": self.full_key},
        )
        for step in self.points:
            if step < state.step:
                self.cache.evict(self.key(step))

    def clear(self) -> None:
        """The stage is complete: its checkpoints are no longer needed."""
        for step in self.points:
            self.cache.evict(self.key(step))
