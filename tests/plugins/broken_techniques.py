"""Test-only technique plugins that build broken candidates, registered like a user's would be."""

from __future__ import annotations

import copy
from typing import Literal

import torch

from autoopt.artifacts import Artifact, TorchArtifact
from autoopt.plugins import Context, MethodConfig, Technique, register


class SabotageConfig(MethodConfig):
    mode: Literal["nan", "raise", "garbage"] = "nan"


@register
class SabotagePruning(Technique[SabotageConfig]):
    """Corrupts the model: NaN weights, an exception, or random weights (garbage outputs)."""

    key = "pruning.sabotage"
    family = "pruning"
    Config = SabotageConfig

    def apply(self, artifact: Artifact, config: SabotageConfig, ctx: Context) -> Artifact:
        assert isinstance(artifact, TorchArtifact)
        if config.mode == "raise":
            raise RuntimeError("sabotage: this technique always fails")
        model = copy.deepcopy(artifact.model)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                if config.mode == "nan":
                    p.fill_(float("nan"))
                else:
                    p.copy_(torch.randn(p.shape, generator=gen) * 5)
        return TorchArtifact(model)
