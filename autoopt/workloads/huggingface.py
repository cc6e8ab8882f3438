"""A workload from a local Hugging Face checkpoint and a data file.

``workload: {huggingface: {model: DIR, task: TASK, data: FILE, ...}}`` (the schema:
:class:`autoopt.config._sources.HuggingFaceSource`). The checkpoint and its tokenizer or image
processor are loaded with ``local_files_only`` (nothing is downloaded), with eager attention
(what the TorchScript ONNX exporter and ONNX Runtime's BERT fusions expect), and wrapped so
that ``forward`` returns one tensor, as the workload contract asks:

- ``text-classification`` / ``token-classification`` / ``image-classification``: the logits
  (per sample, or per token);
- ``feature-extraction``: sentence-transformers' embedding, the attention-masked mean of the
  last hidden states, L2-normalised.

The wrapped model is the ``model`` attribute of the wrapper, so its layers read
``model.bert.encoder.layer.0.output.dense``. Students and per-layer features are left to the
model layouts (:mod:`autoopt.layouts`); a workload without them still gets every technique
that needs neither.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from autoopt.config._load import parse_source
from autoopt.errors import ConfigError
from autoopt.workloads._base import Workload
from autoopt.workloads._encode import Classes, encode, pick_metric
from autoopt.workloads.minilm import mean_pool, trim_padding

if TYPE_CHECKING:
    from autoopt.config._sources import DataSource, HuggingFaceSource

FIELD = "workload.huggingface"
#: Text inputs in the order the wrappers take them; a tokenizer gives a subset.
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: Bump when the wrappers change what they compute: it is part of the workload's version.
WRAPPER_VERSION = "v1"


class TextLogits(nn.Module):
    """``forward(input_ids, attention_mask[, token_type_ids]) -> logits`` of a Hugging Face
    sequence or token classifier (``self.model``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


class TextEmbedding(nn.Module):
    """``forward(input_ids, attention_mask[, token_type_ids]) -> (batch, hidden)`` unit
    vectors: the attention-masked mean of ``self.model``'s last hidden states."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)
        return mean_pool(out.last_hidden_state, attention_mask)


class ImageLogits(nn.Module):
    """``forward(pixel_values) -> logits`` of a Hugging Face image classifier."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """transformers draws a progress bar and logs notices while loading: not sweep output."""
    from transformers.utils import logging as hf_logging

    bar, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def load_preprocessor(task: str, folder: Path, field: str) -> Any:
    """The tokenizer (text tasks) or image processor saved in ``folder``, offline."""
    from transformers import AutoImageProcessor, AutoTokenizer

    kind = "image processor" if task == "image-classification" else "tokenizer"
    loader = AutoImageProcessor if task == "image-classification" else AutoTokenizer
    try:
        with _quiet_loading():
            return loader.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - whatever transformers says, in one line
        raise ConfigError(f"{folder}: {field}: cannot load a {kind}: {_first_line(e)}") from e


def _load_model(task: str, folder: Path) -> nn.Module:
    from transformers import (
        AutoModel,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    loader = {
        "text-classification": AutoModelForSequenceClassification,
        "token-classification": AutoModelForTokenClassification,
        "image-classification": AutoModelForImageClassification,
        "feature-extraction": AutoModel,
    }[task]
    try:
        with _quiet_loading(), torch.inference_mode(False):
            model, info = loader.from_pretrained(
                str(folder),
                local_files_only=True,
                attn_implementation="eager",
                dtype=torch.float32,
                output_loading_info=True,
            )
    except Exception as e:  # noqa: BLE001 - whatever transformers says, in one line
        raise ConfigError(
            f"{folder}: {FIELD}.model: cannot load it as a {task} model: {_first_line(e)}"
        ) from e
    missing = [k for k in info.get("missing_keys", []) if k]
    if missing:
        # A head initialised at random would make a garbage teacher that trains nothing.
        shown = ", ".join(sorted(missing)[:3]) + (", ..." if len(missing) > 3 else "")
        raise ConfigError(
            f"{folder}: {FIELD}.task: the checkpoint has no weights for {shown}: it is not a "
            f"trained {task} model (its config names {_architectures(folder)}); give the "
            "fine-tuned checkpoint, or the task it was trained for"
        )
    return model.eval()


def _architectures(folder: Path) -> str:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return "no architecture"
    return ", ".join(config.get("architectures") or []) or "no architecture"


def class_names(config: Any) -> tuple[str, ...] | None:
    """The checkpoint's class names in output order, unless they are the defaults
    (``LABEL_0``, ...), which name nothing."""
    id2label = getattr(config, "id2label", None) or {}
    names = [str(id2label[i]) for i in sorted(id2label)]
    if not names or all(re.fullmatch(r"LABEL_\d+", n) for n in names):
        return None
    return tuple(names)


def workload_name(source: DataSource) -> str:
    return source.name or re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(source.model).stem) or "model"


def source_digest(source: DataSource, *files: Path) -> str:
    """What the workload was made from besides weights and data: the files (a checkpoint's
    config), the task, the metric and the wrapper code."""
    h = hashlib.sha256(WRAPPER_VERSION.encode())
    h.update(json.dumps([source.task, source.metric_name, source.max_length]).encode())
    for path in files:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def load(**options: Any) -> Workload:
    """The workload of ``options`` (a :class:`~autoopt.config._sources.HuggingFaceSource`)."""
    source: HuggingFaceSource = parse_source("huggingface", options)  # type: ignore[assignment]
    missing = source.missing_path()
    if missing is not None:
        raise ConfigError(f"{FIELD}.{missing[0]}: {missing[1]}")
    folder = Path(source.model)
    model = _load_model(source.task, folder)
    preprocessor = load_preprocessor(
        source.task, Path(source.tokenizer or folder), f"{FIELD}.tokenizer"
    )
    config = model.config  # type: ignore[union-attr]
    logits = source.output_kind == "logits"
    names = tuple(source.labels) if source.labels else class_names(config)
    classes = Classes(
        count=int(config.num_labels) if logits else None,
        names=names,
        hint=f"give {FIELD}.labels: the class names in the model's output order",
    )
    if source.labels and logits and len(source.labels) != config.num_labels:
        raise ConfigError(
            f"{FIELD}.labels: lists {len(source.labels)} classes, and the checkpoint has "
            f"{config.num_labels} outputs"
        )
    encoded = encode(source, FIELD, preprocessor, classes)
    if source.task == "image-classification":
        input_names: tuple[str, ...] = ("pixel_values",)
        wrapper: nn.Module = ImageLogits(model)
        dynamic_axes = None
    else:
        given = encoded.inputs["evaluation"]
        # What the tokenizer gives and the model takes (DistilBERT has no token_type_ids,
        # whichever tokenizer is saved with it).
        takes = inspect.signature(model.forward).parameters
        input_names = tuple(n for n in TEXT_INPUTS if n in given and n in takes)
        if input_names[:2] != ("input_ids", "attention_mask"):
            raise ConfigError(
                f"{FIELD}.tokenizer: the tokenizer gives {', '.join(given)}; the text tasks "
                "need input_ids and attention_mask"
            )
        embeds = source.task == "feature-extraction"
        wrapper = TextEmbedding(model) if embeds else TextLogits(model)
        per_token = source.task == "token-classification"
        output = {0: "batch", 1: "sequence"} if per_token else {0: "batch"}
        dynamic_axes = {
            **{n: {0: "batch", 1: "sequence"} for n in input_names},
            _output_name(source): output,
        }
    splits = {name: encoded.split(name, input_names) for name in encoded.inputs}
    right_padded = getattr(preprocessor, "padding_side", "right") == "right"
    trims = source.task in ("text-classification", "feature-extraction") and right_padded
    return Workload(
        name=workload_name(source),
        model=wrapper.eval(),
        train=splits["train"],
        calibration=splits["calibration"],
        evaluation=splits["evaluation"],
        metric=pick_metric(source.metric_name),
        metric_name=source.metric_name,
        output_kind=source.output_kind,
        input_names=input_names,
        output_names=(_output_name(source),),
        dynamic_axes=dynamic_axes,
        trim_batch=trim_padding if trims else None,
        description=(
            f"{source.task}: {folder.name} ({getattr(config, 'model_type', '?')}), "
            f"{source.metric_name} on {len(splits['evaluation'])} samples of {_data_name(source)}"
        ),
        extras={"preprocessor": preprocessor, "task": source.task, "labels": names},
        source_digest=source_digest(source, folder / "config.json"),
    )


def _output_name(source: DataSource) -> str:
    return "embedding" if source.output_kind == "embedding" else "logits"


def _data_name(source: DataSource) -> str:
    return Path(source.data).name if isinstance(source.data, str) else "the given splits"
