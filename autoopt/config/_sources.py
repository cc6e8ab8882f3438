"""Workload sources: a Hugging Face checkpoint or an ONNX file, with a data file, in YAML.

An experiment names its workload in one of three ways::

    workload: digits_cnn                                  # bundled, or "package.module:function"
    workload: {huggingface: {model: DIR, task: ..., data: FILE, ...}}
    workload: {onnx: {model: FILE, task: ..., data: FILE, ...}}

The last two are factories (:mod:`autoopt.workloads.huggingface`, :mod:`autoopt.workloads.
onnx_file`) that return the same :class:`~autoopt.workloads.Workload` an entry point does. In
the experiment they travel as ``{name: huggingface, options: {...}}``, so every worker, snapshot
and bundle loads them as it loads an entry point; the options are validated here, once, with
errors naming the field (``workload.huggingface.columns.txt: unknown field ...``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from autoopt.config._strict import Strict

Task = Literal[
    "text-classification", "token-classification", "feature-extraction", "image-classification"
]
#: What a task's outputs are: class scores (per sample or per token) or an embedding.
TASK_OUTPUT: dict[str, Literal["logits", "embedding"]] = {
    "text-classification": "logits",
    "token-classification": "logits",
    "image-classification": "logits",
    "feature-extraction": "embedding",
}
MetricName = Literal["accuracy", "macro_f1", "fidelity"]
#: The files a table may be read from (a folder holds them, or class folders of images).
TABLE_SUFFIXES = (".csv", ".jsonl", ".parquet")


class Columns(Strict):
    """Which columns of the data hold what (the defaults are the usual names)."""

    #: The text (text-classification, feature-extraction).
    text: str = "text"
    #: A second text, for sentence-pair tasks; tokenized with ``text`` as one pair.
    text_pair: str | None = None
    #: The class of a sample (classification): an integer id or a name.
    label: str = "label"
    #: token-classification: the words of a sample (a list per row).
    tokens: str = "tokens"
    #: token-classification: one tag per word (ids or names).
    tags: str = "tags"
    #: image-classification: an image file's path (relative to the data file).
    image: str = "image"


class SplitFractions(Strict):
    """How one data set is dealt into disjoint splits (stratified by label where there is
    one), with a fixed seed. Fractions may add up to less than 1 (the rest is unused)."""

    train: float = Field(default=0.6, gt=0, lt=1)
    calibration: float = Field(default=0.1, gt=0, lt=1)
    evaluation: float = Field(default=0.3, gt=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _at_most_one(self) -> SplitFractions:
        total = self.train + self.calibration + self.evaluation
        if total > 1 + 1e-9:
            raise ValueError(
                f"train + calibration + evaluation must be at most 1; got {total:.3g}"
            )
        return self


class SplitFiles(Strict):
    """Splits given as files (each a table, an .npz or an image folder)."""

    train: str
    calibration: str
    evaluation: str


class DataSource(Strict):
    """What both sources share: the model, the data, its columns and how it is split."""

    #: The checkpoint folder (huggingface: ``config.json`` and the weights, loaded with
    #: ``local_files_only``) or the ``.onnx`` file (onnx).
    model: str
    #: What the model does: decides the outputs, the metric and how data is read.
    task: Task
    #: One file (.csv, .jsonl, .parquet; .npz for ONNX) or folder, dealt into the splits; or
    #: ``{train: FILE, calibration: FILE, evaluation: FILE}``, used as they are. A folder
    #: holds ``train.*``, ``calibration.*`` and ``evaluation.*``, or (images) one folder of
    #: images per class.
    data: str | SplitFiles
    columns: Columns = Field(default_factory=Columns)
    #: How ``data`` is dealt into splits when it is one file or folder.
    split: SplitFractions = Field(default_factory=SplitFractions)
    #: Use at most this many samples of ``data`` (a seeded random subset), e.g. for a
    #: quick sweep.
    max_samples: int | None = Field(default=None, ge=3)
    #: Class names in the model's output order, for labels given as names (default: the
    #: checkpoint's ``id2label``).
    labels: list[str] | None = Field(default=None, min_length=1)
    #: The workload's metric (default: ``accuracy`` for classification, ``fidelity``, the
    #: cosine to the fp32 teacher, for feature extraction).
    metric: MetricName | None = None
    #: The study's workload name (default: the model's file or folder name).
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    #: The tokenizer (or image processor) folder, a ``save_pretrained`` one (default for
    #: huggingface: the checkpoint folder; onnx: needed for text tables, not for .npz).
    tokenizer: str | None = None
    #: Text: longest sequence in tokens (longer ones are truncated).
    max_length: int = Field(default=128, ge=2, le=100_000)
    #: Text: pad every sample to the longest one in the data (``longest``, at most
    #: ``max_length``) or always to ``max_length``.
    padding: Literal["longest", "max_length"] = "longest"

    @model_validator(mode="after")
    def _metric_fits_task(self) -> DataSource:
        kind = TASK_OUTPUT[self.task]
        if self.metric == "fidelity" and kind != "embedding":
            raise ValueError(
                f"metric 'fidelity' scores embeddings, and task {self.task} gives class "
                "scores; use accuracy or macro_f1"
            )
        if self.metric in ("accuracy", "macro_f1") and kind == "embedding":
            raise ValueError(
                f"metric '{self.metric}' needs labels, and task {self.task} gives embeddings "
                "scored by fidelity (cosine to the teacher); use fidelity"
            )
        return self

    @property
    def metric_name(self) -> MetricName:
        if self.metric is not None:
            return self.metric
        return "fidelity" if TASK_OUTPUT[self.task] == "embedding" else "accuracy"

    @property
    def output_kind(self) -> Literal["logits", "embedding"]:
        return TASK_OUTPUT[self.task]

    def paths(self) -> dict[str, str]:
        """Every path field by its dotted name (``data.train``)."""
        out = {"model": self.model}
        if isinstance(self.data, SplitFiles):
            out.update({f"data.{k}": v for k, v in self.data.model_dump().items()})
        else:
            out["data"] = self.data
        if self.tokenizer:
            out["tokenizer"] = self.tokenizer
        return out

    def resolved(self, base: Path) -> Self:
        """A copy whose relative paths are taken from ``base`` (the experiment's folder)."""
        data = self.model_dump()
        for dotted, value in self.paths().items():
            data_value = os.path.abspath(base / Path(value).expanduser())
            target: dict[str, Any] = data
            *parents, last = dotted.split(".")
            for part in parents:
                target = target[part]
            target[last] = data_value
        return self.model_validate(data)

    def missing_path(self) -> tuple[str, str] | None:
        """The first path field that names nothing usable, as (field, what is wrong)."""
        model = Path(self.model)
        if isinstance(self, OnnxSource):
            if not model.is_file():
                return "model", f"file not found: {model}"
        elif not model.is_dir():
            return "model", f"folder not found: {model} (a save_pretrained checkpoint folder)"
        elif not (model / "config.json").is_file():
            return "model", f"{model} has no config.json; give a save_pretrained checkpoint folder"
        for field, value in self.paths().items():
            if field.startswith("data") and not Path(value).exists():
                return field, f"not found: {value}"
        if self.tokenizer and not Path(self.tokenizer).is_dir():
            return "tokenizer", f"folder not found: {self.tokenizer}"
        return None


class HuggingFaceSource(DataSource):
    """A local ``save_pretrained`` checkpoint with its tokenizer or image processor."""


class OnnxSource(DataSource):
    """A self-contained ONNX file, served as it is (by ONNX Runtime and OpenVINO)."""

    #: The graph output to score, when the graph has several (the others are dropped).
    output: str | None = None


#: The source names an experiment may use, and their schemas.
SOURCES: dict[str, type[DataSource]] = {"huggingface": HuggingFaceSource, "onnx": OnnxSource}
