"""Shared fixtures for the unit tests: the bundled digits workload and its teacher."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autoopt.artifacts import OnnxArtifact, OpenVinoArtifact, TorchArtifact
from autoopt.onnx_export import export_onnx
from autoopt.openvino_export import export_openvino
from autoopt.workloads import Workload, load_workload, predict_torch


@pytest.fixture(scope="session")
def workload() -> Workload:
    return load_workload("digits_cnn")


@pytest.fixture(scope="session")
def teacher_accuracy(workload: Workload) -> float:
    outputs = predict_torch(workload.model, workload.evaluation)
    return float(np.mean(outputs.argmax(-1) == workload.evaluation.targets))


@pytest.fixture(scope="session")
def teacher_onnx(workload: Workload, tmp_path_factory: pytest.TempPathFactory) -> OnnxArtifact:
    path: Path = tmp_path_factory.mktemp("teacher_onnx") / "teacher.onnx"
    return export_onnx(TorchArtifact(workload.model), workload, path)


@pytest.fixture(scope="session")
def teacher_openvino(
    workload: Workload, tmp_path_factory: pytest.TempPathFactory
) -> OpenVinoArtifact:
    path: Path = tmp_path_factory.mktemp("teacher_openvino") / "model.xml"
    return export_openvino(TorchArtifact(workload.model), workload, path)
