"""Distillation: train a smaller student, built by the workload, to imitate the teacher."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from autoopt.artifacts import TorchArtifact
from autoopt.errors import CandidateError
from autoopt.plugins import MethodConfig, Technique, register
from autoopt.techniques._training import train_against_teacher

if TYPE_CHECKING:
    from autoopt.artifacts import Artifact, ArtifactKind
    from autoopt.plugins import Context


class KnowledgeDistillationConfig(MethodConfig):
    #: Passed to the workload's ``make_student`` (with every other field); how the width is
    #: interpreted (channels, hidden size, layers) is the workload's choice.
    width: float = Field(default=0.5, gt=0.0, le=1.0)
    #: For layered students (transformers): how many of the teacher's layers to keep; when
    #: unset the workload derives it from ``width``.
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
    #: output loss; used by workloads with a ``features`` hook, ignored by others.
    feature_weight: float = Field(default=0.0, ge=0.0, le=100.0)
    #: Weight of matching each of a layered student's layers (but its last) to the hidden
    #: states of the teacher layer it was copied from; used by workloads with a
    #: ``layer_features`` hook, ignored by others. The teacher then runs beside the student.
    layer_weight: float = Field(default=0.0, ge=0.0, le=100.0)

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
            return (
                f"workload '{ctx.workload.name}' defines no make_student, so there is no student "
                "to distill into; give the workload a student factory or remove "
                "distillation.kd from the search space"
            )
        return None

    def apply(
        self, artifact: Artifact, config: KnowledgeDistillationConfig, ctx: Context
    ) -> Artifact:
        import torch

        make_student = ctx.workload.make_student
        if make_student is None:
            raise CandidateError(self.check(config, ctx) or "", stage=self.key)
        # The teacher is always the workload's fp32 model, whatever the previous stage built:
        # distillation is the first stage, and its input artifact is never modified.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            student = make_student(config.model_dump())
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
        )
        return TorchArtifact(student.eval())
