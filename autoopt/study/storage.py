"""Opening the study database (any SQLAlchemy URL) and listing what it holds."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from autoopt.config import DEFAULT_STORAGE
from autoopt.errors import StorageError

SCHEMA_RACE_RETRIES = 5
#: How long a SQLite writer waits for another's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str | None) -> str:
    url = url or DEFAULT_STORAGE
    if "://" not in url:  # a bare path means a SQLite file
        url = f"sqlite:///{url}"
    return url


def open_storage(url: str | None, *, create: bool = False) -> optuna.storages.RDBStorage:
    url = normalize_url(url)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise StorageError(f"{url}: no study database at {path}; run a sweep first")
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(SCHEMA_RACE_RETRIES + 1):
        try:
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else {},
            )
            if url.startswith("sqlite:///"):
                _sqlite_fast_commits(storage, create=create)
            return storage
        except (IntegrityError, ProgrammingError, OperationalError) as e:
            # SQLite: two threads creating the tables of a new file ("already exists").
            if isinstance(e, OperationalError) and "already exists" not in str(e):
                raise StorageError(f"cannot open study storage {url}: {e}") from e
            # Two processes opening a fresh server database at once both create Optuna's tables
            # (PostgreSQL: "duplicate key ... pg_type_typname_nsp_index", "relation already
            # exists"); the loser's DDL is rolled back and a retry finds the tables made.
            if attempt == SCHEMA_RACE_RETRIES:
                raise StorageError(f"cannot open study storage {url}: {e}") from e
            time.sleep(0.2 + random.random() * 0.5)
        except Exception as e:  # noqa: BLE001 - driver missing, server down, bad URL
            raise StorageError(f"cannot open study storage {url}: {e}") from e
    raise AssertionError("unreachable")  # pragma: no cover


def _sqlite_fast_commits(storage: optuna.storages.RDBStorage, *, create: bool) -> None:
    """WAL journal, ``synchronous=NORMAL`` and a busy timeout for a SQLite study file.

    A trial still takes several commits (ask, each sampled parameter, the attributes, the
    tell), and in SQLite's default rollback journal every commit rewrites the journal and
    syncs twice: that was much of the controller's overhead per trial. In WAL a commit is one
    append, readers (the dashboard) never block the writer, and NORMAL loses nothing when a
    process is killed (only an OS crash may drop the last commits). The journal mode is a
    property of the file: it is set once, by the controller that opens it for writing, in its
    own short connection; switching it needs the file to itself, so with another connection
    open it stays as it is.
    """
    import sqlite3

    from sqlalchemy import event

    if create:
        path = storage.engine.url.database
        try:
            with contextlib.closing(sqlite3.connect(str(path), timeout=5)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:  # locked by another process: keep its journal mode
            pass

    def pragmas(connection: object, _record: object) -> None:
        cursor = connection.cursor()  # type: ignore[attr-defined]
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", pragmas)
    # Connections Optuna opened while creating the schema predate the listener.
    storage.engine.dispose()


def load_optuna_study(name: str, url: str | None) -> optuna.Study:
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError as e:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise StorageError(
            f"{normalize_url(url)}: no study named '{name}'; studies here: "
            f"{', '.join(names) or '(none)'}"
        ) from e


def set_user_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """``trial.set_user_attr`` for every item, as one upsert statement in one transaction.

    Optuna's public setter is a transaction per attribute (a session, a trial lookup, an
    upsert built by the ORM, a commit: 1-2 ms each), and a tell writes some 30 of them: that
    was most of the controller's overhead per trial. Here the rows go to Optuna's own
    ``trial_user_attributes`` table in one ``executemany`` upsert (SQLite and PostgreSQL);
    any other storage or dialect, or a schema this does not recognize, gets the public path.
    """
    if not attrs:
        return
    if not _bulk_upsert(trial, attrs):
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    # Keep the Trial's view what set_user_attr would have made it.
    trial._cached_frozen_trial.user_attrs.update(attrs)


def _bulk_upsert(trial: optuna.Trial, attrs: Mapping[str, Any]) -> bool:
    import json

    from sqlalchemy.exc import SQLAlchemyError

    storage = getattr(trial.storage, "_backend", trial.storage)
    if not isinstance(storage, optuna.storages.RDBStorage):
        return False
    dialect = storage.engine.dialect.name
    try:
        from optuna.storages._rdb.models import TrialUserAttributeModel

        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
        else:
            return False
        table = TrialUserAttributeModel.__table__
        stmt = insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.trial_id, table.c.key],
            set_={"value_json": stmt.excluded.value_json},
        )
        rows = [
            {"trial_id": trial._trial_id, "key": key, "value_json": json.dumps(value)}
            for key, value in attrs.items()
        ]
        with storage.engine.begin() as conn:
            conn.execute(stmt, rows)
    except (ImportError, AttributeError, SQLAlchemyError):
        return False  # nothing was committed: the transaction rolled back
    return True
