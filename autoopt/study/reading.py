"""Reading studies: a study as a typed record, the storage's studies, and incremental reads
for a reader that polls while a sweep writes (the dashboard). :mod:`autoopt.api` exposes
them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from autoopt.study.records import StudyRecord, study_record
from autoopt.study.storage import load_optuna_study, normalize_url, open_storage


def load_study(name: str, storage: str | None = None) -> StudyRecord:
    """Read a study: every trial as a typed record, the baseline and the feasible front."""
    study = load_optuna_study(name, storage)
    return study_record(study, normalize_url(storage))


@dataclass(frozen=True)
class StudySummary:
    name: str
    workload: str
    metric_name: str
    counts: dict[str, int]
    n_trials: int
    best_speedup: float | None
    last_activity: dt.datetime | None


def list_studies(storage: str | None = None) -> list[StudySummary]:
    """Every study in the storage with trial counts and its best feasible speedup."""
    import optuna

    rdb = open_storage(storage)
    return [
        study_summary(
            study_record(
                optuna.load_study(study_name=s.study_name, storage=rdb), normalize_url(storage)
            )
        )
        for s in optuna.get_all_study_summaries(rdb, include_best_trial=False)
    ]


# ---- Reads for pollers (the dashboard) ------------------------------------------------------
# A dashboard re-reads a study every few seconds while a sweep writes to it. Optuna's own cache
# of finished trials lives in the Study object, so one Study per (storage, name) is kept for
# the life of the process; each read then fetches only the trials that are new or running.
_readers: dict[tuple[str, str], Any] = {}
_storages: dict[str, Any] = {}


def _reader(name: str, storage: str | None) -> Any:
    key = (normalize_url(storage), name)
    study = _readers.get(key)
    if study is None:
        study = _readers.setdefault(key, load_optuna_study(name, storage))
    return study


def study_names(storage: str | None = None) -> list[str]:
    """The names of the studies in a storage, without reading their trials."""
    import optuna

    url = normalize_url(storage)
    rdb = _storages.get(url)
    if rdb is None:  # opening checks the schema (~0.5 s); a poller opens it once
        rdb = _storages.setdefault(url, open_storage(url))
    return optuna.get_all_study_names(rdb)


def storage_url(storage: str | None = None) -> str:
    """The SQLAlchemy URL a ``--storage`` value means (``None``: the default study database)."""
    return normalize_url(storage)


def read_study(name: str, storage: str | None = None) -> StudyRecord:
    """:func:`load_study` for a reader that polls: the same record, read incrementally.

    Finished trials are cached in this process (they never change), so a repeated read costs
    one query for the new and running trials plus building the record.
    """
    return study_record(_reader(name, storage), normalize_url(storage))


def study_revision(name: str, storage: str | None = None) -> str:
    """A token that changes when a trial is added, changes state or gains attributes.

    Cheap enough to call every second: compare it with the last one before :func:`read_study`.
    """
    import hashlib

    digest = hashlib.blake2b(digest_size=8)
    for t in _reader(name, storage).get_trials(deepcopy=False):
        digest.update(
            f"{t.number}:{t.state.name}:{len(t.user_attrs)}:{len(t.system_attrs)};".encode()
        )
    return digest.hexdigest()


def study_summary(record: StudyRecord) -> StudySummary:
    """The :class:`StudySummary` of a study already read (as :func:`list_studies` gives)."""
    speedups = [record.ratios(t).get("speedup") for t in record.front()]
    times = [t.completed or t.started for t in record.trials if t.completed or t.started]
    return StudySummary(
        name=record.name,
        workload=record.workload,
        metric_name=record.metric_name,
        counts=record.counts(),
        n_trials=len(record.trials),
        best_speedup=max((x for x in speedups if x), default=None),
        last_activity=max(times, default=None),  # type: ignore[type-var]
    )


def study_target(record: StudyRecord) -> dict[str, Any]:
    """The hardware target the study's trials ran on: ``{"name", "device", "resources",
    "labels"}`` (see :attr:`StudyRecord.target`)."""
    return record.target
