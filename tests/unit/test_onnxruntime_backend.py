"""ONNX Runtime's runner: denormals flushed to zero on the thread that runs a 1-thread session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from autoopt.backends.onnxruntime import OnnxRuntimeRunner


@pytest.fixture
def softmax_graph(tmp_path: Path) -> str:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "softmax.onnx"
    onnx.save(model, path)
    return str(path)


@pytest.fixture(autouse=True)
def _restore_denormals() -> object:
    yield
    torch.set_flush_denormal(False)


def test_flush_denormals_zeroes_what_masked_softmax_underflows_to(softmax_graph: str) -> None:
    # exp(-95) is about 5.5e-42: a denormal float32, like a masked attention score's weight.
    masked = [np.array([[0.0, -95.0]], dtype=np.float32)]
    plain = OnnxRuntimeRunner(softmax_graph, "all", 1)
    weights = plain.run(masked)
    assert 0 < weights[0, 1] < np.finfo(np.float32).tiny  # computed as a denormal
    flushed = OnnxRuntimeRunner(softmax_graph, "all", 1, flush_denormals=True)
    assert flushed.describe()["flush_denormals"] is True
    for call in (lambda: flushed.run(masked), flushed.timed(masked)):
        torch.set_flush_denormal(False)
        out = np.asarray(call()).reshape(1, 2)
        assert out[0, 1] == 0.0 and out[0, 0] == weights[0, 0] == 1.0


def test_flush_denormals_leaves_the_callers_thread_computing_denormals(softmax_graph: str) -> None:
    masked = [np.array([[0.0, -95.0]], dtype=np.float32)]
    flushed = OnnxRuntimeRunner(softmax_graph, "all", 1, flush_denormals=True)
    flushed.run(masked)
    flushed.timed(masked)()
    assert 0 < OnnxRuntimeRunner(softmax_graph, "all", 1).run(masked)[0, 1]
    assert float(torch.tensor([1e-40]) * 1.0) > 0  # PyTorch's arithmetic here is IEEE too
