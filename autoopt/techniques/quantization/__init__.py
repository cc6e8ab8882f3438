"""Quantization to int8: dynamic (PyTorch or ONNX Runtime), static, calibrated (ONNX Runtime
QDQ, or PyTorch 2 export quantization compiled by Inductor) and quantization-aware trained
(the same PT2E graph fine-tuned through fake quantization); and non-linear weights: k-means
codebooks per layer.

Layer exclusions are given as PyTorch module names (``fc2``, ``encoder.layer.0.output.dense``)
whatever the artifact kind; a name that matches nothing fails the candidate rather than being
silently ignored.

Modules: :mod:`._config` (configs and shared refusals), :mod:`._dynamic`, :mod:`._static`,
:mod:`._qat` and :mod:`._codebook` (the methods), :mod:`._eager` (PyTorch's dynamic int8),
:mod:`._pt2e` (PyTorch's static int8), :mod:`._qat_graph` (preparing, training and converting a
QAT graph), :mod:`._qdq` (its ONNX QDQ export), :mod:`._kmeans` and :mod:`._codebook_layers`
(codebooks and the layers that hold them), :mod:`._graph` (ONNX graph helpers),
:mod:`._sensitivity` (per-layer sensitivity).
"""

from autoopt.techniques.quantization._codebook import CodebookConfig, CodebookQuantization
from autoopt.techniques.quantization._config import (
    DynamicInt8Config,
    QatInt8Config,
    StaticInt8Config,
)
from autoopt.techniques.quantization._dynamic import DynamicInt8Quantization
from autoopt.techniques.quantization._graph import INTEGER_OPS, onnx_layer_path
from autoopt.techniques.quantization._qat import QatInt8Quantization
from autoopt.techniques.quantization._sensitivity import sensitivity_ranking
from autoopt.techniques.quantization._static import StaticInt8Quantization

__all__ = [
    "INTEGER_OPS",
    "CodebookConfig",
    "CodebookQuantization",
    "DynamicInt8Config",
    "DynamicInt8Quantization",
    "QatInt8Config",
    "QatInt8Quantization",
    "StaticInt8Config",
    "StaticInt8Quantization",
    "onnx_layer_path",
    "sensitivity_ranking",
]
