"""Tiny classifiers of each bundled layout family, trained for seconds on a synthetic task.

Random-initialised ``transformers`` models (hidden 32, 2 layers, 4 heads by default) learn a
task a transformer must attend over its inputs for, well enough that accuracy measures what a
technique does to them: for text, whether a sequence's tokens come mostly from the low or the
high half of the vocabulary (padded to random lengths); for images, which quadrant holds a
bright patch. Entry point ``autoopt.testing:tiny_classifier``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from autoopt.workloads import Split, Workload, top1_accuracy

Family = Literal["bert", "distilbert", "vit", "gpt2"]
FAMILIES: tuple[Family, ...] = ("bert", "distilbert", "vit", "gpt2")

VOCAB = 64
SPLITS = {"train": 512, "calibration": 64, "evaluation": 256}
DEFAULT_STEPS: dict[Family, int] = {"bert": 60, "distilbert": 60, "vit": 150, "gpt2": 60}


class TextLogits(nn.Module):
    """A Hugging Face text classifier as a workload's model: the logits alone out, and the
    mask by keyword (GPT-2 takes ``past_key_values`` second)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


class ImageLogits(nn.Module):
    """A Hugging Face image classifier as a workload's model: the logits alone out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def _model(family: Family, hidden: int, layers: int, heads: int, seq_len: int) -> nn.Module:
    import transformers as hf

    common: dict[str, Any] = {
        "attn_implementation": "eager",  # the attention ONNX Runtime's fusions match
        "num_labels": 4 if family == "vit" else 2,
    }
    if family == "bert":
        return hf.BertForSequenceClassification(
            hf.BertConfig(
                vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers,
                num_attention_heads=heads, intermediate_size=4 * hidden,
                max_position_embeddings=seq_len, **common,
            )
        )  # fmt: skip
    if family == "distilbert":
        return hf.DistilBertForSequenceClassification(
            hf.DistilBertConfig(
                vocab_size=VOCAB, dim=hidden, n_layers=layers, n_heads=heads,
                hidden_dim=4 * hidden, max_position_embeddings=seq_len, **common,
            )
        )  # fmt: skip
    if family == "vit":
        return hf.ViTForImageClassification(
            hf.ViTConfig(
                image_size=16, patch_size=4, hidden_size=hidden, num_hidden_layers=layers,
                num_attention_heads=heads, intermediate_size=4 * hidden, **common,
            )
        )  # fmt: skip
    # GPT-2 classifies from the last token that is not padding (pad_token_id).
    return hf.GPT2ForSequenceClassification(
        hf.GPT2Config(
            vocab_size=VOCAB, n_embd=hidden, n_layer=layers, n_head=heads, n_positions=seq_len,
            pad_token_id=0, bos_token_id=1, eos_token_id=1, use_cache=False, **common,
        )
    )  # fmt: skip


def _text(rng: np.random.Generator, n: int, seq_len: int) -> Split:
    labels = rng.integers(0, 2, size=n)
    # 80% of a sequence's tokens from its label's half of the vocabulary (id 0 is padding).
    half = VOCAB // 2
    own = rng.random((n, seq_len)) < 0.8
    high = np.where(own, labels[:, None] == 1, labels[:, None] == 0)
    ids = np.where(
        high, rng.integers(half, VOCAB, (n, seq_len)), rng.integers(1, half, (n, seq_len))
    )
    lengths = rng.integers(4, seq_len + 1, size=n)
    mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int64)
    return Split(((ids * mask).astype(np.int64), mask), labels.astype(np.int64))


def _images(rng: np.random.Generator, n: int) -> Split:
    labels = rng.integers(0, 4, size=n)
    x = rng.normal(0.0, 1.0, (n, 3, 16, 16)).astype(np.float32)
    for i, quadrant in enumerate(labels):
        r, c = divmod(int(quadrant), 2)
        x[i, :, r * 8 + 2 : r * 8 + 6, c * 8 + 2 : c * 8 + 6] += 2.0
    return Split((x,), labels.astype(np.int64))


def _train(model: nn.Module, split: Split, steps: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    inputs = [torch.from_numpy(x) for x in split.inputs]
    assert split.targets is not None  # noqa: S101 - made with labels above
    targets = torch.from_numpy(split.targets)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(split), (32,), generator=generator)
        loss = nn.functional.cross_entropy(model(*(x[idx] for x in inputs)), targets[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def tiny_classifier(
    family: Family = "bert",
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    seq_len: int = 16,
    steps: int | None = None,
) -> Workload:
    """A logits workload: a ``family`` classifier trained for ``steps`` steps (seconds on a
    CPU), with no ``make_student`` or feature hooks: what it gets, it gets from its layout.

    By default the text models train 60 steps, ViT 150: enough for 95% accuracy here.
    """
    steps = steps if steps is not None else DEFAULT_STEPS[family]
    input_names = ("pixel_values",) if family == "vit" else ("input_ids", "attention_mask")
    rng = np.random.default_rng(0)
    splits = {
        name: _images(rng, n) if family == "vit" else _text(rng, n, seq_len)
        for name, n in SPLITS.items()
    }
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False):
        torch.manual_seed(0)
        hf_model = _model(family, hidden, layers, heads, seq_len)
        model = ImageLogits(hf_model) if family == "vit" else TextLogits(hf_model)
        _train(model, splits["train"], steps, seed=0)
    return Workload(
        name=f"tiny_{family}",
        model=model,
        train=splits["train"],
        calibration=splits["calibration"],
        evaluation=splits["evaluation"],
        metric=top1_accuracy,
        input_names=input_names,
        output_names=("logits",),
        description=f"random {family} ({layers} layers, hidden {hidden}) on a synthetic task",
    )
