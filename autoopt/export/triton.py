"""Triton Inference Server model repository for ONNX and OpenVINO bundles.

Layout (``triton/`` inside the bundle; point ``tritonserver --model-repository`` at it)::

    triton/<name>/config.pbtxt
    triton/<name>/1/model.onnx                  (onnxruntime backend)
    triton/<name>/1/model.xml, model.bin        (openvino backend)

``config.pbtxt`` is written from the ONNX graph itself: input and output names, Triton data
types, and dims. When the first axis of every input and output is dynamic, the model batches:
``max_batch_size`` is set, the batch axis is left out of ``dims`` (Triton's convention) and
dynamic batching is enabled; other dynamic axes are ``-1``. Otherwise ``max_batch_size: 0``
and full shapes.

Triton's OpenVINO backend takes a fixed set of plugin parameters (``INFERENCE_NUM_THREADS``,
``NUM_STREAMS``, ``PERFORMANCE_HINT``, ``HINT_BF16``): it can ask for bf16 but not for f32 or
f16, so an f32 IR runs at the CPU plugin's default there, which is bf16 on CPUs with native
bf16. The config says so in a comment, and an f16 IR gets no repository.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from autoopt.errors import ExportError

#: ONNX TensorProto element type name -> Triton DataType.
TRITON_DTYPES: dict[str, str] = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16",
    "object": "TYPE_STRING",
}
DEFAULT_MAX_BATCH_SIZE = 64
MODEL_FILE = "model.onnx"


def model_name(name: str) -> str:
    """A Triton model (folder) name: letters, digits, ``_``, ``.`` and ``-``."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"
    return cleaned


def onnx_signature(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Graph inputs (initializers excluded) and outputs: name, numpy dtype name, shape.

    A static axis is an int; a dynamic one is its symbolic name (or None if unnamed).
    """
    import onnx
    from onnx import helper

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}

    def describe(value: Any) -> dict[str, Any]:
        tensor = value.type.tensor_type
        try:
            dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        except (KeyError, TypeError, ValueError):
            dtype = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
        if tensor.elem_type == onnx.TensorProto.BFLOAT16:
            dtype = "bfloat16"
        shape: list[int | str | None] = []
        for d in tensor.shape.dim:
            if d.HasField("dim_value") and d.dim_value > 0:
                shape.append(int(d.dim_value))
            else:
                shape.append(d.dim_param or None)
        return {"name": value.name, "dtype": dtype, "shape": shape}

    return {
        "inputs": [describe(v) for v in graph.input if v.name not in initializers],
        "outputs": [describe(v) for v in graph.output],
    }


def openvino_signature(path: Path) -> dict[str, list[dict[str, Any]]]:
    """An IR's inputs and outputs in :func:`onnx_signature`'s form (dynamic axes: None)."""
    import openvino as ov

    model = ov.Core().read_model(str(path))

    def describe(port: Any) -> dict[str, Any]:
        shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        return {
            "name": port.get_any_name(),
            "dtype": np.dtype(port.get_element_type().to_dtype()).name,
            "shape": shape,
        }

    return {
        "inputs": [describe(p) for p in model.inputs],
        "outputs": [describe(p) for p in model.outputs],
    }


def _batches(signature: dict[str, list[dict[str, Any]]]) -> bool:
    tensors = [*signature["inputs"], *signature["outputs"]]
    return bool(tensors) and all(
        t["shape"] and not isinstance(t["shape"][0], int) for t in tensors
    )


def _tensor_block(t: dict[str, Any], batched: bool) -> str:
    dtype = TRITON_DTYPES.get(t["dtype"])
    if dtype is None:
        raise ExportError(
            f"tensor '{t['name']}' has dtype {t['dtype']}, which Triton cannot serve; allowed: "
            f"{', '.join(sorted(TRITON_DTYPES))}"
        )
    shape = t["shape"][1:] if batched else t["shape"]
    dims = ", ".join(str(d) if isinstance(d, int) else "-1" for d in shape)
    return f'  {{\n    name: "{t["name"]}"\n    data_type: {dtype}\n    dims: [ {dims} ]\n  }}'


def config_pbtxt(
    name: str,
    signature: dict[str, list[dict[str, Any]]],
    *,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    threads: int | None = None,
    cpu_only: bool = True,
    openvino_precision: str | None = None,
) -> str:
    """The text of ``config.pbtxt`` (Triton's ModelConfig in protobuf text format): for ONNX
    Runtime, or for OpenVINO when ``openvino_precision`` (the IR's inference precision) is
    given."""
    batched = _batches(signature) and max_batch_size > 0
    lines = [
        f'name: "{name}"',
        'backend: "openvino"' if openvino_precision else 'platform: "onnxruntime_onnx"',
        f"max_batch_size: {max_batch_size if batched else 0}",
        "input [",
        ",\n".join(_tensor_block(t, batched) for t in signature["inputs"]),
        "]",
        "output [",
        ",\n".join(_tensor_block(t, batched) for t in signature["outputs"]),
        "]",
    ]
    if batched:
        lines.append("dynamic_batching { }")
    if cpu_only:
        lines.append("instance_group [ { count: 1, kind: KIND_CPU } ]")
    if openvino_precision:
        return "\n".join(lines + _openvino_parameters(threads, openvino_precision)) + "\n"
    if threads:
        # onnxruntime_backend parameters: keep the thread count the latency was measured with.
        lines += [
            "parameters {",
            '  key: "intra_op_thread_count"',
            f'  value: {{ string_value: "{threads}" }}',
            "}",
            "parameters {",
            '  key: "inter_op_thread_count"',
            '  value: { string_value: "1" }',
            "}",
        ]
    return "\n".join(lines) + "\n"


def _parameter(key: str, value: str) -> list[str]:
    return ["parameters {", f'  key: "{key}"', f'  value: {{ string_value: "{value}" }}', "}"]


def _openvino_parameters(threads: int | None, precision: str) -> list[str]:
    """openvino_backend parameters: the plugin settings the latency was measured with."""
    if precision == "f16":
        raise ExportError(
            "Triton's OpenVINO backend cannot ask the CPU plugin for f16 (it takes HINT_BF16 "
            "only); export without --triton, or choose a trial in fp32 or bf16"
        )
    lines = []
    if threads:
        lines += _parameter("INFERENCE_NUM_THREADS", str(threads))
    lines += _parameter("NUM_STREAMS", "1") + _parameter("PERFORMANCE_HINT", "LATENCY")
    if precision == "bf16":
        lines += _parameter("HINT_BF16", "YES")
    else:
        lines += [
            "# Measured at inference precision f32. Triton's OpenVINO backend cannot ask for",
            "# f32: on a CPU with native bf16 the plugin computes in bf16 here instead.",
        ]
    return lines


def write_openvino_repository(
    xml_path: Path,
    repository: Path,
    name: str,
    *,
    precision: str,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    threads: int | None = None,
) -> Path:
    """Write ``repository/<name>/config.pbtxt`` and ``<name>/1/model.xml`` + ``model.bin`` for
    Triton's OpenVINO backend. Returns the model folder."""
    folder = repository / model_name(name)
    text = config_pbtxt(
        folder.name,
        openvino_signature(xml_path),
        max_batch_size=max_batch_size,
        threads=threads,
        openvino_precision=precision,
    )
    (folder / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(xml_path, folder / "1" / "model.xml")
    shutil.copyfile(xml_path.with_suffix(".bin"), folder / "1" / "model.bin")
    (folder / "config.pbtxt").write_text(text)
    return folder


def write_model_repository(
    onnx_path: Path,
    repository: Path,
    name: str,
    *,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    threads: int | None = None,
    cpu_only: bool = True,
) -> Path:
    """Write ``repository/<name>/config.pbtxt`` and ``repository/<name>/1/model.onnx``.

    Returns the model folder.
    """
    folder = repository / model_name(name)
    (folder / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, folder / "1" / MODEL_FILE)
    text = config_pbtxt(
        folder.name,
        onnx_signature(onnx_path),
        max_batch_size=max_batch_size,
        threads=threads,
        cpu_only=cpu_only,
    )
    (folder / "config.pbtxt").write_text(text)
    return folder


__all__ = [
    "DEFAULT_MAX_BATCH_SIZE",
    "TRITON_DTYPES",
    "config_pbtxt",
    "model_name",
    "onnx_signature",
    "openvino_signature",
    "write_model_repository",
    "write_openvino_repository",
]
