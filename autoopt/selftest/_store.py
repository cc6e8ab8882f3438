"""The per-host result cache: ``$AUTOOPT_HOME/selftest/<context>.json``.

One file per context: the host fingerprint (CPU model and flags, library versions, device),
the probe's identity (workload version, block, batch sizes) and the self-test's own code. In
it, one result per path, under a key that also covers the code of the path's methods, so an
edit to a backend re-tests exactly the paths that use it. Files are replaced atomically;
two processes writing at once may drop each other's new entries, which then run again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from autoopt.cache import autoopt_home
from autoopt.selftest._result import PathResult

log = logging.getLogger(__name__)
FOLDER = "selftest"


def digest(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ResultStore:
    """The results of one context (see the module docstring), keyed by entry key."""

    def __init__(self, context: Mapping[str, Any], root: Path | None = None) -> None:
        self.context = dict(context)
        self.path = (root or autoopt_home() / FOLDER) / f"{digest(self.context)}.json"

    def load(self) -> dict[str, PathResult]:
        try:
            data = json.loads(self.path.read_text())
            return {k: PathResult.from_dict(v) for k, v in data["results"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("self-test cache %s is unreadable (%s); running again", self.path, e)
            return {}

    def save(self, entries: Iterable[tuple[str, PathResult]]) -> None:
        """Add or replace entries, keeping those already in the file."""
        results = {k: r.to_dict() for k, r in self.load().items()}
        for key, result in entries:
            results[key] = {**result.to_dict(), "cached": False}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"context": self.context, "results": results}, indent=1))
        os.replace(tmp, self.path)
