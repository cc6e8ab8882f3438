"""torch.compile (Inductor): C++/OpenMP kernels on the CPU (needs a C++ compiler on the host),
Triton kernels on a CUDA GPU (where ``reduce-overhead`` also replays CUDA graphs)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Literal

from autoopt.artifacts import on_device
from autoopt.backends._base import Backend, Runner
from autoopt.backends.torch_eager import TorchRunner
from autoopt.registry import register
from autoopt.techniques._base import MethodConfig

if TYPE_CHECKING:
    from autoopt.artifacts import Artifact
    from autoopt.techniques._base import Context

#: Modes that capture CUDA graphs: they need a cuda target.
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


class TorchCompileConfig(MethodConfig):
    mode: Literal["default", "max-autotune-no-cudagraphs", "reduce-overhead", "max-autotune"] = (
        "default"
    )
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

    def check(self, config: MethodConfig, ctx: Context) -> str | None:
        assert isinstance(config, TorchCompileConfig)  # noqa: S101 - registry guarantees it
        if config.mode in CUDA_GRAPH_MODES and ctx.device != "cuda":
            return (
                f"mode {config.mode} replays CUDA graphs and needs a cuda target (this one is "
                f"{ctx.device}); use default or max-autotune-no-cudagraphs"
            )
        return None

    def compile(
        self, artifact: Artifact, config: MethodConfig, threads: int, device: str = "cpu"
    ) -> Runner:
        import torch

        assert isinstance(config, TorchCompileConfig)  # noqa: S101 - registry guarantees it
        torch.set_num_threads(threads)
        # Placed before compiling, so Inductor generates kernels for the device it will run on.
        model = on_device(artifact.model, device).eval()  # type: ignore[union-attr]
        compiled = torch.compile(model, mode=config.mode, dynamic=config.dynamic)
        return TorchRunner(compiled, threads, label=f"torch.compile({config.mode})", device=device)  # type: ignore[arg-type]
