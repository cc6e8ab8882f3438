"""The loss a student trains on: the distillation loss on the outputs, the teacher's targets
(computed once per worker), and the feature, layer and attention-relation terms.

Both train a (smaller or pruned) student to imitate the workload's fp32 teacher on the
workload's *train* split; the evaluation split is never touched here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

    from autoopt.workloads import Workload

    FeaturesHook = Callable[
        [torch.nn.Module, tuple[torch.Tensor, ...]],
        tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ]
    LayerFeaturesHook = Callable[
        [torch.nn.Module, tuple[torch.Tensor, ...]],
        tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor], list[int]],
    ]

OutputKind = Literal["logits", "embedding"]


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


def trim(workload: Workload, batch: list[torch.Tensor]) -> list[torch.Tensor]:
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
            batch = trim(workload, [x[start : start + TARGET_BATCH] for x in inputs])
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
class Objective:
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
    ) -> Objective:
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
