"""The dashboard's per-study cache: the last record and encoded payload of each study, keyed
by its revision, so polling pages cost one cheap query until trials arrive."""

from __future__ import annotations

import gzip
import json
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autoopt import api
from autoopt.dashboard import _views as V

if TYPE_CHECKING:
    from autoopt.study.records import StudyRecord

log = logging.getLogger(__name__)


@dataclass
class Entry:
    revision: str
    record: StudyRecord
    body: bytes
    etag: str
    _gzip: bytes | None = None

    @property
    def compressed(self) -> bytes:
        # Compressed once per revision: every open page polls the same body.
        if self._gzip is None:
            self._gzip = gzip.compress(self.body, compresslevel=6)
        return self._gzip


class StudyCache:
    """The last record and encoded payload of each study, keyed by its revision."""

    def __init__(self, storage: str | None) -> None:
        self.storage = storage
        self._entries: dict[str, Entry] = {}
        self._locks: dict[str, threading.Lock] = {}

    def get(self, name: str) -> Entry:
        lock = self._locks.setdefault(name, threading.Lock())
        with lock:  # one rebuild per study at a time; other pollers wait for its result
            revision = api.study_revision(name, self.storage)
            entry = self._entries.get(name)
            if entry is None or entry.revision != revision:
                record = api.read_study(name, self.storage)
                payload = V.study_payload(record, api.study_target(record))
                payload["revision"] = revision
                body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
                entry = Entry(revision, record, body, f'"{revision}"')
                self._entries[name] = entry
            return entry

    def warm(self) -> None:
        """Read every study once, so the first page view does not pay Optuna's cold read."""
        try:
            for name in api.study_names(self.storage):
                self.get(name)
        except Exception as e:  # noqa: BLE001 - warming is an optimisation; pages report errors
            log.warning("dashboard: could not pre-read the studies: %s", e)
