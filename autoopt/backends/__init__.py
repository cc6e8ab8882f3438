"""Inference backends: PyTorch eager, torch.compile, ONNX Runtime, OpenVINO, TensorRT."""

from autoopt.backends._base import Backend, Runner

__all__ = ["Backend", "Runner", "availability"]


def availability() -> dict[str, str | None]:
    """Every registered backend and why it cannot run here (None when it can)."""
    from autoopt import registry

    return {k: registry.get(k).unavailable_reason() for k in registry.method_keys("backend")}  # type: ignore[union-attr]
