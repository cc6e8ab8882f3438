"""Small workloads for the suites: seconds to build on any host, deterministic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from autoopt.layouts import kept_blocks
from autoopt.workloads import Split, Workload
from autoopt.workloads.minilm import (
    SentenceEmbedder,
    fidelity,
    layer_features,
    make_layer_student,
    token_features,
    trim_padding,
)


def tiny_bert(seq_len: int = 16, hidden: int = 32, layers: int = 2, heads: int = 4) -> Workload:
    """An embedding workload: a randomly initialised BERT encoder with mean pooling (the MiniLM
    workload's model family, and its hooks), on random right-padded token ids.

    Entry point ``autoopt.testing:tiny_bert``.
    """
    from autoopt.quiet import torchao_import

    with torchao_import():  # transformers' model code imports torchao's quantizers
        from transformers import BertConfig, BertModel

    settings: dict[str, Any] = {
        "vocab_size": 128,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": 4 * hidden,
        "max_position_embeddings": seq_len,
        # As the MiniLM workload loads its teacher: the attention ONNX Runtime fuses.
        "attn_implementation": "eager",
    }
    config = BertConfig(**settings)
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False):
        torch.manual_seed(0)
        teacher = SentenceEmbedder(BertModel(config, add_pooling_layer=False)).eval()
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        lengths = rng.integers(4, seq_len + 1, size=n)
        mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int64)
        ids = rng.integers(1, config.vocab_size, size=(n, seq_len)) * mask
        return Split((ids.astype(np.int64), mask))

    def make_student(options: Mapping[str, Any]) -> torch.nn.Module:
        return make_layer_student(teacher, kept_blocks(options, layers))

    return Workload(
        name="tiny_bert",
        model=teacher,
        train=split(256),
        calibration=split(64),
        evaluation=split(128),
        metric=fidelity,
        metric_name="fidelity",
        output_kind="embedding",
        input_names=("input_ids", "attention_mask"),
        output_names=("embedding",),
        make_student=make_student,
        trim_batch=trim_padding,
        features=token_features,
        layer_features=layer_features,
        description=f"random BERT ({layers} layers, hidden {hidden}), seq {seq_len}",
    )
