"""Content-addressed stage cache shared by every trial (and every worker that sees the root).

An entry is the output of one stage, stored under the hash of (its input's key, the stage key,
the stage config, the stage's code version). Its ``meta.json`` records the artifact kind, the
stage's own metadata and a manifest of the files (size and SHA-256). Entries are immutable: a
key names one content, so whoever publishes it first is kept and later builders discard theirs.

The root is a local folder (a shared mount such as NFS works the same way) or an fsspec URL
(``s3://bucket/prefix``, ``gcs://...``, ``memory://...``; ``file://`` means a local folder).

Local root, layout ``<root>/<key[:2]>/<key>/{model files, meta.json}``: an entry is written
into a private temporary folder, ``meta.json`` last, and published with one atomic rename; the
first rename wins, a later one fails (the target exists) and that writer drops its copy.

URL root, layout ``<root>/<key>/<writer-id>/{model files}`` and ``<root>/<key>/meta.json``:
a writer uploads into a folder no other writer uses, then writes ``meta.json`` (naming that
folder) with a single object write, the commit point. The write asks for create-only
(``pipe_file(mode="create")``): on stores where that is an atomic conditional put (S3's
``If-None-Match``, GCS generation preconditions) exactly one meta is ever written. Where the
store cannot do that, fsspec checks and then writes, and two writers may both find no meta and
both write one; the last write stays. That race is harmless: each writer's folder was complete
before its meta was written and is never deleted by a writer once its meta has been written,
so a reader follows whichever meta it reads to a complete copy of the same content (the
overwritten writer's folder is left behind as garbage, nothing worse). A writer whose
create-only write was refused deletes its own folder, which no meta names.

A lookup on a URL root reads ``meta.json``, downloads the named folder, checks it against the
manifest and publishes it into a local mirror (``$AUTOOPT_HOME/stage-mirror/<hash of root>/``,
laid out like a local root, by the same atomic rename), so a :class:`CacheEntry` always points
at local files and the pipeline needs no change. The mirror is consulted first. ``evict``
removes the entry from the store (meta.json first) and from this machine's mirror; other
machines' mirrors keep their copies, which is harmless since a key always names one content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoopt.artifacts import Artifact, load_artifact
from autoopt.errors import CandidateError

log = logging.getLogger(__name__)
META = "meta.json"
MIRROR_DIR = "stage-mirror"
_TMP = ".tmp-"
_EVICTING = ".evict-"
#: How long a builder waits for another building the same stage (a student trains for tens
#: of minutes on a small host).
BUILD_LOCK_TIMEOUT_S = 6 * 3600.0


def code_version(obj: Any) -> str:
    """The code a stage runs, hashed with every module it imports (:mod:`autoopt.fingerprint`):
    editing any of it invalidates the stages it builds."""
    from autoopt.fingerprint import code_fingerprint

    return code_fingerprint(obj)


def stage_key(parent: str, stage: str, config: Mapping[str, Any], code: str) -> str:
    blob = json.dumps(
        {"parent": parent, "stage": stage, "config": config, "code": code},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def is_url(root: str | Path) -> bool:
    """True for an fsspec URL other than ``file://`` (which is a local folder)."""
    return isinstance(root, str) and "://" in root and not root.startswith("file://")


def resolve_root(root: str | Path) -> str:
    """A cache root as workers elsewhere should receive it: URLs unchanged, paths absolute."""
    if is_url(root):
        scheme, _, rest = str(root).partition("://")
        return f"{scheme}://{rest.rstrip('/')}"
    if isinstance(root, str) and root.startswith("file://"):
        root = root.removeprefix("file://")
    return str(Path(root).expanduser().resolve())


def autoopt_home() -> Path:
    return Path(os.environ.get("AUTOOPT_HOME", Path.home() / ".cache" / "autoopt"))


def _manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """Every file of an entry (but meta.json) with its size and SHA-256."""
    out = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel == META:
            continue
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out[rel] = {"size": path.stat().st_size, "sha256": digest.hexdigest()}
    return out


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    meta: dict[str, Any]

    def load(self) -> Artifact:
        return load_artifact(self.path, self.meta["kind"])


class StageCache:
    """A stage cache at a local folder or an fsspec URL (see the module docstring).

    ``root`` is always a local folder: the cache itself, or for a URL the local mirror that
    entries are downloaded into; ``url`` is what was given (resolved).
    """

    def __init__(self, root: str | Path) -> None:
        self.url = resolve_root(root)
        self._fs: Any = None
        self._remote = ""
        if is_url(self.url):
            import fsspec

            self._fs, self._remote = fsspec.core.url_to_fs(self.url)
            self._remote = self._remote.rstrip("/")
            digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
            self.root = autoopt_home() / MIRROR_DIR / digest
        else:
            self.root = Path(self.url)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Where the entry's files are (or would be) on this machine."""
        return self.root / key[:2] / key

    @contextlib.contextmanager
    def building(self, key: str, timeout_s: float = BUILD_LOCK_TIMEOUT_S) -> Iterator[None]:
        """Held while this process builds ``key``: a second builder of the same stage on this
        machine waits, then finds the entry published (look it up again inside). Two trials
        that share a student would otherwise both train it. The OS releases the lock of a
        builder that dies or is cancelled."""
        from filelock import FileLock, Timeout

        locks = self.root / ".locks"
        locks.mkdir(exist_ok=True)
        try:
            with FileLock(str(locks / f"{key}.lock"), timeout=timeout_s):
                yield
        except Timeout as e:
            raise CandidateError(
                f"another build of stage {key} held its lock for over {timeout_s:g}s",
                stage="cache",
            ) from e

    # ---- reading -------------------------------------------------------------------------
    def lookup(self, key: str) -> CacheEntry | None:
        entry = self._lookup_local(key)
        if entry is not None or self._fs is None:
            return entry
        return self._fetch(key)

    def _lookup_local(self, key: str) -> CacheEntry | None:
        path = self.path(key)
        try:
            meta = json.loads((path / META).read_text())
        except (OSError, json.JSONDecodeError):
            return None  # no meta.json: not (or no longer) an entry
        return CacheEntry(key, path, meta)

    def entries(self) -> list[CacheEntry]:
        """Every published entry. For a URL root the metas are read from the store and each
        entry's ``path`` is where :meth:`lookup` mirrors it (nothing is downloaded here)."""
        if self._fs is None:
            out = []
            for meta_path in self.root.glob(f"*/*/{META}"):
                entry = self._lookup_local(meta_path.parent.name)
                if entry is not None:
                    out.append(entry)
            return out
        metas = self._fs.glob(f"{self._remote}/*/{META}")
        out = []
        for path, blob in (self._fs.cat(metas, on_error="omit") if metas else {}).items():
            try:
                meta = json.loads(blob)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            key = path.rstrip("/").split("/")[-2]
            out.append(CacheEntry(key, self.path(key), meta))
        return out

    # ---- writing -------------------------------------------------------------------------
    def publish(self, key: str, artifact: Artifact, meta: Mapping[str, Any]) -> CacheEntry:
        """Store an artifact; if another writer published the key first, keep theirs."""
        existing = self.lookup(key)
        if existing is not None:
            return existing
        writer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = self._tmpdir(key)
        try:
            artifact.save(tmp)
            full_meta = {
                **meta,
                "key": key,
                "kind": artifact.kind,
                "created": time.time(),
                "writer": writer,
                "files": _manifest(tmp),
            }
            blob = json.dumps(full_meta, indent=1, default=str)
            if self._fs is not None:
                committed = self._commit_remote(key, writer, tmp, blob)
                if committed != writer:  # another writer's entry is the published one
                    entry = self.lookup(key)
                    if entry is not None:
                        return entry
                    # Its meta names a folder that is gone or broken (evicted meanwhile):
                    # publish ours over it.
                    self._commit_remote(key, writer, tmp, blob, overwrite=True)
            # meta.json is written last: an entry without it is never read.
            (tmp / META).write_text(blob)
            self._install(tmp, key)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        entry = self._lookup_local(key)
        if entry is None:
            raise OSError(f"stage cache {self.url}: entry {key} vanished right after publishing")
        return entry

    def evict(self, key: str) -> bool:
        found = False
        path = self.path(key)
        if path.exists():
            # Renamed away first, so no reader ever sees a half-deleted entry with its meta.
            doomed = path.parent / f"{_EVICTING}{key}-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(path, doomed)
                found = True
            except FileNotFoundError:
                pass  # evicted by someone else meanwhile
            else:
                shutil.rmtree(doomed, ignore_errors=True)
        if self._fs is not None:
            base = f"{self._remote}/{key}"
            try:
                self._fs.rm_file(f"{base}/{META}")  # the commit point goes first
                found = True
            except FileNotFoundError:
                pass
            try:
                self._fs.rm(base, recursive=True)
            except FileNotFoundError:
                pass
        return found

    # ---- internals -----------------------------------------------------------------------
    def _tmpdir(self, key: str) -> Path:
        parent = self.path(key).parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f"{_TMP}{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        return tmp

    def _install(self, tmp: Path, key: str) -> None:
        """Atomic rename of a complete folder (meta.json included) into place; if the key is
        already there, the folder there is kept."""
        try:
            os.rename(tmp, self.path(key))
        except OSError:
            if self._lookup_local(key) is None:
                raise

    def _commit_remote(
        self, key: str, writer: str, local: Path, blob: str, overwrite: bool = False
    ) -> str:
        """Upload ``local`` as ``writer``'s folder, then write meta.json; returns the writer
        whose meta is published (ours, unless another writer's came first)."""
        fs, base = self._fs, f"{self._remote}/{key}"
        folder = f"{base}/{writer}"
        if not fs.exists(folder):
            for path in sorted(p for p in local.rglob("*") if p.is_file()):
                target = f"{folder}/{path.relative_to(local).as_posix()}"
                fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                fs.put_file(str(path), target)
        if overwrite:
            fs.pipe_file(f"{base}/{META}", blob.encode())
            return writer
        try:
            _create(fs, f"{base}/{META}", blob.encode())
            return writer
        except FileExistsError:
            fs.rm(folder, recursive=True)  # no meta names it
            try:
                return str(json.loads(fs.cat_file(f"{base}/{META}"))["writer"])
            except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
                return ""

    def _fetch(self, key: str) -> CacheEntry | None:
        """Download the published folder of ``key`` into the mirror; None if there is none."""
        base = f"{self._remote}/{key}"
        try:
            blob = self._fs.cat_file(f"{base}/{META}")
            meta = json.loads(blob)
            writer, files = str(meta["writer"]), dict(meta["files"])
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            log.warning("stage cache %s: unreadable %s/%s (%s); ignored", self.url, key, META, e)
            return None
        tmp = self._tmpdir(key)
        try:
            for rel in files:
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self._fs.get_file(f"{base}/{writer}/{rel}", str(target))
            got = _manifest(tmp)
            if got != files:
                log.warning(
                    "stage cache %s: %s/%s does not match its meta.json; ignored",
                    self.url,
                    key,
                    writer,
                )
                return None
            (tmp / META).write_bytes(blob)
            self._install(tmp, key)
        except FileNotFoundError:
            return None  # evicted while we read it
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self._lookup_local(key)


def _create(fs: Any, path: str, data: bytes) -> None:
    """Write ``path`` only if it does not exist (FileExistsError otherwise): an atomic
    conditional put where the store has one, else check-then-write."""
    try:
        fs.pipe_file(path, data, mode="create")
    except TypeError:  # fsspec older than mode="create"
        if fs.exists(path):
            raise FileExistsError(path) from None
        fs.pipe_file(path, data)
