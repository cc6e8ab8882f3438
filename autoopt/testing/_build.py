"""What the suites build with: a context for one method, the teacher as ONNX, predictions."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoopt import hardware as host
from autoopt.artifacts import Artifact, OnnxArtifact, OpenVinoArtifact, TorchArtifact
from autoopt.backends.onnxruntime import OnnxRuntimeRunner
from autoopt.backends.openvino import OpenVinoRunner
from autoopt.backends.torch_eager import TorchRunner
from autoopt.hardware import Hardware
from autoopt.onnx_export import export_onnx
from autoopt.pipeline import make_context as pipeline_context
from autoopt.plugins import Context
from autoopt.recipe import Recipe, Step
from autoopt.resolve import make_step
from autoopt.workloads import Split, Workload, cosine_similarity


def make_context(
    workload: Workload,
    workdir: Path,
    key: str,
    config: dict[str, Any] | None = None,
    *,
    backend: str = "backend.torch_eager",
    backend_config: dict[str, Any] | None = None,
    precision: str = "precision.fp32",
    others: dict[str, tuple[str, dict[str, Any]]] | None = None,
    hardware: Hardware | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> Context:
    """A context whose recipe holds ``key`` (with ``config``) in its family's slot, the other
    families' steps in ``others`` (``{family: (key, config)}``), on ``backend``."""
    steps: dict[str, Step] = {"precision": make_step(precision)}
    for family, (other_key, other_config) in (others or {}).items():
        steps[family] = make_step(other_key, other_config)
    steps[key.split(".", 1)[0]] = make_step(key, config)
    recipe = Recipe(
        precision=steps["precision"],
        backend=make_step(backend, backend_config),
        distillation=steps.get("distillation"),
        pruning=steps.get("pruning"),
        quantization=steps.get("quantization"),
    )
    return pipeline_context(
        recipe,
        workload,
        hardware or host.current(),
        workdir=workdir,
        seed=seed,
        device=device,
    )


def teacher_onnx(workload: Workload, directory: Path) -> OnnxArtifact:
    """The workload's teacher exported as the pipeline exports it."""
    return export_onnx(TorchArtifact(workload.model), workload, directory / "teacher.onnx")


def teacher_openvino(workload: Workload, directory: Path) -> OpenVinoArtifact:
    """The workload's teacher converted to an OpenVINO IR as the pipeline converts it."""
    from autoopt.openvino_export import export_openvino

    model = TorchArtifact(workload.model)
    return export_openvino(model, workload, directory / "teacher-openvino" / "model.xml")


def teacher_artifact(kind: str, workload: Workload, directory: Path) -> Artifact:
    """The teacher in the form a backend of ``kind`` serves (a copy of the module for
    PyTorch, so that a technique that mutates its input cannot corrupt other tests)."""
    import copy

    if kind == "onnx":
        return teacher_onnx(workload, directory)
    if kind == "openvino":
        return teacher_openvino(workload, directory)
    return TorchArtifact(copy.deepcopy(workload.model))


def predict(artifact: Artifact, split: Split, batch_size: int = 256) -> np.ndarray:
    """Outputs over a split, run the way the backends run them (inputs cast to the model's
    dtype on PyTorch, which ``predict_torch`` does not do for fp16/bf16 models)."""
    if isinstance(artifact, OnnxArtifact):
        runner: Any = OnnxRuntimeRunner(str(artifact.path), "all", threads=2)
    elif isinstance(artifact, OpenVinoArtifact):
        runner = OpenVinoRunner(artifact, threads=2)
    else:
        runner = TorchRunner(artifact.model, threads=torch.get_num_threads())
    return np.concatenate([runner.run(inputs) for inputs, _ in split.batches(batch_size)])


def score(outputs: np.ndarray, teacher: np.ndarray, split: Split, output_kind: str) -> float:
    """How close ``outputs`` are to the teacher's: top-1 accuracy on the split's labels for
    logits (agreement with the teacher where it has none), mean cosine similarity to the
    teacher's embeddings for embeddings."""
    if output_kind == "embedding":
        return float(np.mean(cosine_similarity(outputs, teacher)))
    labels = split.targets if split.targets is not None else teacher.argmax(-1)
    return float(np.mean(outputs.argmax(-1) == labels))


def fingerprint(artifact: Artifact) -> Any:
    """What ``apply`` must leave as it was: the graph file's bytes, or every tensor's values."""
    if isinstance(artifact, OnnxArtifact):
        return hashlib.sha256(artifact.path.read_bytes()).hexdigest()
    if isinstance(artifact, OpenVinoArtifact):
        files = artifact.path.read_bytes() + artifact.weights.read_bytes()
        return f"{artifact.inference_precision}:{hashlib.sha256(files).hexdigest()}"
    return {k: v.detach().clone() for k, v in artifact.model.state_dict().items()}


def same_fingerprint(a: Any, b: Any) -> bool:
    if isinstance(a, str):
        return a == b
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
