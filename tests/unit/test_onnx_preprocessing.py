"""ONNX Runtime's quantization pre-processing leaves nothing in the user's working directory."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from autoopt.techniques.quantization._static import _preprocess


def _graph_symbolic_inference_cannot_finish(path: Path) -> None:
    """A MatMul into an op of an unknown domain: ONNX Runtime's symbolic shape inference stops
    there, and on that failure saves its half-inferred model in the working directory."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Foo", ["m"], ["y"], domain="com.example"),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], [w])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)


def test_failed_symbolic_inference_writes_nothing_where_the_user_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, scratch, cwd = tmp_path / "model.onnx", tmp_path / "scratch", tmp_path / "checkout"
    scratch.mkdir()
    cwd.mkdir()
    _graph_symbolic_inference_cannot_finish(source)
    monkeypatch.chdir(cwd)
    # The retry without symbolic inference may refuse the unknown op: the build would fail
    # this candidate; what matters here is where the files went.
    with contextlib.suppress(Exception):
        _preprocess(source, scratch / "pre.onnx")
    assert list(cwd.iterdir()) == []
    assert (scratch / "sym_shape_infer_temp.onnx").exists()
