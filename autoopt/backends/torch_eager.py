"""PyTorch eager mode."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from autoopt.backends._base import Backend, Runner
from autoopt.registry import register
from autoopt.techniques._base import MethodConfig

if TYPE_CHECKING:
    import torch

    from autoopt.artifacts import Artifact


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


class TorchRunner(Runner):
    def __init__(self, model: torch.nn.Module, threads: int, label: str = "eager") -> None:
        import torch

        torch.set_num_threads(threads)
        self.model = model.eval()
        self.dtype = model_dtype(model)
        self.threads = threads
        self.label = label

    def _convert(self, inputs: Sequence[np.ndarray]) -> list[torch.Tensor]:
        import torch

        tensors = [torch.from_numpy(np.ascontiguousarray(x)) for x in inputs]
        return [t.to(self.dtype) if t.is_floating_point() else t for t in tensors]

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(*self._convert(inputs)).float().numpy()

    def timed(self, inputs: Sequence[np.ndarray]) -> Callable[[], Any]:
        import torch

        tensors = self._convert(inputs)
        model = self.model

        def call() -> Any:
            with torch.inference_mode():
                return model(*tensors)

        return call

    def describe(self) -> dict[str, Any]:
        import torch

        return {
            "backend": self.label,
            "dtype": str(self.dtype).removeprefix("torch."),
            "threads": torch.get_num_threads(),
        }


@register
class TorchEagerBackend(Backend):
    key = "backend.torch_eager"
    artifact_kind = "torch"

    def compile(self, artifact: Artifact, config: MethodConfig, threads: int) -> Runner:
        return TorchRunner(artifact.model, threads)  # type: ignore[union-attr]
