"""What stages pass to each other: a PyTorch module or an ONNX file, and how each is stored."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

ArtifactKind = Literal["torch", "onnx"]


@dataclass
class TorchArtifact:
    """An ``nn.Module`` in eval mode. Stored whole (pickled), since pruning changes shapes."""

    model: torch.nn.Module
    kind: ArtifactKind = "torch"
    FILENAME = "model.pt"

    def save(self, directory: Path) -> Path:
        import torch

        path = directory / self.FILENAME
        torch.save(self.model, path)
        return path

    @classmethod
    def load(cls, directory: Path) -> TorchArtifact:
        import warnings

        import torch

        with warnings.catch_warnings():
            # Unpickling a quantized module's packed weights goes through torch's own
            # TypedStorage, which warns that TypedStorage is deprecated: torch's business.
            warnings.filterwarnings("ignore", "TypedStorage is deprecated", UserWarning)
            model = torch.load(directory / cls.FILENAME, weights_only=False, map_location="cpu")
        model.eval()
        return cls(model)


@dataclass
class OnnxArtifact:
    """A self-contained ONNX file (no external data)."""

    path: Path
    kind: ArtifactKind = "onnx"
    FILENAME = "model.onnx"

    def save(self, directory: Path) -> Path:
        target = directory / self.FILENAME
        if self.path.resolve() != target.resolve():
            shutil.copyfile(self.path, target)
        return target

    @classmethod
    def load(cls, directory: Path) -> OnnxArtifact:
        return cls(directory / cls.FILENAME)


Artifact = TorchArtifact | OnnxArtifact


def load_artifact(directory: Path, kind: ArtifactKind) -> Artifact:
    return TorchArtifact.load(directory) if kind == "torch" else OnnxArtifact.load(directory)


def artifact_size_bytes(artifact: Artifact, scratch: Path) -> int:
    """Bytes on disk of the deployable form: the ONNX file, or the module's state dict."""
    if isinstance(artifact, OnnxArtifact):
        return artifact.path.stat().st_size
    import torch

    path = scratch / "size_probe.pt"
    torch.save(artifact.model.state_dict(), path)
    size = path.stat().st_size
    path.unlink()
    return size


def on_device(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """``model`` itself if it is already on ``device``, else a copy moved there: a runner never
    moves the caller's model (a workload's teacher stays on the CPU)."""
    import copy

    import torch

    target = torch.device(device)
    tensors = [*model.parameters(), *model.buffers()]
    if all(t.device.type == target.type for t in tensors):
        return model
    return copy.deepcopy(model).to(target)
