"""Every bundled backend passes the backend suite (a backend unavailable here skips what needs
it, with its reason)."""

from __future__ import annotations

from autoopt.testing import BackendTestSuite


class TestTorchEagerBackend(BackendTestSuite):
    key = "backend.torch_eager"
    tolerance = 0.0


class TestTorchCompileBackend(BackendTestSuite):
    key = "backend.torch_compile"
    # Inductor fuses and reorders the float arithmetic.
    tolerance = 1e-3


class TestOnnxRuntimeBackend(BackendTestSuite):
    key = "backend.onnxruntime"
    config = {"graph_optimization_level": "all", "flush_denormals": True}
    tolerance = 1e-4


class TestTensorRTBackend(BackendTestSuite):
    key = "backend.tensorrt"
