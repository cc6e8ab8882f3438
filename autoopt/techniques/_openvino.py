"""Helpers for techniques that work on OpenVINO IRs: which module a node came from, whether a
graph is a transformer, the IR form of an artifact, scratch file names."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from autoopt.artifacts import OpenVinoArtifact
from autoopt.techniques.quantization._graph import onnx_layer_path

if TYPE_CHECKING:
    import openvino as ov

    from autoopt.artifacts import Artifact
    from autoopt.plugins import Context

#: Op types NNCF quantizes on OpenVINO whose weights belong to one layer.
WEIGHTED_OPS = frozenset(
    {
        "MatMul",
        "Convolution",
        "GroupConvolution",
        "ConvolutionBackpropData",
        "GroupConvolutionBackpropData",
    }
)
_TORCH_PREFIX = "__module"


def layer_path(node_name: str) -> str:
    """The PyTorch module path of the layer an OpenVINO node was converted from.

    OpenVINO's PyTorch frontend names nodes ``__module.<path>/aten::linear/MatMul`` (the root
    module is ``__module``); its ONNX frontend keeps the TorchScript exporter's names
    (``/encoder/layer.0/output/dense/MatMul``). Returns ``""`` for nodes of neither kind
    (constants and nodes the converter made up).
    """
    if node_name.startswith(_TORCH_PREFIX):
        head = node_name.split("/", 1)[0]
        return head[len(_TORCH_PREFIX) + 1 :] if head.startswith(_TORCH_PREFIX + ".") else ""
    if node_name.startswith("/"):
        return onnx_layer_path(node_name)
    return ""


def weighted_layers(model: ov.Model) -> dict[str, list[str]]:
    """Module path → the names of its weighted nodes (MatMul with a constant operand, Conv)."""
    out: dict[str, list[str]] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() not in WEIGHTED_OPS or not _has_constant_input(op):
            continue
        path = layer_path(op.get_friendly_name())
        if path:
            out.setdefault(path, []).append(op.get_friendly_name())
    return out


def _has_constant_input(op: ov.Node) -> bool:
    """Whether one operand is a weight: a constant, possibly behind Convert (fp16/int8 weights)
    or the dequantization NNCF writes (Convert → Subtract → Multiply)."""
    for value in op.input_values():
        node = value.get_node()
        for _ in range(4):
            if node.get_type_name() == "Constant":
                return True
            if node.get_type_name() not in ("Convert", "Multiply", "Subtract", "Reshape"):
                break
            node = node.input_value(0).get_node()
    return False


def is_transformer(model: ov.Model) -> bool:
    """Whether the graph holds attention: OpenVINO's fused ScaledDotProductAttention, or a
    Softmax whose output is multiplied by another activation (scores × values)."""
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "ScaledDotProductAttention":
            return True
        if kind == "Softmax":
            for target in op.output(0).get_target_inputs():
                consumer = target.get_node()
                if consumer.get_type_name() == "MatMul" and not _has_constant_input(consumer):
                    return True
    return False


def scratch_ir(ctx: Context, stem: str) -> Path:
    """A fresh ``model.xml`` path in its own folder under the workdir."""
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{stem}-", dir=ctx.workdir)) / "model.xml"


def read_model(artifact: OpenVinoArtifact) -> ov.Model:
    import openvino as ov

    return ov.Core().read_model(str(artifact.path))


def constant_count(artifact: OpenVinoArtifact) -> int:
    """Elements of the IR's weight constants (float or 8/4-bit integer; the i32/i64 ones are
    shapes and axes): the parameter count, as the ONNX path counts initializers."""
    import math

    total = 0
    for op in read_model(artifact).get_ops():
        if op.get_type_name() != "Constant":
            continue
        kind = op.get_output_element_type(0)
        if kind.is_real() or kind.get_type_name() in ("i8", "u8", "i4", "u4"):
            total += math.prod(op.get_output_shape(0))
    return total


def as_openvino(artifact: Artifact, ctx: Context, stem: str) -> OpenVinoArtifact:
    """The artifact as an IR: the pipeline converts before OpenVINO stages, and a stage that
    also takes the PyTorch model (to rank layers on it) converts it here."""
    if isinstance(artifact, OpenVinoArtifact):
        return artifact
    from autoopt.openvino_export import export_openvino

    return export_openvino(artifact, ctx.workload, scratch_ir(ctx, f"{stem}-input"))
