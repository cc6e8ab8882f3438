"""PyTorch eager mode."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from autoopt.artifacts import TorchArtifact, on_device
from autoopt.errors import CandidateError
from autoopt.plugins import Backend, MethodConfig, Runner, register

if TYPE_CHECKING:
    import torch

    from autoopt.artifacts import Artifact


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype the model computes in: its first float parameter's, past fp8 weights (an fp8
    model computes in bf16 around its fp8 matrix products)."""
    import torch

    for p in model.parameters():
        if p.is_floating_point() and p.element_size() > 1:
            return p.dtype
    return torch.float32


class TorchRunner(Runner):
    """Runs a PyTorch module on ``device``: inputs are cast to the model's float dtype and
    moved there; on CUDA a timed call waits for the GPU to finish the batch."""

    def __init__(
        self,
        model: torch.nn.Module,
        threads: int,
        label: str = "eager",
        device: str = "cpu",
        grad_mode: Literal["inference_mode", "no_grad"] = "inference_mode",
    ) -> None:
        import torch

        torch.set_num_threads(threads)
        self.without_grad = torch.no_grad if grad_mode == "no_grad" else torch.inference_mode
        self.device = torch.device(device)
        self.model = on_device(model, device).eval()
        self.dtype = model_dtype(model)
        self.threads = threads
        self.label = label

    def _convert(self, inputs: Sequence[np.ndarray]) -> list[torch.Tensor]:
        import torch

        tensors = [torch.from_numpy(np.ascontiguousarray(x)).to(self.device) for x in inputs]
        return [t.to(self.dtype) if t.is_floating_point() else t for t in tensors]

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        with self.without_grad():
            return self.model(*self._convert(inputs)).float().cpu().numpy()

    def timed(self, inputs: Sequence[np.ndarray]) -> Callable[[], Any]:
        import torch

        tensors = self._convert(inputs)
        model, without_grad = self.model, self.without_grad
        # CUDA kernels run asynchronously: without the wait a call would time the launches.
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)

        def call() -> Any:
            with without_grad():
                out = model(*tensors)
            sync()
            return out

        return call

    def describe(self) -> dict[str, Any]:
        import torch

        info: dict[str, Any] = {
            "backend": self.label,
            "dtype": str(self.dtype).removeprefix("torch."),
            "threads": torch.get_num_threads(),
            "device": str(self.device),
        }
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        # Layers that run otherwise than their storage suggests say so (codebook weights are
        # decoded to float32: no kernel here computes from a codebook).
        notes = {getattr(m, "runtime_note", None) for m in self.model.modules()} - {None}
        if notes:
            info["notes"] = sorted(notes)
        return info


def torch_model(artifact: Artifact, stage: str) -> torch.nn.Module:
    """The module a PyTorch backend serves (the pipeline hands it nothing else)."""
    if not isinstance(artifact, TorchArtifact):
        raise CandidateError(f"{stage} serves PyTorch models, not {artifact.kind}", stage=stage)
    return artifact.model


@register
class TorchEagerBackend(Backend[MethodConfig]):
    key = "backend.torch_eager"
    Config = MethodConfig
    artifact_kind = "torch"

    def compile(
        self, artifact: Artifact, config: MethodConfig, threads: int, device: str = "cpu"
    ) -> Runner:
        return TorchRunner(torch_model(artifact, self.key), threads, device=device)
