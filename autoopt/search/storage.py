"""Opening the study database (any SQLAlchemy URL) and listing what it holds."""

from __future__ import annotations

import random
import time
from pathlib import Path

import optuna

from autoopt.config import DEFAULT_STORAGE
from autoopt.errors import StorageError

SCHEMA_RACE_RETRIES = 5


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
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else {},
            )
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
