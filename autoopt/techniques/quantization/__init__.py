"""Quantization to int8: dynamic (PyTorch or ONNX Runtime) and static, calibrated (ONNX
Runtime QDQ, or PyTorch 2 export quantization compiled by Inductor).

Layer exclusions are given as PyTorch module names (``fc2``, ``encoder.layer.0.output.dense``)
whatever the artifact kind; a name that matches nothing fails the candidate rather than being
silently ignored.

Modules: :mod:`._config` (configs and shared refusals), :mod:`._dynamic` and :mod:`._static`
(the two methods), :mod:`._eager` (PyTorch's dynamic int8), :mod:`._pt2e` (PyTorch's static
int8), :mod:`._graph` (ONNX graph helpers), :mod:`._sensitivity` (per-layer sensitivity).
"""

from autoopt.techniques.quantization._config import DynamicInt8Config, StaticInt8Config
from autoopt.techniques.quantization._dynamic import DynamicInt8Quantization
from autoopt.techniques.quantization._graph import INTEGER_OPS, onnx_layer_path
from autoopt.techniques.quantization._sensitivity import sensitivity_ranking
from autoopt.techniques.quantization._static import StaticInt8Quantization

__all__ = [
    "INTEGER_OPS",
    "DynamicInt8Config",
    "DynamicInt8Quantization",
    "StaticInt8Config",
    "StaticInt8Quantization",
    "onnx_layer_path",
    "sensitivity_ranking",
]
