"""The distillation loss and the short training loop shared by distillation and recovery.

Both train a (smaller or pruned) student to imitate the workload's fp32 teacher on the
workload's *train* split; the evaluation split is never touched here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from autoopt.errors import CandidateError
from autoopt.plugins import MethodConfig

if TYPE_CHECKING:
    import torch

    from autoopt.checkpoints import TrainingSession, TrainingState
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

OutputKind = Literal["logits", "embedding"]
#: How the learning rate decays after the warm-up: to 0 along a half cosine, linearly, or not.
Schedule = Literal["cosine", "linear", "constant"]

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


class _Batches:
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


def feature_hooks(workload: Workload) -> tuple[FeaturesHook | None, LayerFeaturesHook | None]:
    """The ``features`` and ``layer_features`` hooks training uses: the workload's own, or,
    when it gives neither, those its model's layout gives (the last block's hidden states,
    and every block's); None where neither has one."""
    if workload.features is not None or workload.layer_features is not None:
        return workload.features, workload.layer_features
    from autoopt.layouts import LayoutFeatures, find_layout

    if find_layout(workload.model) is None:
        return None, None
    hooks = LayoutFeatures.for_inputs(workload.input_names)
    return hooks.features, hooks.layer_features


def feature_refusal(
    workload: Workload,
    feature_weight: float,
    layer_weight: float = 0.0,
    attention_weight: float = 0.0,
) -> str | None:
    """Why the feature, layer or attention-relation loss asked for cannot be computed for
    ``workload``, or None."""
    from autoopt.layouts import find_layout, missing_layout_reason

    if attention_weight > 0 and find_layout(workload.model) is None:
        return (
            "attention_weight needs the model's query/key/value layers: "
            f"{missing_layout_reason(workload.model)}; or set attention_weight to 0"
        )
    features, layers = feature_hooks(workload)
    for name, weight, hook, what in (
        ("feature_weight", feature_weight, features, "features"),
        ("layer_weight", layer_weight, layers, "layer_features"),
    ):
        if weight > 0 and hook is None:
            from autoopt.layouts import missing_layout_reason

            return (
                f"{name} needs per-block hidden states: workload '{workload.name}' gives no "
                f"{what} hook, and {missing_layout_reason(workload.model)}; or set {name} to 0"
            )
    return None


@dataclass(frozen=True)
class TeacherTargets:
    """The teacher's outputs on the train split, computed once and shared by every training
    run in the process (a build worker trains many students against the same teacher)."""

    outputs: torch.Tensor
    #: Per-position features (:func:`feature_hooks`), zero-padded to the split's longest
    #: trimmed sample and stored in fp16 (targets, not weights); None without the hook.
    features: torch.Tensor | None
    #: Mean square of the real (unpadded) feature values: the token loss is relative to it.
    feature_scale: float


_TARGETS: dict[tuple[int, str, bool, str], tuple[torch.nn.Module, TeacherTargets]] = {}
TARGET_BATCH = 64


def _trim(workload: Workload, batch: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(workload.trim_batch(tuple(batch))) if workload.trim_batch else batch


def teacher_targets(workload: Workload, device: str = "cpu") -> TeacherTargets:
    """The teacher's outputs (and features) on ``workload.train``, computed on ``device`` and
    kept there, cached for the last teacher, split and device seen in this process."""
    import torch

    from autoopt.artifacts import on_device

    features_hook, _ = feature_hooks(workload)
    # The entry holds the teacher, so its id cannot be reused by another model while cached.
    key = (
        id(workload.model),
        workload.train.fingerprint(),
        features_hook is not None,
        device,
    )
    if key in _TARGETS:
        return _TARGETS[key][1]
    model = on_device(workload.model, device)  # the workload's own teacher stays on the CPU
    inputs = [torch.from_numpy(np.ascontiguousarray(x)) for x in workload.train.inputs]
    outputs, features, masks = [], [], []
    with torch.inference_mode():
        for start in range(0, len(workload.train), TARGET_BATCH):
            batch = _trim(workload, [x[start : start + TARGET_BATCH] for x in inputs])
            batch = [x.to(device) for x in batch]
            if features_hook is not None:
                out, feat, mask = features_hook(model, tuple(batch))
                features.append(feat.float())
                masks.append(mask)
            else:
                out = model(*batch)
            outputs.append(out.float())
    stacked = None
    scale = 1.0
    if features:
        length = max(f.shape[1] for f in features)
        stacked = torch.zeros(
            len(workload.train), length, features[0].shape[-1], dtype=torch.float16, device=device
        )
        total, count = 0.0, 0
        for i, (feat, mask) in enumerate(zip(features, masks, strict=True)):
            real = feat * mask.unsqueeze(-1)
            stacked[i * TARGET_BATCH : i * TARGET_BATCH + len(feat), : feat.shape[1]] = real
            total += float(real.pow(2).sum())
            count += int(mask.sum()) * feat.shape[-1]
        scale = total / max(count, 1)
    targets = TeacherTargets(torch.cat(outputs), stacked, scale)
    _TARGETS.clear()  # one teacher per worker at a time: free the previous workload's
    _TARGETS[key] = (workload.model, targets)
    return targets


@dataclass(frozen=True)
class _Objective:
    """The loss of one training batch: the distillation loss on the outputs, plus the
    per-position feature term and the per-layer term where the hooks (:func:`feature_hooks`)
    allow them and their weights are set (a weight is 0 where its term is not used)."""

    workload: Workload
    features: FeaturesHook | None
    layer_features: LayerFeaturesHook | None
    teacher: TeacherTargets
    #: The train split's labels, for the classification loss only.
    labels: torch.Tensor | None
    temperature: float
    alpha: float
    feature_weight: float
    layer_weight: float
    #: The teacher itself, run beside the student to match layers or attention relations
    #: (too large to keep for a whole split).
    teacher_model: torch.nn.Module | None
    attention_weight: float = 0.0

    @classmethod
    def make(
        cls,
        workload: Workload,
        device: str,
        *,
        temperature: float,
        alpha: float,
        feature_weight: float,
        layer_weight: float,
        attention_weight: float = 0.0,
    ) -> _Objective:
        import torch

        from autoopt.artifacts import on_device

        labels = None
        # Labels are only used by the classification loss; an embedding split may carry none.
        if workload.output_kind == "logits" and workload.train.targets is not None:
            labels = torch.from_numpy(np.asarray(workload.train.targets)).to(device)
        features, layer_features = feature_hooks(workload)
        use_layers = layer_weight > 0 and layer_features is not None
        use_features = feature_weight > 0 and features is not None
        teacher = teacher_targets(workload, device)
        return cls(
            workload,
            features,
            layer_features,
            teacher,
            labels,
            temperature,
            alpha,
            feature_weight if use_features else 0.0,
            layer_weight if use_layers else 0.0,
            on_device(workload.model, device).eval() if use_layers or attention_weight else None,
            attention_weight,
        )

    def __call__(
        self, student: torch.nn.Module, batch: tuple[torch.Tensor, ...], idx: torch.Tensor
    ) -> torch.Tensor:
        if not self.attention_weight:
            return self._loss(student, batch, idx)
        from autoopt.techniques._relations import capture_qkv

        with capture_qkv(student) as student_qkv:
            loss = self._loss(student, batch, idx)
        return loss + self.attention_weight * self._relations(student, student_qkv, batch)

    def _relations(
        self,
        student: torch.nn.Module,
        student_qkv: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
        batch: tuple[torch.Tensor, ...],
    ) -> torch.Tensor:
        """The attention-relation loss of the student's blocks against the teacher blocks
        they stand for (:mod:`autoopt.techniques._relations`)."""
        import torch

        from autoopt.techniques._relations import (
            capture_qkv,
            relation_heads,
            relation_loss,
            teacher_blocks,
        )

        assert self.teacher_model is not None  # noqa: S101 - make() sets it with the weight
        with torch.no_grad(), capture_qkv(self.teacher_model) as teacher_qkv:
            self.teacher_model(*batch)
        names = list(self.workload.input_names)
        positions = student_qkv[0][0].shape[:2]
        if "attention_mask" in names and tuple(
            batch[names.index("attention_mask")].shape
        ) == tuple(positions):
            mask = batch[names.index("attention_mask")].bool()
        else:  # no padding mask (or one of other positions): every position counts
            mask = torch.ones(positions, dtype=torch.bool, device=batch[0].device)
        pairs = list(enumerate(teacher_blocks(student, len(student_qkv))))
        return relation_loss(
            student_qkv, teacher_qkv, pairs, mask, relation_heads(self.teacher_model)
        )

    def _loss(
        self, student: torch.nn.Module, batch: tuple[torch.Tensor, ...], idx: torch.Tensor
    ) -> torch.Tensor:
        layer_loss = None
        if self.layer_weight:
            out, feat, mask, layer_loss = self._with_layers(student, batch)
        elif self.feature_weight:
            assert self.features is not None  # noqa: S101 - make() checked it
            out, feat, mask = self.features(student, batch)
        else:
            out = student(*batch)
        labels = None if self.labels is None else self.labels[idx]
        loss = kd_loss(
            out,
            self.teacher.outputs[idx],
            labels,
            self.workload.output_kind,
            self.temperature,
            self.alpha,
        )
        if self.feature_weight:
            assert self.teacher.features is not None  # noqa: S101 - computed with the hook
            want = self.teacher.features[idx, : feat.shape[1]].float()
            feature_loss = relative_error(feat, want, mask, self.teacher.feature_scale)
            loss = loss + self.feature_weight * feature_loss
        if layer_loss is not None:
            loss = loss + self.layer_weight * layer_loss
        return loss

    def _with_layers(
        self, student: torch.nn.Module, batch: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The student's outputs and features, and its layers' mean distance to the teacher
        layers they stand for (None for a one-layer student: its last layer is the output)."""
        import torch

        hook = self.layer_features
        assert hook is not None and self.teacher_model is not None  # noqa: S101 - make()
        out, feat, mask, states, layers = hook(student, batch)
        with torch.no_grad():
            *_, want_states, teacher_layers = hook(self.teacher_model, batch)
        pairs = [
            (state, want_states[teacher_layers.index(layer)])
            for state, layer in zip(states[:-1], layers[:-1], strict=True)
        ]
        if not pairs:
            return out, feat, mask, None
        total = relative_error(*pairs[0], mask)
        for state, want in pairs[1:]:
            total = total + relative_error(state, want, mask)
        return out, feat, mask, total / len(pairs)


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

    objective = _Objective.make(
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
    if session is not None and session.total != steps:
        raise CandidateError(
            f"training session for {session.total} steps given to a run of {steps} steps"
        )
    stop = min(session.stop_at, steps) if session is not None else steps
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
        batches = _Batches(len(workload.train), batch_size, torch.Generator().manual_seed(seed))
        start = 0
        if session is not None and session.resume is not None:
            start = _restore(session.resume, student, opt, sched, batches, device)
        student.train()
        for step in range(start, stop):
            idx = next(batches)
            batch = [x.to(device) for x in _trim(workload, [x[idx] for x in inputs])]
            loss = objective(student, tuple(batch), idx.to(device))
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
            if session is not None and session.wants_checkpoint(step + 1):
                session.publish(_state(step + 1, student, opt, sched, batches, device))
    return student.cpu().eval()


def _state(
    step: int,
    student: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    batches: _Batches,
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


def _restore(
    state: TrainingState,
    student: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    batches: _Batches,
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
    import math

    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    return 1.0


def relative_error(
    got: torch.Tensor, want: torch.Tensor, mask: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """Mean squared error over the positions where ``mask`` is true, relative to ``scale``
    (by default the mean square of ``want`` there): the same size for every layer or feature,
    whatever its magnitude."""
    import torch

    m = mask.unsqueeze(-1).to(torch.float32)
    count = (m.sum() * got.shape[-1]).clamp_min(1)
    if scale is None:
        scale = float((want.float() * m).pow(2).sum() / count) or 1.0
    return ((got.float() - want.float()) * m).pow(2).sum() / scale / count


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
