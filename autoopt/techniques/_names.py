"""Module-path patterns, as configs name layers: ``fc2``, ``encoder.layer.*.output.dense``."""

from __future__ import annotations

import re
from collections.abc import Iterable


def _pattern(name: str) -> re.Pattern[str]:
    parts = [("[^.]+" if part == "*" else re.escape(part)) for part in name.split(".")]
    return re.compile(r"\.".join(parts) + r"(\..+)?")


def matches(path: str, name: str) -> bool:
    """Whether module ``path`` is ``name`` or inside it (``*`` = one name component)."""
    return _pattern(name).fullmatch(path) is not None


def covered(path: str, names: Iterable[str]) -> bool:
    """Whether module ``path`` is one of ``names`` or inside one."""
    return any(matches(path, n) for n in names)
