"""A test-only quantization method that computes the wrong thing, as a broken kernel would.

Registered like a user's plugin; the host self-test must FAIL its paths. ``mode`` is a kernel
field, so a space that declares both modes gives the self-test two paths.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch

from autoopt.artifacts import Artifact, TorchArtifact
from autoopt.plugins import Context, MethodConfig, Technique, register


class WrongInt8Config(MethodConfig):
    #: garbage: every weight replaced by noise; nan: one weight NaN (the outputs go NaN).
    mode: Literal["garbage", "nan"] = "garbage"


@register
class WrongInt8Quantization(Technique[WrongInt8Config]):
    key = "quantization.wrong_int8"
    family = "quantization"
    Config = WrongInt8Config
    kernel_fields = ("mode",)

    def apply(self, artifact: Artifact, config: WrongInt8Config, ctx: Context) -> Artifact:
        assert isinstance(artifact, TorchArtifact)
        model = copy.deepcopy(artifact.model)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            params = list(model.parameters())
            if config.mode == "nan":
                params[0].view(-1)[0] = float("nan")
            else:
                for p in params:
                    p.copy_(torch.randn(p.shape, generator=gen))
        return TorchArtifact(model)
