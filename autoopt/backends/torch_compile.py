"""torch.compile (Inductor) on the CPU; needs a C++ compiler on the host."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Literal

from autoopt.backends._base import Backend, Runner
from autoopt.backends.torch_eager import TorchRunner
from autoopt.registry import register
from autoopt.techniques._base import MethodConfig

if TYPE_CHECKING:
    from autoopt.artifacts import Artifact


class TorchCompileConfig(MethodConfig):
    mode: Literal["default", "max-autotune-no-cudagraphs"] = "default"
    dynamic: bool = False


@register
class TorchCompileBackend(Backend):
    key = "backend.torch_compile"
    Config = TorchCompileConfig
    artifact_kind = "torch"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
            return "torch.compile's Inductor CPU backend needs a C++ compiler (g++), none on PATH"
        return None

    def compile(self, artifact: Artifact, config: MethodConfig, threads: int) -> Runner:
        import torch

        assert isinstance(config, TorchCompileConfig)  # noqa: S101 - registry guarantees it
        torch.set_num_threads(threads)
        compiled = torch.compile(artifact.model, mode=config.mode, dynamic=config.dynamic)  # type: ignore[union-attr]
        return TorchRunner(compiled, threads, label=f"torch.compile({config.mode})")  # type: ignore[arg-type]
