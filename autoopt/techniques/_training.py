"""The distillation loss and the short training loop shared by distillation and recovery.

Both train a (smaller or pruned) student to imitate the workload's fp32 teacher on the
workload's *train* split; the evaluation split is never touched here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

    from autoopt.workloads import Split

logger = logging.getLogger(__name__)

OutputKind = Literal["logits", "embedding"]

#: Recovery fine-tuning after pruning uses the classic KD settings; the search explores the
#: number of steps and the learning rate, which matter far more.
RECOVERY_TEMPERATURE = 4.0
RECOVERY_ALPHA = 0.7


def kd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    targets: torch.Tensor | None,
    output_kind: OutputKind,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """The distillation loss for one batch.

    ``logits``: ``alpha * T² * KL(teacher_T ‖ student_T) + (1 - alpha) * CE(student, labels)``
    (Hinton et al.); without labels the soft term alone. ``embedding``: ``alpha * (1 - cos) +
    (1 - alpha) * relative squared error``; the temperature does not apply. The relative error
    (divided by the teacher's squared norm) keeps both terms on the same scale whatever the
    embedding's magnitude, and makes the student match the teacher's norm too.
    """
    import torch.nn.functional as F

    student = student.float()
    teacher = teacher.float()
    if output_kind == "logits":
        t = temperature
        soft = F.kl_div(
            F.log_softmax(student / t, dim=-1),
            F.softmax(teacher / t, dim=-1),
            reduction="batchmean",
        ) * (t * t)
        if targets is None or alpha >= 1.0:
            return soft
        hard = F.cross_entropy(student, targets)
        return alpha * soft + (1.0 - alpha) * hard
    s = student.reshape(len(student), -1)
    tt = teacher.reshape(len(teacher), -1)
    cos = F.cosine_similarity(s, tt, dim=1).mean()
    rel = ((s - tt).pow(2).sum(1) / tt.pow(2).sum(1).clamp_min(1e-12)).mean()
    return alpha * (1.0 - cos) + (1.0 - alpha) * rel


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled index batches: a fresh permutation per epoch, seeded."""
    import torch

    while True:
        yield from torch.randperm(n, generator=generator).split(batch_size)


def train_against_teacher(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    split: Split,
    *,
    output_kind: OutputKind,
    steps: int,
    lr: float,
    batch_size: int,
    temperature: float,
    alpha: float,
    seed: int,
) -> torch.nn.Module:
    """Train ``student`` in place for ``steps`` Adam steps (cosine-decayed LR) and return it in
    eval mode. The teacher is only run, under ``no_grad``; its mode is not touched (it is the
    workload's shared model and is already in eval mode).
    """
    import torch

    n = len(split)
    inputs = [torch.from_numpy(np.ascontiguousarray(x)) for x in split.inputs]
    targets = None if split.targets is None else torch.from_numpy(np.asarray(split.targets))
    # Labels are only used by the classification loss; an embedding split may carry none.
    if output_kind != "logits":
        targets = None
    params = [p for p in student.parameters() if p.requires_grad]
    # A caller inside inference_mode (a measuring worker) must still be able to train here;
    # fork_rng keeps dropout's draws from the global generator deterministic and private.
    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        torch.random.fork_rng(devices=[]),
    ):
        torch.manual_seed(seed)
        opt = torch.optim.Adam(params, lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        gen = torch.Generator().manual_seed(seed)
        batches = _batches(n, batch_size, gen)
        student.train()
        for step in range(steps):
            idx = next(batches)
            batch = [x[idx] for x in inputs]
            with torch.no_grad():
                t_out = teacher(*batch)
            loss = kd_loss(
                student(*batch),
                t_out,
                None if targets is None else targets[idx],
                output_kind,
                temperature,
                alpha,
            )
            if not torch.isfinite(loss):
                from autoopt.errors import CandidateError

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
    return student.eval()


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
