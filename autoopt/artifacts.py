"""What stages pass to each other: a PyTorch module, an ONNX file or an OpenVINO IR, and how each
is stored."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

ArtifactKind = Literal["torch", "onnx", "openvino"]
#: OpenVINO inference precision hints, by the name the precision technique gives them.
OpenVinoPrecision = Literal["f32", "bf16", "f16"]


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


@dataclass
class OpenVinoArtifact:
    """An OpenVINO IR (``model.xml`` + ``model.bin``) and the inference precision it is meant
    to run at. The precision is part of the artifact, not of the backend config, so that
    ``precision.*`` stays the one place a recipe names it: the precision stage records it here,
    and whoever compiles the IR (the backend, a loaded bundle, Triton) sets that hint."""

    path: Path
    #: CPU plugin ``INFERENCE_PRECISION_HINT``; always set explicitly, since the plugin's own
    #: default is bf16 on CPUs with native bf16.
    inference_precision: OpenVinoPrecision = "f32"
    kind: ArtifactKind = "openvino"
    FILENAME = "model.xml"
    SETTINGS = "openvino.json"

    @property
    def weights(self) -> Path:
        return self.path.with_suffix(".bin")

    def save(self, directory: Path) -> Path:
        target = directory / self.FILENAME
        if self.path.resolve() != target.resolve():
            shutil.copyfile(self.path, target)
            shutil.copyfile(self.weights, target.with_suffix(".bin"))
        settings = {"inference_precision": self.inference_precision}
        (directory / self.SETTINGS).write_text(json.dumps(settings) + "\n")
        return target

    @classmethod
    def load(cls, directory: Path) -> OpenVinoArtifact:
        settings = json.loads((directory / cls.SETTINGS).read_text())
        return cls(directory / cls.FILENAME, settings["inference_precision"])


Artifact = TorchArtifact | OnnxArtifact | OpenVinoArtifact


def load_artifact(directory: Path, kind: ArtifactKind) -> Artifact:
    if kind == "openvino":
        return OpenVinoArtifact.load(directory)
    return TorchArtifact.load(directory) if kind == "torch" else OnnxArtifact.load(directory)


def artifact_size_bytes(artifact: Artifact, scratch: Path) -> int:
    """Bytes on disk of the deployable form: the ONNX file, the IR, or the module's state
    dict."""
    if isinstance(artifact, OnnxArtifact):
        return artifact.path.stat().st_size
    if isinstance(artifact, OpenVinoArtifact):
        return artifact.path.stat().st_size + artifact.weights.stat().st_size
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
