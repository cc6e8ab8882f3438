"""Test-only plugins for fault tolerance: a technique that sleeps, one that exhausts memory."""

from __future__ import annotations

import time

import numpy as np

from autoopt.artifacts import Artifact
from autoopt.plugins import Context, MethodConfig, Technique, register


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
