"""The export stage: a PyTorch module to a self-contained ONNX file.

Uses the TorchScript-based exporter (``dynamo=False``): it is several times faster than the
dynamo exporter for small models, and ONNX Runtime's transformer fusions only recognise its
graphs. Node names keep the module path (``/fc1/Gemm``), which per-layer exclusions rely on.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autoopt.artifacts import OnnxArtifact, TorchArtifact
from autoopt.errors import CandidateError
from autoopt.plugins import MethodConfig

if TYPE_CHECKING:
    from autoopt.workloads import Workload

OPSET = 17


class OnnxExportConfig(MethodConfig):
    opset: int = OPSET


def export_onnx(
    artifact: TorchArtifact, workload: Workload, path: Path, opset: int = OPSET
) -> OnnxArtifact:
    import torch

    model = artifact.model.eval()
    example = tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in workload.example_inputs(2))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                example,
                str(path),
                input_names=list(workload.input_names),
                output_names=list(workload.output_names),
                dynamic_axes=workload.onnx_dynamic_axes(),
                opset_version=opset,
                dynamo=False,
            )
    except Exception as e:  # noqa: BLE001 - any exporter failure fails this candidate only
        raise CandidateError(f"ONNX export failed: {type(e).__name__}: {e}", stage="export") from e
    return OnnxArtifact(path)
