"""Test-only plugins for fault tolerance: a technique that sleeps, one that exhausts memory."""

from __future__ import annotations

import time

import numpy as np

from autoopt.artifacts import Artifact
from autoopt.registry import register
from autoopt.techniques import Context, MethodConfig, Technique


class SleepConfig(MethodConfig):
    seconds: float = 5.0


@register
class SleepPruning(Technique):
    """Sleeps, then returns its input: a build slow enough to kill or time out."""

    key = "pruning.sleep"
    family = "pruning"
    Config = SleepConfig

    def apply(self, artifact: Artifact, config: MethodConfig, ctx: Context) -> Artifact:
        assert isinstance(config, SleepConfig)
        time.sleep(config.seconds)
        return artifact


@register
class GreedyPruning(Technique):
    """Asks for far more memory than any machine has."""

    key = "pruning.greedy"
    family = "pruning"

    def apply(self, artifact: Artifact, config: MethodConfig, ctx: Context) -> Artifact:
        np.ones((1 << 44,), dtype=np.float64)  # 128 TiB: numpy raises MemoryError
        return artifact
