"""Opening the study database (any SQLAlchemy URL) and listing what it holds."""

from __future__ import annotations

from pathlib import Path

import optuna

from autoopt.config import DEFAULT_STORAGE
from autoopt.errors import StorageError


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
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else {},
        )
    except Exception as e:  # noqa: BLE001 - driver missing, server down, bad URL
        raise StorageError(f"cannot open study storage {url}: {e}") from e


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
