"""The OpenVINO export stage: a PyTorch module (or an ONNX graph) to an OpenVINO IR.

PyTorch modules go through OpenVINO's PyTorch frontend (``openvino.convert_model`` with an
example input, no ONNX in between), which names each node after the module it came from
(``__module.bert.encoder.layer.0.output.dense/aten::linear/MatMul``): per-layer exclusions
rely on that. ONNX graphs go through its ONNX frontend (``/fc2/Gemm``). On MiniLM both give
the same op counts and the same latency within noise (measured here), so the PyTorch one is
used whenever the model is still a module, except a PT2E int8 program (QAT int8), which goes
through its ONNX QDQ export (:mod:`autoopt.techniques.quantization._qdq`).

Inputs and outputs take the workload's names; the workload's dynamic axes stay dynamic and
every other axis takes the example's size (the backend may fix the rest at compile time).
Weights are saved as they are: ``save_model`` would otherwise compress them to fp16 by
default, an unrecorded precision change.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autoopt.artifacts import OnnxArtifact, OpenVinoArtifact, TorchArtifact
from autoopt.errors import CandidateError, failing_the_candidate
from autoopt.plugins import MethodConfig

if TYPE_CHECKING:
    import openvino as ov

    from autoopt.workloads import Workload

STAGE = "export.openvino"


class OpenVinoExportConfig(MethodConfig):
    """The export has no settings; the stage key records the OpenVINO version instead, since
    another version may convert the same model differently."""


def stage_config() -> dict[str, Any]:
    import openvino as ov

    return {**OpenVinoExportConfig().model_dump(), "openvino": ov.__version__}


def _input_shapes(workload: Workload, example: tuple[np.ndarray, ...]) -> list[Any]:
    import openvino as ov

    axes = workload.onnx_dynamic_axes()
    shapes = []
    for name, x in zip(workload.input_names, example, strict=True):
        dynamic = axes.get(name, {})
        shapes.append(ov.PartialShape([-1 if i in dynamic else d for i, d in enumerate(x.shape)]))
    return shapes


def _name_tensors(model: ov.Model, workload: Workload) -> None:
    if len(model.inputs) != len(workload.input_names):
        raise CandidateError(
            f"the converted model has {len(model.inputs)} inputs, and the workload names "
            f"{len(workload.input_names)} ({', '.join(workload.input_names)})",
            stage=STAGE,
        )
    for port, name in zip(model.inputs, workload.input_names, strict=True):
        port.get_tensor().set_names({name})
    for port, name in zip(model.outputs, workload.output_names, strict=False):
        port.get_tensor().set_names({name})


def convert(artifact: TorchArtifact | OnnxArtifact, workload: Workload) -> ov.Model:
    """The artifact as an in-memory ``openvino.Model`` with the workload's tensor names."""
    import openvino as ov

    if isinstance(artifact, OnnxArtifact):
        model = ov.convert_model(str(artifact.path))
    elif _is_int8_program(artifact):
        # A PT2E int8 program (QAT int8): the PyTorch frontend has no rule for its q/dq ops,
        # the ONNX frontend reads their QDQ export as FakeQuantize (int8 kernels).
        import tempfile

        from autoopt.techniques.quantization._qdq import qdq_onnx

        with tempfile.TemporaryDirectory() as tmp:
            graph = qdq_onnx(artifact.model, workload, Path(tmp) / "qdq.onnx", STAGE)  # type: ignore[arg-type]
            model = ov.convert_model(str(graph.path))
    else:
        import torch
        from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

        example = workload.example_inputs(2)
        tensors = tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in example)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Traced without torch.jit's check (a second run compared with the first): half
            # of MiniLM's conversion time, and every candidate is verified against the teacher.
            decoder = TorchScriptPythonDecoder(
                artifact.model.eval(), example_input=tensors, trace_kwargs={"check_trace": False}
            )
            model = ov.convert_model(decoder, input=_input_shapes(workload, example))
    _name_tensors(model, workload)
    return model


def _is_int8_program(artifact: TorchArtifact) -> bool:
    from autoopt.techniques.quantization._pt2e import quantized_op_count

    return quantized_op_count(artifact.model) > 0


def save(model: ov.Model, path: Path) -> Path:
    import openvino as ov

    path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


def export_openvino(
    artifact: TorchArtifact | OnnxArtifact | OpenVinoArtifact, workload: Workload, path: Path
) -> OpenVinoArtifact:
    """Convert and save to ``path`` (``.xml``; the weights go beside it as ``.bin``)."""
    if isinstance(artifact, OpenVinoArtifact):
        return artifact
    with failing_the_candidate("OpenVINO conversion failed", STAGE):
        save(convert(artifact, workload), path)
    return OpenVinoArtifact(path)
