"""Test-only plugins for fault tolerance: a technique that sleeps, one that exhausts memory,
one whose training hangs mid-way (once), for a time budget to cut it."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autoopt.artifacts import Artifact, TorchArtifact
from autoopt.plugins import Context, MethodConfig, Technique, register
from autoopt.techniques._training import RecoveryConfig, recover


class SleepConfig(MethodConfig):
    seconds: float = 5.0


@register
class SleepPruning(Technique[SleepConfig]):
    """Sleeps, then returns its input: a build slow enough to kill or time out."""

    key = "pruning.sleep"
    family = "pruning"
    Config = SleepConfig

    def apply(self, artifact: Artifact, config: SleepConfig, ctx: Context) -> Artifact:
        time.sleep(config.seconds)
        return artifact


@register
class GreedyPruning(Technique[MethodConfig]):
    """Asks for far more memory than any machine has."""

    key = "pruning.greedy"
    family = "pruning"
    Config = MethodConfig

    def apply(self, artifact: Artifact, config: MethodConfig, ctx: Context) -> Artifact:
        np.ones((1 << 44,), dtype=np.float64)  # 128 TiB: numpy raises MemoryError
        return artifact


class HangingRecoveryConfig(RecoveryConfig):
    #: The training step whose forward pass hangs (after the checkpoints before it).
    hang_at: int = 0
    #: Hangs only while this file does not exist, and creates it: a build hangs once.
    marker: str = ""


class _HangingInTraining(nn.Module):
    """A model whose ``hang_at``-th training forward pass sleeps for an hour, once."""

    def __init__(self, model: nn.Module, hang_at: int, marker: str) -> None:
        super().__init__()
        self.model = model
        self.hang_at, self.marker = hang_at, marker
        self.calls = 0

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls == self.hang_at and not Path(self.marker).exists():
                Path(self.marker).touch()
                time.sleep(3600)
        return self.model(*inputs)


@register
class HangingRecoveryPruning(Technique[HangingRecoveryConfig]):
    """Prunes nothing, then recovers through the shared training loop, which hangs mid-way
    the first time: a training stage a time budget cuts after some of its checkpoints."""

    key = "pruning.hanging_recovery"
    family = "pruning"
    Config = HangingRecoveryConfig

    def apply(self, artifact: Artifact, config: HangingRecoveryConfig, ctx: Context) -> Artifact:
        assert isinstance(artifact, TorchArtifact)
        model = _HangingInTraining(copy.deepcopy(artifact.model), config.hang_at, config.marker)
        recover(model, config, ctx)
        return TorchArtifact(model.model.eval())
