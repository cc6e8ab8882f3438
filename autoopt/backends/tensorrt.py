"""TensorRT: an optional extra (``pip install autoopt[tensorrt]``) that needs an NVIDIA GPU.

Its PyPI wheel downloads from NVIDIA at install time, so it is never a default dependency and
is imported lazily. Where it cannot run, the backend says why and is never imitated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autoopt.errors import BackendUnavailableError
from autoopt.plugins import Backend, MethodConfig, Runner, register

if TYPE_CHECKING:
    from autoopt.artifacts import Artifact


@register
class TensorRTBackend(Backend[MethodConfig]):
    key = "backend.tensorrt"
    Config = MethodConfig
    artifact_kind = "onnx"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return "TensorRT is not installed (optional extra: pip install 'autoopt[tensorrt]')"
        try:
            import torch

            if not torch.cuda.is_available():
                return "TensorRT needs an NVIDIA GPU; torch sees no CUDA device on this host"
        except ImportError:
            return "TensorRT needs PyTorch with CUDA to allocate device buffers"
        return "TensorRT engines are not built by this version of autoopt yet"

    def compile(
        self, artifact: Artifact, config: MethodConfig, threads: int, device: str = "cpu"
    ) -> Runner:
        raise BackendUnavailableError(f"backend.tensorrt: {self.unavailable_reason()}")
