"""Distillation: train a smaller student to imitate the teacher.

The student is the workload's (``make_student``), or, for a model with a layout
(:mod:`autoopt.layouts`), a copy of the teacher that keeps some of its blocks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from autoopt.artifacts import TorchArtifact
from autoopt.errors import CandidateError
from autoopt.plugins import MethodConfig, Technique, register
from autoopt.techniques._objective import feature_refusal
from autoopt.techniques._training import train_against_teacher

if TYPE_CHECKING:
    import torch

    from autoopt.artifacts import Artifact, ArtifactKind
    from autoopt.plugins import Context


class KnowledgeDistillationConfig(MethodConfig):
    #: Passed to the workload's ``make_student`` (with every other field); how the width is
    #: interpreted (channels, hidden size, layers) is the workload's choice. A layout's
    #: layer-dropped student keeps this fraction of the teacher's blocks.
    width: float = Field(default=0.5, gt=0.0, le=1.0)
    #: For layered students (transformers): how many of the teacher's layers to keep; when
    #: unset it is derived from ``width``.
    layers: int | None = Field(default=None, ge=1, le=1024)
    #: For layered students: exactly which of the teacher's layers to keep (0-based indices);
    #: wins over ``layers`` (which, when also given, must be its length).
    keep: list[int] | None = Field(default=None, min_length=1)
    temperature: float = Field(default=4.0, ge=1.0, le=20.0)
    #: Weight of the soft (teacher) term; ``1 - alpha`` weighs the labels (or, for embedding
    #: workloads, the relative squared error).
    alpha: float = Field(default=0.7, ge=0.0, le=1.0)
    steps: int = Field(default=300, ge=1, le=1_000_000)
    lr: float = Field(default=3e-3, gt=0.0, le=1.0)
    batch_size: int = Field(default=64, ge=1, le=65_536)
    #: Weight of the per-position feature loss (a transformer's token states) added to the
    #: output loss: the workload's ``features`` hook, or the last block's hidden states of a
    #: model with a layout; refused for other models.
    feature_weight: float = Field(default=0.0, ge=0.0, le=100.0)
    #: Weight of matching each of a layered student's layers (but its last) to the hidden
    #: states of the teacher layer it was copied from (the workload's ``layer_features`` hook,
    #: or the layout's blocks); refused for other models. The teacher then runs beside the
    #: student.
    layer_weight: float = Field(default=0.0, ge=0.0, le=100.0)
    #: Weight of matching each of the student's blocks' self-attention relations (query,
    #: key and value scaled dot products, MiniLM v2) to those of the teacher block it stands
    #: for; needs a model layout. The teacher then runs beside the student.
    attention_weight: float = Field(default=0.0, ge=0.0, le=100.0)
    #: The learning rate's decay after the warm-up.
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    #: Steps over which the learning rate rises linearly to ``lr`` (0: none).
    warmup_steps: int = Field(default=0, ge=0, le=1_000_000)

    @property
    def training_steps(self) -> int:
        return self.steps


@register
class KnowledgeDistillation(Technique[KnowledgeDistillationConfig]):
    """Hinton-style knowledge distillation on the workload's train split."""

    key = "distillation.kd"
    family = "distillation"
    Config = KnowledgeDistillationConfig
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch",)

    def check(self, config: KnowledgeDistillationConfig, ctx: Context) -> str | None:
        if ctx.workload.make_student is None:
            from autoopt.errors import WorkloadError
            from autoopt.layouts import find_layout, kept_blocks, missing_layout_reason

            found = find_layout(ctx.workload.model)
            if found is None:
                return (
                    f"workload '{ctx.workload.name}' defines no make_student, and layer-dropped "
                    f"students need a model layout: {missing_layout_reason(ctx.workload.model)}; "
                    "or give the workload a student factory, or remove distillation.kd from "
                    "the search space"
                )
            try:
                kept_blocks(config.model_dump(), len(found.blocks()))
            except WorkloadError as e:
                return f"{e} (the model has {len(found.blocks())} layers)"
        if config.warmup_steps >= config.steps:
            return f"warmup_steps ({config.warmup_steps}) must be below steps ({config.steps})"
        return feature_refusal(
            ctx.workload, config.feature_weight, config.layer_weight, config.attention_weight
        )

    def apply(
        self, artifact: Artifact, config: KnowledgeDistillationConfig, ctx: Context
    ) -> Artifact:
        import torch

        if reason := self.check(config, ctx):
            raise CandidateError(reason, stage=self.key)
        # The teacher is always the workload's fp32 model, whatever the previous stage built:
        # distillation is the first stage, and its input artifact is never modified.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            student = _student(config, ctx)
        if not isinstance(student, torch.nn.Module):
            raise CandidateError(
                f"workload '{ctx.workload.name}': make_student returned "
                f"{type(student).__name__}, not a torch.nn.Module",
                stage=self.key,
            )
        student = train_against_teacher(
            student,
            ctx.workload,
            steps=config.steps,
            lr=config.lr,
            batch_size=config.batch_size,
            temperature=config.temperature,
            alpha=config.alpha,
            seed=ctx.seed,
            feature_weight=config.feature_weight,
            layer_weight=config.layer_weight,
            device=ctx.device,
            session=ctx.training,
            attention_weight=config.attention_weight,
            schedule=config.schedule,
            warmup_steps=config.warmup_steps,
        )
        return TorchArtifact(student.eval())


def _student(config: KnowledgeDistillationConfig, ctx: Context) -> torch.nn.Module:
    """The workload's student, or the teacher's layout's layer-dropped copy of it."""
    if ctx.workload.make_student is not None:
        return ctx.workload.make_student(config.model_dump())
    from autoopt.layouts import drop_blocks, kept_blocks, layout_of

    found = layout_of(ctx.workload.model)
    return drop_blocks(found, kept_blocks(config.model_dump(), len(found.blocks())))
