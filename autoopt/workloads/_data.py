"""Reading a workload source's data and dealing it into disjoint splits.

Data is a table (.csv, .jsonl, .parquet), an .npz of arrays, or a folder (of ``train.*``,
``calibration.*`` and ``evaluation.*`` files, or of one folder of images per class), read into
a :class:`Table`: named columns of equal length. One table is deduplicated on its inputs (a
sample that appears twice could land in two splits), optionally subsampled, and dealt into
train / calibration / evaluation with a fixed seed, stratified by label where there is one.
Errors name the file, the experiment's field and what is there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autoopt.config._sources import TABLE_SUFFIXES, SplitFiles, SplitFractions
from autoopt.errors import ConfigError

SPLITS = ("train", "calibration", "evaluation")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: Any data: tables, arrays, or folders of them.
DATA_SUFFIXES = (*TABLE_SUFFIXES, ".npz")


@dataclass(frozen=True)
class Table:
    """Samples read from one file or folder: named columns of equal length."""

    columns: dict[str, Any]
    path: Path
    #: The experiment field the path came from (``workload.onnx.data.train``).
    field: str

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def has(self, name: str) -> bool:
        return name in self.columns

    def column(self, name: str, field: str) -> Any:
        """Column ``name``; ConfigError naming the file, ``field`` and the columns there."""
        if name not in self.columns:
            raise ConfigError(
                f"{self.path}: {field}: no column '{name}'; it has {', '.join(self.columns)}"
            )
        return self.columns[name]

    def take(self, index: np.ndarray) -> Table:
        taken = {
            k: v[index] if isinstance(v, np.ndarray) else [v[i] for i in index]
            for k, v in self.columns.items()
        }
        return Table(taken, self.path, self.field)


def read_table(path: Path, field: str) -> Table:
    """A table, an .npz or an image-class folder, as a :class:`Table`."""
    if path.is_dir():
        return _image_folder(path, field)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            columns: dict[str, Any] = {k: np.asarray(arrays[k]) for k in arrays.files}
        lengths = {k: len(v) for k, v in columns.items() if v.ndim > 0}
        if not lengths or len(set(lengths.values())) != 1 or len(lengths) != len(columns):
            raise ConfigError(
                f"{path}: {field}: every array needs the samples on its first axis, the same "
                f"number in each; got {_shapes(columns)}"
            )
        return Table(columns, path, field)
    if suffix not in TABLE_SUFFIXES:
        raise ConfigError(
            f"{path}: {field}: cannot read '{suffix or path.name}' files; allowed: "
            f"{', '.join(DATA_SUFFIXES)} or a folder"
        )
    import pandas as pd

    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix == ".jsonl":
            frame = pd.read_json(path, lines=True)
        else:
            frame = pd.read_parquet(path)
    except ImportError as e:
        raise ConfigError(
            f"{path}: {field}: reading parquet needs pyarrow (pip install pyarrow): {e}"
        ) from e
    except Exception as e:  # noqa: BLE001 - any parser failure is the file's to fix
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path}: {field}: not a readable {suffix[1:]} file: {first}") from e
    if frame.empty:
        raise ConfigError(f"{path}: {field}: the file holds no rows")
    return Table({str(c): frame[c].tolist() for c in frame.columns}, path, field)


def _shapes(columns: dict[str, Any]) -> str:
    return ", ".join(f"{k} {tuple(np.shape(v))}" for k, v in columns.items())


def _image_folder(folder: Path, field: str) -> Table:
    """``folder/<class>/<image>``: one column ``image`` (paths), one ``label`` (names)."""
    images: list[str] = []
    labels: list[str] = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for image in sorted(class_dir.iterdir()):
            if image.suffix.lower() in IMAGE_SUFFIXES:
                images.append(str(image))
                labels.append(class_dir.name)
    if not images:
        raise ConfigError(
            f"{folder}: {field}: a data folder holds train.*, calibration.* and evaluation.* "
            f"({', '.join(DATA_SUFFIXES)}), or one folder of images per class; found neither"
        )
    return Table({"image": images, "label": labels}, folder, field)


def read_data(data: str | SplitFiles, field: str) -> dict[str, Table]:
    """``{"all": table}`` for one file or folder to deal, or the three given splits."""
    if isinstance(data, SplitFiles):
        return {name: read_table(Path(getattr(data, name)), f"{field}.{name}") for name in SPLITS}
    path = Path(data)
    if path.is_dir():
        given = {name: _split_file(path, name) for name in SPLITS}
        found = {k: v for k, v in given.items() if v is not None}
        if len(found) == len(SPLITS):
            return {name: read_table(p, f"{field} ({name})") for name, p in found.items()}
        if found:
            missing = [name for name in SPLITS if name not in found]
            raise ConfigError(
                f"{path}: {field}: the folder has {', '.join(p.name for p in found.values())} "
                f"but no {' or '.join(missing)} file; give all three splits or one file"
            )
    return {"all": read_table(path, field)}


def _split_file(folder: Path, name: str) -> Path | None:
    for suffix in DATA_SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def row_keys(columns: Sequence[Any]) -> list[bytes]:
    """A digest of each sample's values in ``columns`` (arrays or lists of equal length)."""
    n = len(columns[0])
    keys = []
    for i in range(n):
        h = hashlib.blake2b(digest_size=16)
        for column in columns:
            value = column[i]
            if isinstance(value, np.ndarray):
                h.update(str(value.dtype).encode() + str(value.shape).encode())
                h.update(np.ascontiguousarray(value).tobytes())
            else:
                h.update(repr(value).encode())
            h.update(b"\x00")
        keys.append(h.digest())
    return keys


def first_occurrences(keys: Sequence[bytes]) -> np.ndarray:
    """Indices of the first sample with each key, in order."""
    seen: set[bytes] = set()
    keep = []
    for i, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def subsample(n: int, limit: int | None, seed: int) -> np.ndarray:
    """``limit`` of ``n`` indices (a seeded random subset, in order), or all of them."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


def deal(
    n: int, fractions: SplitFractions, strata: np.ndarray | None, where: str
) -> dict[str, np.ndarray]:
    """Disjoint train / calibration / evaluation indices into ``n`` samples, seeded; each
    stratum (class) is dealt by the fractions on its own, so every split keeps the classes'
    shares. ConfigError (``where``: "file: field") when a split would be empty."""
    rng = np.random.default_rng(fractions.seed)
    order = rng.permutation(n)
    groups = [order] if strata is None else [order[strata[order] == c] for c in np.unique(strata)]
    bounds = np.cumsum([fractions.train, fractions.calibration, fractions.evaluation])
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for group in groups:
        cuts = [0, *np.floor(len(group) * bounds + 0.5).astype(int)]
        for name, start, stop in zip(SPLITS, cuts, cuts[1:], strict=False):
            parts[name].append(group[start:stop])
    out = {}
    for name in SPLITS:
        index = np.concatenate(parts[name]) if parts[name] else np.zeros(0, dtype=np.int64)
        if len(index) == 0:
            raise ConfigError(
                f"{where}.split.{name}: {getattr(fractions, name)} of {n} samples leaves the "
                f"{name} split empty; give more data or a larger fraction"
            )
        out[name] = rng.permutation(index)
    return out


def encode_labels(
    values: Iterable[Any],
    names: Sequence[str] | None,
    num_classes: int | None,
    where: str,
    on_name: Callable[[], str],
) -> np.ndarray:
    """Class ids (int64) from ids or names. ``names`` lists the classes in output order;
    ``on_name`` says where to give them when labels are names and there are none."""
    out = []
    index = {name: i for i, name in enumerate(names or [])}
    for row, value in enumerate(values):
        missing = value is None or (isinstance(value, float) and np.isnan(value))
        if missing or isinstance(value, bool):
            raise ConfigError(f"{where}: row {row}: missing or invalid label {value!r}")
        if isinstance(value, int | np.integer) or (
            isinstance(value, float | np.floating) and float(value).is_integer()
        ):
            out.append(int(value))
            continue
        name = str(value)
        if name not in index:
            if not index:
                raise ConfigError(
                    f"{where}: labels are class names ({name!r}, ...) and the model names no "
                    f"classes; {on_name()}"
                )
            raise ConfigError(
                f"{where}: row {row}: {name!r} is not one of the model's classes "
                f"{', '.join(index)}"
            )
        out.append(index[name])
    ids = np.asarray(out, dtype=np.int64)
    if num_classes is not None and len(ids) and (ids.min() < 0 or ids.max() >= num_classes):
        bad = int(ids[(ids < 0) | (ids >= num_classes)][0])
        raise ConfigError(
            f"{where}: label {bad} is outside the model's {num_classes} classes "
            f"(0..{num_classes - 1})"
        )
    return ids
