"""A user's own evaluation sentences for an embedding workload, grouped as they name them
(JSON Lines), and keeping them out of the training text."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from autoopt.errors import WorkloadError

#: Fewest sentences a group of a user's evaluation file may hold: its 5th percentile and each
#: sentence's 10 nearest neighbours need a few dozen.
MIN_GROUP = 20


def read_eval_file(path: str | Path) -> list[tuple[str, str]]:
    """A user's evaluation sentences as ``(group, sentence)`` rows, in file order, from JSON
    Lines: one object a line, ``{"text": "...", "group": "support tickets"}`` (``group``
    optional: ``all``). The workload's metric is then the worst group's."""
    where = f"workload 'minilm': eval_file {path}"
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise WorkloadError(f"{where}: cannot be read: {e}") from e
    rows: list[tuple[str, str]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise WorkloadError(f"{where}: line {number} is not JSON: {e.msg}") from e
        text = item.get("text") if isinstance(item, dict) else None
        group = item.get("group", "all") if isinstance(item, dict) else None
        if not isinstance(text, str) or not text.strip() or not isinstance(group, str):
            raise WorkloadError(
                f"{where}: line {number} must be an object with a non-empty string 'text' "
                f"and an optional string 'group'; got {line[:80]!r}"
            )
        rows.append((group, text.strip()))
    counts = Counter(group for group, _ in rows)
    small = {group: n for group, n in sorted(counts.items()) if n < MIN_GROUP}
    if not rows or small:
        raise WorkloadError(
            f"{where}: every group needs at least {MIN_GROUP} sentences; got "
            f"{dict(small) if rows else 'none'}"
        )
    return rows


def without(rows: Sequence[tuple[str, str]], held_out: Iterable[str]) -> list[tuple[str, str]]:
    """``rows`` less any sentence of ``held_out`` (compared as the uncased tokenizer sees
    them): a user's evaluation sentences are never trained or calibrated on."""
    seen = {s.casefold() for s in held_out}
    return [(src, s) for src, s in rows if s.casefold() not in seen]
