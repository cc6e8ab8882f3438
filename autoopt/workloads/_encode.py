"""From a source's data to model inputs: text through a tokenizer, words and their tags, images
through an image processor, or arrays as they are; and the metrics of each task.

Both sources (:mod:`.huggingface`, :mod:`.onnx_file`) read their data here, so the same file
gives the same splits whichever made the workload. Text is padded to one length in every
split (the longest sample's, at most ``max_length``, or ``max_length``), on the right, so
that every split is one array per input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from autoopt.errors import ConfigError
from autoopt.workloads._base import Metric, Split
from autoopt.workloads._data import (
    SPLITS,
    Table,
    deal,
    encode_labels,
    first_occurrences,
    read_data,
    row_keys,
    subsample,
)

if TYPE_CHECKING:
    from autoopt.config._sources import DataSource

log = logging.getLogger(__name__)
#: The label of a position that is not scored (special tokens, a word's later pieces).
IGNORE = -100


@dataclass(frozen=True)
class Classes:
    """What the model's outputs are: how many classes, and their names in output order."""

    count: int | None
    names: tuple[str, ...] | None
    #: Where a user gives the names when labels are names and the model has none.
    hint: str


@dataclass(frozen=True)
class Encoded:
    """Each split's model inputs by name (the preprocessor's, or the .npz's arrays) and its
    targets."""

    inputs: dict[str, dict[str, np.ndarray]]
    targets: dict[str, np.ndarray | None]

    def split(self, name: str, input_names: Sequence[str]) -> Split:
        arrays = self.inputs[name]
        return Split(tuple(arrays[n] for n in input_names), self.targets[name])


def encode(
    source: DataSource,
    field: str,
    preprocessor: Any,
    classes: Classes,
    array_names: Sequence[str] = (),
) -> Encoded:
    """Read ``source.data``, deal it into splits and encode each with ``preprocessor`` (a
    tokenizer or image processor; None for .npz arrays, taken by ``array_names``)."""
    tables = read_data(source.data, f"{field}.data")
    reader = _Reader(source, field, preprocessor, classes, array_names)
    if "all" in tables:
        table = tables["all"]
        raw = reader.raw(table)
        keep = first_occurrences(row_keys(raw))
        if len(keep) < len(table):
            log.info("%s: %d duplicate samples dropped", table.path, len(table) - len(keep))
        keep = keep[subsample(len(keep), source.max_samples, source.split.seed)]
        table = table.take(keep)
        targets = reader.targets(table)
        per_sample = source.task in ("text-classification", "image-classification")
        strata = targets if per_sample else None
        parts = deal(len(table), source.split, strata, f"{table.path}: {field}")
        tables = {name: table.take(index) for name, index in parts.items()}
    else:
        for name, table in tables.items():
            index = subsample(len(table), source.max_samples, source.split.seed)
            tables[name] = table.take(index)
    return reader.encode(tables)


class _Reader:
    """What one task reads from a table and how it turns it into inputs and targets."""

    def __init__(
        self,
        source: DataSource,
        field: str,
        preprocessor: Any,
        classes: Classes,
        array_names: Sequence[str],
    ) -> None:
        self.source, self.field, self.pre, self.classes = source, field, preprocessor, classes
        self.array_names = tuple(array_names)
        self.columns = source.columns

    def _field(self, name: str) -> str:
        return f"{self.field}.columns.{name}"

    def _arrays(self, table: Table) -> bool:
        return self.pre is None

    # ---- what a sample is ------------------------------------------------------------------
    def raw(self, table: Table) -> list[Any]:
        """The input columns (what makes two samples the same)."""
        if self._arrays(table):
            return [table.column(n, f"{self.field}.data (graph input)") for n in self.array_names]
        task, c = self.source.task, self.columns
        if task == "token-classification":
            return [self._words(table)]
        if task == "image-classification":
            return [table.column(c.image, self._field("image"))]
        texts = [self._texts(table, "text")]
        if c.text_pair is not None:
            texts.append(self._texts(table, "text_pair"))
        return texts

    def _words(self, table: Table) -> list[list[str]]:
        words = table.column(self.columns.tokens, self._field("tokens"))
        return [[str(w) for w in value] for value in self._lists(words, table, "tokens")]

    def _lists(self, values: Sequence[Any], table: Table, column: str) -> Sequence[Any]:
        for row, value in enumerate(values):
            if not isinstance(value, list | tuple | np.ndarray):
                raise ConfigError(
                    f"{table.path}: {self._field(column)}: row {row} is a "
                    f"{type(value).__name__}, not a list (one per word); give lists in a "
                    ".jsonl or .parquet file"
                )
        return values

    def _texts(self, table: Table, column: str) -> list[str]:
        name = getattr(self.columns, column)
        values = table.column(name, self._field(column))
        for row, value in enumerate(values):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                raise ConfigError(
                    f"{table.path}: {self._field(column)}: row {row} has no text in '{name}'"
                )
        return [str(v) for v in values]

    def targets(self, table: Table) -> np.ndarray | None:
        """Class ids per sample (classification), per word (tokens), or None."""
        task, c = self.source.task, self.columns
        if task == "feature-extraction":
            return None
        if task == "token-classification":
            if self._arrays(table):
                return self._array_targets(table, required=True)
            tags = table.column(c.tags, self._field("tags"))
            flat = [t for row in self._lists(tags, table, "tags") for t in row]
            ids = self._labels(flat, table, "tags")
            out = np.empty(len(tags), dtype=object)  # one array of word tags per sample
            start = 0
            for i, row in enumerate(tags):
                out[i] = ids[start : start + len(row)]
                start += len(row)
            return out
        if self._arrays(table):
            return self._array_targets(table, required=True)
        return self._labels(table.column(c.label, self._field("label")), table, "label")

    def _array_targets(self, table: Table, required: bool) -> np.ndarray | None:
        name = self.columns.label
        found = name if table.has(name) else ("labels" if table.has("labels") else None)
        if found is None:
            if required:
                raise ConfigError(
                    f"{table.path}: {self._field('label')}: task {self.source.task} is scored "
                    f"on labels, and there is no '{name}' array; arrays: "
                    f"{', '.join(table.columns)}"
                )
            return None
        values = np.asarray(table.columns[found])
        if values.dtype.kind in "US":
            return self._labels(values.tolist(), table, "label")
        if values.dtype.kind not in "iu":
            raise ConfigError(
                f"{table.path}: {self._field('label')}: '{found}' holds {values.dtype} values, "
                "not integer class ids"
            )
        return values.astype(np.int64)

    def _labels(self, values: Sequence[Any], table: Table, column: str) -> np.ndarray:
        return encode_labels(
            values,
            self.classes.names,
            self.classes.count,
            f"{table.path}: {self._field(column)}",
            lambda: self.classes.hint,
        )

    # ---- encoding --------------------------------------------------------------------------
    def encode(self, tables: Mapping[str, Table]) -> Encoded:
        targets = {name: self.targets(t) for name, t in tables.items()}
        if self.pre is None:
            inputs = {
                name: {n: np.asarray(t.columns[n]) for n in self.array_names}
                for name, t in tables.items()
            }
            return Encoded(inputs, targets)
        task = self.source.task
        if task == "image-classification":
            inputs = {name: self._images(t) for name, t in tables.items()}
            return Encoded(inputs, targets)
        raw = {name: self.raw(t) for name, t in tables.items()}
        length = self._length(raw)
        inputs = {}
        for name in SPLITS:
            tags = targets[name]
            if tags is not None and task == "token-classification":
                inputs[name], targets[name] = self._tokens(raw[name][0], tags, length)
            else:
                inputs[name] = self._text(raw[name], length)
        return Encoded(inputs, targets)

    def _tokenize(self, raw: list[Any], **kwargs: Any) -> Any:
        words = self.source.task == "token-classification"
        args = raw[:1] if words else raw
        try:
            return self.pre(*args, is_split_into_words=words, **kwargs)
        except Exception as e:  # noqa: BLE001 - a tokenizer that rejects the data
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(
                f"{self.field}.tokenizer: the tokenizer cannot encode the data: "
                f"{type(e).__name__}: {first}"
            ) from e

    def _length(self, raw: Mapping[str, list[Any]]) -> int:
        limit = self.source.max_length
        if self.source.padding == "max_length":
            return limit
        longest = 1
        for columns in raw.values():
            ids = self._tokenize(columns, truncation=True, max_length=limit)["input_ids"]
            longest = max(longest, *(len(x) for x in ids))
        return min(longest, limit)

    def _text(self, texts: list[Any], length: int) -> dict[str, np.ndarray]:
        enc = self._tokenize(
            texts, padding="max_length", truncation=True, max_length=length, return_tensors="np"
        )
        return {k: np.asarray(v).astype(np.int64) for k, v in enc.items()}

    def _tokens(
        self, words: list[list[str]], tags: np.ndarray, length: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Word pieces with each word's tag on its first piece and :data:`IGNORE` elsewhere
        (special tokens, later pieces, padding)."""
        enc = self._tokenize([words], padding="max_length", truncation=True, max_length=length)
        if not getattr(enc, "is_fast", False):
            raise ConfigError(
                f"{self.field}.tokenizer: token-classification needs a fast tokenizer "
                "(tokenizer.json), to map word pieces to words"
            )
        aligned = np.full((len(words), length), IGNORE, dtype=np.int64)
        for i in range(len(words)):
            previous = None
            for position, word in enumerate(enc.word_ids(i)):
                if word is not None and word != previous:
                    aligned[i, position] = tags[i][word]
                previous = word
        arrays = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
        return arrays, aligned

    def _images(self, table: Table) -> dict[str, np.ndarray]:
        from PIL import Image

        paths = table.column(self.columns.image, self._field("image"))
        base = table.path if table.path.is_dir() else table.path.parent
        images = []
        for row, name in enumerate(paths):
            path = Path(str(name))
            path = path if path.is_absolute() else base / path
            try:
                with Image.open(path) as image:
                    images.append(image.convert("RGB"))
            except OSError as e:
                raise ConfigError(
                    f"{table.path}: {self._field('image')}: row {row}: cannot read image "
                    f"{path}: {e}"
                ) from e
        try:
            enc = self.pre(images=images, return_tensors="np")
        except Exception as e:  # noqa: BLE001 - a processor that rejects the images
            raise ConfigError(
                f"{self.field}.tokenizer: the image processor cannot encode the images: "
                f"{type(e).__name__}: {e}"
            ) from e
        return {k: np.asarray(v, dtype=np.float32) for k, v in enc.items()}


# ---- metrics ----------------------------------------------------------------------------------


def classification_metric(primary: Literal["accuracy", "macro_f1"]) -> Metric:
    """Accuracy, macro-F1 and agreement with the teacher's top-1; per sample, or per scored
    position (targets of :data:`IGNORE` are skipped) for token classification. The primary
    metric's name is the workload's; with macro-F1 primary, accuracy is ``top1_accuracy``."""

    def metric(outputs: np.ndarray, split: Split, teacher: np.ndarray) -> dict[str, float]:
        from sklearn.metrics import f1_score

        if split.targets is None:
            raise ValueError("classification is scored on labels, and the split has none")
        targets = np.asarray(split.targets)
        predicted, reference = outputs.argmax(-1), teacher.argmax(-1)
        scored = targets != IGNORE
        y, p, r = targets[scored], predicted[scored], reference[scored]
        accuracy = float(np.mean(p == y)) if len(y) else 0.0
        scores = {
            "macro_f1": float(f1_score(y, p, average="macro", zero_division=0)),
            "teacher_agreement": float(np.mean(p == r)) if len(y) else 0.0,
        }
        scores["accuracy" if primary == "accuracy" else "top1_accuracy"] = accuracy
        return scores

    return metric


def pick_metric(
    name: Literal["accuracy", "macro_f1", "fidelity"],
) -> Callable[[np.ndarray, Split, np.ndarray], Mapping[str, float]]:
    if name == "fidelity":
        from autoopt.workloads.minilm import fidelity

        return fidelity
    return classification_metric(name)
