"""Content-addressed stage cache shared by every trial (and every worker that sees the root).

An entry is the output of one stage, stored under the hash of (its input's key, the stage key,
the stage config, the stage's code version). Entries are written to a private temporary folder
and published with an atomic rename, so concurrent writers of the same stage never corrupt it:
the first rename wins and later builders discard their copy.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoopt.artifacts import Artifact, load_artifact

META = "meta.json"


@functools.cache
def code_version(obj: Any) -> str:
    """Hash of the source file that implements a stage: editing the code invalidates its cache."""
    try:
        source = Path(inspect.getsourcefile(obj) or "").read_bytes()  # type: ignore[arg-type]
    except (OSError, TypeError):
        source = repr(obj).encode()
    return hashlib.sha256(source).hexdigest()[:12]


def stage_key(parent: str, stage: str, config: Mapping[str, Any], code: str) -> str:
    blob = json.dumps(
        {"parent": parent, "stage": stage, "config": config, "code": code},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    meta: dict[str, Any]

    def load(self) -> Artifact:
        return load_artifact(self.path, self.meta["kind"])


class StageCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def lookup(self, key: str) -> CacheEntry | None:
        path = self.path(key)
        meta_path = path / META
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return CacheEntry(key, path, meta)

    def publish(self, key: str, artifact: Artifact, meta: Mapping[str, Any]) -> CacheEntry:
        """Store an artifact; if another writer published the key first, keep theirs."""
        existing = self.lookup(key)
        if existing is not None:
            return existing
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            artifact.save(tmp)
            full_meta = {**meta, "key": key, "kind": artifact.kind, "created": time.time()}
            # meta.json is written last: an entry without it is never read.
            (tmp / META).write_text(json.dumps(full_meta, indent=1, default=str))
            try:
                os.rename(tmp, target)
            except OSError:
                if self.lookup(key) is None:
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        entry = self.lookup(key)
        assert entry is not None  # noqa: S101 - we just published it
        return entry

    def evict(self, key: str) -> bool:
        path = self.path(key)
        if not path.exists():
            return False
        shutil.rmtree(path, ignore_errors=True)
        return True

    def entries(self) -> list[CacheEntry]:
        out = []
        for meta_path in self.root.glob(f"*/*/{META}"):
            entry = self.lookup(meta_path.parent.name)
            if entry is not None:
                out.append(entry)
        return out
