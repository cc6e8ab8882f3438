"""ONNX graph helpers for ONNX Runtime's quantizers: layer paths, exclusions, integer ops.

Layer exclusions are given as PyTorch module names; on ONNX graphs they are matched to the
nodes the TorchScript exporter names after the module path (``/fc2/Gemm``,
``/encoder/layer.0/output/dense/MatMul``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autoopt.errors import CandidateError
from autoopt.quiet import without_records
from autoopt.techniques._names import matches
from autoopt.techniques.quantization._layers import unknown_layers_error

if TYPE_CHECKING:
    import onnx

    from autoopt.techniques.quantization._config import QuantizationConfig

logger = logging.getLogger(__name__)

#: Ops whose presence shows that a graph really computes in integers.
INTEGER_OPS = frozenset(
    {
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "ConvInteger",
        "QLinearConv",
        "QLinearMatMul",
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeMatMul",
        "QAttention",
        "QGemm",
    }
)


def onnx_layer_path(node_name: str) -> str:
    """The PyTorch module path of the layer that a TorchScript-exported node belongs to.

    The exporter scopes nodes by module (``/encoder/layer.0/attention/self/query/MatMul``);
    container children may appear with the container's prefix repeated
    (``/layers.0/layers.0.0/Gemm`` for ``layers.0.0``). Returns ``""`` for root-level nodes.
    """
    parts = [p for p in node_name.split("/")[:-1] if p]
    path: list[str] = []
    for part in parts:
        if path and part.startswith(path[-1] + "."):
            # ``layers.0`` then ``layers.0.0``: the second name repeats the first's prefix.
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path)


def _layer_nodes(graph: onnx.GraphProto, exclude: list[str], stage: str) -> list[onnx.NodeProto]:
    """The nodes belonging to the excluded layers; raises if a name matches no node."""
    found: set[str] = set()
    nodes = []
    for node in graph.node:
        path = onnx_layer_path(node.name)
        hits = [e for e in exclude if matches(path, e)]
        if hits:
            nodes.append(node)
            found.update(hits)
    unknown = [e for e in exclude if e not in found]
    if unknown:
        available = {
            onnx_layer_path(n.name)
            for n in graph.node
            if n.op_type in ("Conv", "Gemm", "MatMul", "Gather", "Attention")
        }
        raise unknown_layers_error(stage, unknown, available - {""})
    return nodes


def nodes_to_exclude(
    graph: onnx.GraphProto, config: QuantizationConfig, stage: str, dynamic: bool
) -> tuple[list[str], list[str]]:
    """(node names to exclude, op types to quantize), as ONNX Runtime wants them."""
    op_types = set(config.op_types)
    excluded = {n.name for n in _layer_nodes(graph, config.exclude, stage)}
    if dynamic:
        # Dynamic quantization rewrites every Gemm as MatMul (+ Add), naming the MatMul
        # "<gemm name>_MatMul", and has no Gemm kernel: quantize "MatMul" and keep the op type
        # that was not chosen in float by node name.
        if "Gemm" in op_types and "MatMul" not in op_types:
            excluded |= {n.name for n in graph.node if n.op_type == "MatMul"}
        elif "MatMul" in op_types and "Gemm" not in op_types:
            excluded |= {n.name for n in graph.node if n.op_type == "Gemm"}
        gemms = {n.name for n in graph.node if n.op_type == "Gemm"}
        excluded |= {f"{name}_MatMul" for name in excluded & gemms}
        if "Gemm" in op_types:
            op_types = (op_types - {"Gemm"}) | {"MatMul"}
    return sorted(excluded), sorted(op_types)


def graph_inputs(model: onnx.ModelProto) -> list[tuple[str, np.dtype]]:
    from onnx import helper

    initializers = {i.name for i in model.graph.initializer}
    return [
        (i.name, np.dtype(helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)))
        for i in model.graph.input
        if i.name not in initializers
    ]


def count_integer_ops(path: Path) -> int:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return sum(n.op_type in INTEGER_OPS for n in graph.node)


def require_integer_ops(path: Path, stage: str) -> None:
    if count_integer_ops(path) == 0:
        raise CandidateError(
            f"{stage}: nothing was quantized (no layer of the chosen op types is left after "
            "the exclusions); widen op_types or exclude fewer layers",
            stage=stage,
        )


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """One call of ONNX Runtime's quantizer, without its chatter.

    It prints progress and notices (the histogram calibrators, odd initializer names) with
    ``print``: they go to the debug log instead of stdout, which carries results in the CLI (a
    Ray worker's stdout reaches the driver's). The entropy calibrator's numpy warnings (the log
    of empty histogram bins) are dropped, and so is its advice, logged on the root logger at
    every call, to run its pre-processing (``quant_pre_process``) first: a suggestion, not a
    fault, repeated for every candidate; verification and the host self-test judge what the
    quantizer makes.
    """
    buffer = io.StringIO()
    with (
        contextlib.redirect_stdout(buffer),
        warnings.catch_warnings(),
        without_records("", "Please consider to run pre-processing before quantization"),
    ):
        warnings.simplefilter("ignore")
        yield
    if buffer.getvalue().strip():
        logger.debug("onnxruntime.quantization: %s", buffer.getvalue().strip())
