"""The technique suite on an embedding workload (a tiny random BERT): outputs compared with the
teacher's by cosine, and the transformer-only method, attention/FFN pruning."""

from __future__ import annotations

from autoopt.testing import TechniqueTestSuite

TINY_BERT = "autoopt.testing:tiny_bert"


class TestAttentionFfnPruning(TechniqueTestSuite):
    key = "pruning.attention_ffn"
    config = {"heads": 0.25, "ffn": 0.5, "recovery_steps": 20}
    workload_name = TINY_BERT
    tolerance = 0.05


class TestLayerDroppingDistillation(TechniqueTestSuite):
    key = "distillation.kd"
    config = {"layers": 1, "steps": 50, "feature_weight": 1.0, "layer_weight": 1.0}
    workload_name = TINY_BERT
    tolerance = 0.1


class TestDynamicInt8OnnxEmbedding(TechniqueTestSuite):
    key = "quantization.dynamic_int8"
    config = {"per_channel": True}
    backend = "backend.onnxruntime"
    workload_name = TINY_BERT
    tolerance = 0.02


class TestFp32Embedding(TechniqueTestSuite):
    key = "precision.fp32"
    workload_name = TINY_BERT
    tolerance = 0.0
