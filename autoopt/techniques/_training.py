"""The distillation loss and the short training loop shared by distillation and recovery.

Both train a (smaller or pruned) student to imitate the workload's fp32 teacher on the
workload's *train* split; the evaluation split is never touched here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from autoopt.errors import CandidateError
from autoopt.plugins import MethodConfig
from autoopt.techniques._objective import Objective, trim
from autoopt.techniques._run_state import (
    Batches,
    Schedule,
    lr_factor,
    restore_training_state,
    training_state,
)

if TYPE_CHECKING:
    import torch

    from autoopt.checkpoints import TrainingSession
    from autoopt.plugins import Context
    from autoopt.workloads import Workload

    FeaturesHook = Callable[
        [torch.nn.Module, tuple[torch.Tensor, ...]],
        tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ]
    LayerFeaturesHook = Callable[
        [torch.nn.Module, tuple[torch.Tensor, ...]],
        tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor], list[int]],
    ]

logger = logging.getLogger(__name__)


#: Recovery fine-tuning after pruning uses the classic KD settings; the search explores the
#: number of steps and the learning rate, which matter far more.
RECOVERY_TEMPERATURE = 4.0
RECOVERY_ALPHA = 0.7


def train_against_teacher(
    student: torch.nn.Module,
    workload: Workload,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    temperature: float,
    alpha: float,
    seed: int,
    feature_weight: float = 0.0,
    layer_weight: float = 0.0,
    device: str = "cpu",
    session: TrainingSession | None = None,
    attention_weight: float = 0.0,
    schedule: Schedule = "cosine",
    warmup_steps: int = 0,
) -> torch.nn.Module:
    """Train ``student`` in place for ``steps`` Adam steps against the workload's fp32
    teacher on its train split, and return it in eval mode. The learning rate rises linearly
    over ``warmup_steps``, then follows ``schedule`` (:func:`lr_factor`).

    With a ``session`` (:mod:`autoopt.checkpoints`), training goes on from the session's
    checkpoint (weights, Adam's moments, the LR schedule, the batch order and the random
    state) and stops after ``session.stop_at`` of the ``steps``, publishing checkpoints on
    the way: the LR follows the schedule of the full ``steps`` whatever the stop, so the
    model continued to the end is the model trained in one go.

    Training runs on ``device``; the student is back on the CPU when this returns (the stage
    cache stores CPU models).

    The teacher's outputs are computed once (:func:`teacher_targets`). Batches are trimmed
    by the workload's ``trim_batch`` (padding every sample of the batch has: a batch of short
    sentences costs what its longest sentence costs, not the model's maximum length). With
    ``feature_weight`` and the workload's ``features`` hook, the student also matches the
    teacher's per-position features (for a transformer, every token's last hidden state),
    a far denser signal than the pooled output alone. With ``layer_weight`` and the workload's
    ``layer_features`` hook, each of the student's layers but its last also matches the hidden
    states of the teacher layer it stands for; the teacher runs beside the student for those
    (they are too large to keep for a whole split). With ``attention_weight``, each of the
    student's blocks also matches the self-attention relations of the teacher block it
    stands for (:mod:`autoopt.techniques._relations`; the teacher runs beside it too).
    """
    import torch

    objective = Objective.make(
        workload,
        device,
        temperature=temperature,
        alpha=alpha,
        feature_weight=feature_weight,
        layer_weight=layer_weight,
        attention_weight=attention_weight,
    )
    inputs = [torch.from_numpy(np.ascontiguousarray(x)) for x in workload.train.inputs]
    student.to(device)
    params = [p for p in student.parameters() if p.requires_grad]
    # A caller inside inference_mode (a measuring worker) must still be able to train here;
    # fork_rng keeps dropout's draws from the global generator deterministic and private.
    stop = _stop_at(session, steps)
    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        torch.random.fork_rng(devices=[torch.cuda.current_device()] if device == "cuda" else []),
    ):
        torch.manual_seed(seed)
        opt = torch.optim.Adam(params, lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, steps, schedule, warmup_steps)
        )
        batches = Batches(len(workload.train), batch_size, torch.Generator().manual_seed(seed))
        start = 0
        if session is not None and session.resume is not None:
            start = restore_training_state(session.resume, student, opt, sched, batches, device)
        student.train()
        for step in range(start, stop):
            idx = next(batches)
            batch = [x.to(device) for x in trim(workload, [x[idx] for x in inputs])]
            _step(objective(student, tuple(batch), idx.to(device)), opt, sched, step, steps)
            if session is not None and session.wants_checkpoint(step + 1):
                session.publish(training_state(step + 1, student, opt, sched, batches, device))
    return student.cpu().eval()


def _stop_at(session: TrainingSession | None, steps: int) -> int:
    """Where this build stops training: the session's rung, or the end."""
    if session is None:
        return steps
    if session.total != steps:
        raise CandidateError(
            f"training session for {session.total} steps given to a run of {steps} steps"
        )
    return min(session.stop_at, steps)


def _step(
    loss: torch.Tensor,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    step: int,
    steps: int,
) -> None:
    """One optimizer step on ``loss``; a loss that is no longer finite ends the training."""
    import torch

    if not torch.isfinite(loss):
        raise CandidateError(
            f"training diverged at step {step + 1}/{steps} (loss {loss.item()}); "
            "lower the learning rate"
        )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    if (step + 1) % 100 == 0:
        logger.debug("step %d/%d loss %.4f", step + 1, steps, loss.item())


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class RecoveryConfig(MethodConfig):
    """Recovery fine-tuning shared by the pruning methods (0 steps: no recovery)."""

    recovery_steps: int = Field(default=0, ge=0, le=1_000_000)
    recovery_lr: float = Field(default=1e-3, gt=0.0, le=1.0)
    recovery_batch_size: int = Field(default=64, ge=1, le=65_536)
    #: Weight of the per-position feature loss (a ``features`` hook or a model layout).
    recovery_feature_weight: float = Field(default=0.0, ge=0.0, le=100.0)

    @property
    def training_steps(self) -> int:
        return self.recovery_steps


def recover(model: torch.nn.Module, config: RecoveryConfig, ctx: Context) -> None:
    """Fine-tune a pruned ``model`` in place against the teacher, as ``config`` asks."""
    if config.recovery_steps == 0:
        return
    train_against_teacher(
        model,
        ctx.workload,
        steps=config.recovery_steps,
        lr=config.recovery_lr,
        batch_size=config.recovery_batch_size,
        temperature=RECOVERY_TEMPERATURE,
        alpha=RECOVERY_ALPHA,
        seed=ctx.seed,
        feature_weight=config.recovery_feature_weight,
        device=ctx.device,
        session=ctx.training,
    )
