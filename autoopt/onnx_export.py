"""The export stage: a PyTorch module to a self-contained ONNX file.

Uses the TorchScript-based exporter (``dynamo=False``): it is several times faster than the
dynamo exporter for small models, and ONNX Runtime's transformer fusions only recognise its
graphs. Node names keep the module path (``/fc1/Gemm``), which per-layer exclusions rely on.
The graph of a model with a layout records what ONNX Runtime's fusions need to know about it
(:func:`autoopt.layouts.fusion_settings`): its optimizer ``model_type``, heads and width.
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
    import torch

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
    _record_fusion(model, path)
    return OnnxArtifact(path)


def _record_fusion(model: torch.nn.Module, path: Path) -> None:
    import onnx

    from autoopt.layouts import fusion_settings, record_fusion

    settings = fusion_settings(model)
    if isinstance(settings, str):  # no layout, or one ONNX Runtime cannot fuse
        return
    graph = onnx.load(str(path))
    record_fusion(graph, settings)
    onnx.save(graph, str(path))
