"""Writing a rebuilt model in its backend's native form, and its input/output signature.

ONNX Runtime bundles hold ``model.onnx``; PyTorch bundles a ``torch.export`` program
(``model.pt2``), or the pickled module (``model.pt``, with a code reference) when the module
cannot be exported.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from autoopt.artifacts import Artifact
    from autoopt.workloads import Workload

log = logging.getLogger(__name__)


def _code_reference(model: torch.nn.Module) -> str:
    cls = type(model)
    return f"{cls.__module__}:{cls.__qualname__}"


def _torch_inputs(workload: Workload, model: torch.nn.Module, batch: int) -> tuple[Any, ...]:
    import torch

    from autoopt.backends.torch_eager import model_dtype

    dtype = model_dtype(model)
    tensors = [torch.from_numpy(np.ascontiguousarray(x)) for x in workload.example_inputs(batch)]
    return tuple(t.to(dtype) if t.is_floating_point() else t for t in tensors)


def _dynamic_shapes(workload: Workload) -> tuple[dict[int, Any] | None, ...]:
    import torch

    axes = workload.onnx_dynamic_axes()
    out = []
    for name in workload.input_names:
        # DYNAMIC lets export infer each axis's range and the axes' equalities from the model
        # (a named Dim without a maximum fails on BERT's sequence axis, bounded by 512).
        spec = {axis: torch.export.Dim.DYNAMIC for axis in axes.get(name, {})}
        out.append(spec or None)
    return tuple(out)


def _write_torch(model: torch.nn.Module, workload: Workload, directory: Path) -> dict[str, Any]:
    """An ExportedProgram (model.pt2) when torch.export handles the module, else model.pt."""
    import torch

    from autoopt.torch_export import ExportedModule

    reference = _code_reference(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(model, ExportedModule):  # already a program (static int8 on PyTorch)
                program = model.program
            else:
                example = _torch_inputs(workload, model, 4)
                program = torch.export.export(
                    model, example, dynamic_shapes=_dynamic_shapes(workload)
                )
            torch.export.save(program, str(directory / "model.pt2"))
            # Round trip: the saved program must compute what the module computes.
            reloaded = torch.export.load(str(directory / "model.pt2")).module()
            probe = _torch_inputs(workload, model, 3)
            with torch.inference_mode():
                want, got = model(*probe).float(), reloaded(*probe).float()
        if want.shape != got.shape or not torch.allclose(want, got, rtol=1e-3, atol=1e-3):
            raise ValueError("the exported program's outputs differ from the module's")
        return {"format": "exported_program", "file": "model.pt2", "code_reference": reference}
    except Exception as e:  # noqa: BLE001 - any exporter failure: fall back to the pickle
        (directory / "model.pt2").unlink(missing_ok=True)
        reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        log.info(
            "torch.export cannot export %s (%s); saving the pickled module", reference, reason
        )
        torch.save(model, directory / "model.pt")
        return {
            "format": "pickled_module",
            "file": "model.pt",
            "code_reference": reference,
            "fallback_reason": f"torch.export failed: {reason[:300]}",
        }


def write_model(artifact: Artifact, workload: Workload, directory: Path) -> dict[str, Any]:
    from autoopt.artifacts import OnnxArtifact, OpenVinoArtifact

    if isinstance(artifact, OpenVinoArtifact):
        shutil.copyfile(artifact.path, directory / "model.xml")
        shutil.copyfile(artifact.weights, directory / "model.bin")
        return {
            "format": "openvino",
            "file": "model.xml",
            "weights": "model.bin",
            "inference_precision": artifact.inference_precision,
            "code_reference": None,
        }
    if isinstance(artifact, OnnxArtifact):
        shutil.copyfile(artifact.path, directory / "model.onnx")
        return {"format": "onnx", "file": "model.onnx", "code_reference": None}
    return _write_torch(artifact.model, workload, directory)


def signature(
    model_info: dict[str, Any], directory: Path, workload: Workload, outputs: np.ndarray
) -> dict[str, Any]:
    if model_info["format"] == "onnx":
        from autoopt.export.triton import onnx_signature

        return onnx_signature(directory / model_info["file"])
    if model_info["format"] == "openvino":
        from autoopt.export.triton import openvino_signature

        return openvino_signature(directory / model_info["file"])
    axes = workload.onnx_dynamic_axes()

    def shape(name: str, full: tuple[int, ...]) -> list[int | str]:
        dyn = axes.get(name, {})
        return [dyn[i] if i in dyn else int(d) for i, d in enumerate(full)]

    example = workload.example_inputs(1)
    inputs = [
        {"name": n, "dtype": x.dtype.name, "shape": shape(n, x.shape)}
        for n, x in zip(workload.input_names, example, strict=True)
    ]
    first = workload.output_names[0] if workload.output_names else "output"
    return {
        "inputs": inputs,
        "outputs": [{"name": first, "dtype": "float32", "shape": shape(first, outputs.shape)}],
    }
