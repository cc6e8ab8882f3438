"""torch.compile (Inductor): C++/OpenMP kernels on the CPU (needs a C++ compiler on the host),
Triton kernels on a CUDA GPU (where ``reduce-overhead`` also replays CUDA graphs)."""

from __future__ import annotations

import functools
import shutil
import warnings
from typing import TYPE_CHECKING, Any, Literal

from autoopt.artifacts import on_device
from autoopt.backends.torch_eager import TorchRunner, torch_model
from autoopt.plugins import Backend, MethodConfig, Runner, register

if TYPE_CHECKING:
    from autoopt.artifacts import Artifact
    from autoopt.plugins import Context

#: Modes that capture CUDA graphs: they need a cuda target.
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


class TorchCompileConfig(MethodConfig):
    mode: Literal["default", "max-autotune-no-cudagraphs", "reduce-overhead", "max-autotune"] = (
        "default"
    )
    dynamic: bool = False
    #: Inductor's freezing: weights become constants, folded and pre-packed for oneDNN. Needed
    #: for a PT2E int8 model (static_int8 on PyTorch), whose q/dq patterns it lowers to int8.
    freezing: bool = False
    #: A C++ wrapper calls the generated kernels instead of Python: less overhead per kernel,
    #: which a small model at batch 1 notices; compiling takes longer.
    cpp_wrapper: bool = False
    #: Inductor's in-place reuse of buffers. "auto" turns it off where it computes wrong
    #: results: with freezing and max-autotune on the CPU, torch 2.13's memory planner gives a
    #: later Linear the storage of a live residual when the C++ GEMM template's output aliases
    #: an int8 Linear that adds into that residual (results/inductor_int8_autotune: cosine
    #: 0.004 to fp32 on MiniLM; off: 0.992, at the same speed). "on"/"off" force it.
    inplace_buffers: Literal["auto", "on", "off"] = "auto"

    def inductor_settings(self, device: str) -> dict[str, bool]:
        """The Inductor settings each call compiles under, beyond the mode."""
        settings = {"freezing": self.freezing, "cpp_wrapper": self.cpp_wrapper}
        planner_bug = self.freezing and self.mode.startswith("max-autotune") and device == "cpu"
        if self.inplace_buffers == "off" or (self.inplace_buffers == "auto" and planner_bug):
            settings["inplace_buffers"] = False
        return settings


@functools.cache
def _patched_class() -> type:
    import torch

    class Patched(torch.nn.Module):
        """Runs a compiled module under Inductor settings that ``torch.compile``'s ``options``
        do not carry reliably (freezing through ``options`` fails on PT2E int8 graphs): they
        are read when a call compiles, so each call sets them."""

        def __init__(self, compiled: torch.nn.Module, settings: dict[str, Any]) -> None:
            super().__init__()
            self.compiled = compiled
            self.settings = settings

        def forward(self, *args: Any) -> Any:
            from torch._inductor import config as inductor_config

            with inductor_config.patch(self.settings), warnings.catch_warnings():
                # A call may compile: Inductor's oneDNN lowering of a frozen int8 graph copies
                # scales with torch.tensor(tensor), a style warning about its own code.
                warnings.filterwarnings(
                    "ignore", "To copy construct from a tensor", UserWarning, "torch._inductor"
                )
                return self.compiled(*args)

    return Patched


@register
class TorchCompileBackend(Backend[TorchCompileConfig]):
    key = "backend.torch_compile"
    Config = TorchCompileConfig
    artifact_kind = "torch"
    kernel_fields = ("mode", "freezing", "cpp_wrapper", "dynamic", "inplace_buffers")

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
            return "torch.compile's Inductor CPU backend needs a C++ compiler (g++), none on PATH"
        return None

    def check(self, config: TorchCompileConfig, ctx: Context) -> str | None:
        if config.mode in CUDA_GRAPH_MODES and ctx.device != "cuda":
            return (
                f"mode {config.mode} replays CUDA graphs and needs a cuda target (this one is "
                f"{ctx.device}); use default or max-autotune-no-cudagraphs"
            )
        return None

    def compile(
        self, artifact: Artifact, config: TorchCompileConfig, threads: int, device: str = "cpu"
    ) -> Runner:
        import torch

        torch.set_num_threads(threads)
        # Placed before compiling, so Inductor generates kernels for the device it will run on.
        model = on_device(torch_model(artifact, self.key), device).eval()
        compiled = torch.compile(model, mode=config.mode, dynamic=config.dynamic)
        settings = config.inductor_settings(device)
        label = ", ".join(
            [
                config.mode,
                *(
                    k if on else f"no {k}"
                    for k, on in settings.items()
                    if on or k == "inplace_buffers"
                ),
            ]
        )
        if settings == {"freezing": False, "cpp_wrapper": False}:
            return TorchRunner(compiled, threads, label=f"torch.compile({label})", device=device)  # type: ignore[arg-type]
        if config.freezing:
            from autoopt.torch_export import register_inductor_passes

            register_inductor_passes()
        # Freezing folds weights only for graphs compiled without autograd: no_grad is what
        # Inductor documents for it (and what the int8 passes were measured under).
        return TorchRunner(
            _patched_class()(compiled, settings),
            threads,
            label=f"torch.compile({label})",
            device=device,
            grad_mode="no_grad",
        )
