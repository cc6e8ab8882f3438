"""What a training run's state is made of, and how it resumes: the batch order, the learning
rate's schedule, and the checkpoint of weights, optimizer, schedule, batches and random state
(:mod:`autoopt.checkpoints` stores it)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

    from autoopt.checkpoints import TrainingState

#: How the learning rate decays after the warm-up: to 0 along a half cosine, linearly, or not.
Schedule = Literal["cosine", "linear", "constant"]


class Batches:
    """Endless shuffled index batches: a fresh permutation per epoch, seeded; its position
    can be saved and restored, so that continued training draws the batches training in one
    go would have drawn."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.epoch: tuple[torch.Tensor, ...] = ()
        self.epoch_state: torch.Tensor | None = None
        self.position = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        if self.position >= len(self.epoch):
            self._draw(None)
        batch = self.epoch[self.position]
        self.position += 1
        return batch

    def _draw(self, state: torch.Tensor | None) -> None:
        import torch

        if state is not None:
            self.generator.set_state(state)
        self.epoch_state = self.generator.get_state()
        self.epoch = torch.randperm(self.n, generator=self.generator).split(self.batch_size)
        self.position = 0

    def state(self) -> dict[str, object]:
        return {"epoch_state": self.epoch_state, "position": self.position}

    def restore(self, state: dict[str, object]) -> None:
        if state.get("epoch_state") is not None:
            self._draw(state["epoch_state"])  # type: ignore[arg-type]
            self.position = int(state["position"])  # type: ignore[call-overload]


def training_state(
    step: int,
    student: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    batches: Batches,
    device: str,
) -> TrainingState:
    """Everything continued training needs, on the CPU (the cache stores CPU tensors)."""
    import torch

    from autoopt.checkpoints import TrainingState

    def cpu(value: object) -> object:
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().clone()
        if isinstance(value, dict):
            return {k: cpu(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cpu(v) for v in value]
        return value

    return TrainingState(
        step=step,
        model=cpu(student.state_dict()),  # type: ignore[arg-type]
        optimizer=cpu(opt.state_dict()),  # type: ignore[arg-type]
        scheduler=sched.state_dict(),
        batches=batches.state(),
        rng=torch.get_rng_state(),
        cuda_rng=torch.cuda.get_rng_state() if device == "cuda" else None,
    )


def restore_training_state(
    state: TrainingState,
    student: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    batches: Batches,
    device: str,
) -> int:
    """Put a checkpoint back (the student is already on ``device``); returns its steps."""
    import torch

    student.load_state_dict(state.model)
    opt.load_state_dict(state.optimizer)  # moves the moments to the parameters' device
    sched.load_state_dict(state.scheduler)
    batches.restore(state.batches)
    torch.set_rng_state(state.rng)
    if device == "cuda" and state.cuda_rng is not None:
        torch.cuda.set_rng_state(state.cuda_rng)
    return state.step


def lr_factor(step: int, steps: int, schedule: Schedule, warmup_steps: int = 0) -> float:
    """The learning rate at ``step`` (0-based) as a fraction of the peak: a linear warm-up
    over ``warmup_steps`` (from 1/warmup_steps), then ``schedule`` from 1 towards 0 at
    ``steps``. Warming up keeps Adam's first, poorly estimated steps from undoing what the
    student copied from the teacher."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    return 1.0
