"""What every route of the dashboard shares: the study cache, the templates, the results
folder, and the pages for errors."""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from autoopt import api
from autoopt.dashboard import _views as V
from autoopt.dashboard._cache import Entry, StudyCache
from autoopt.errors import StorageError

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


def site_of(request: Request) -> Site:
    """The site the app serves (set by :func:`create_app`)."""
    site: Site = request.app.state.site
    return site


@dataclass
class Site:
    cache: StudyCache
    storage: str | None
    results: Path
    templates: Jinja2Templates
    refresh_ms: int
    plotly_js: Path | None

    @classmethod
    def make(
        cls,
        storage: str | None,
        results: Path,
        refresh_ms: int,
        plotly_js: Path | None,
        optuna_url: str | None,
    ) -> Site:
        templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = templates.env
        env.filters["q"] = lambda s: urllib.parse.quote(str(s), safe="")
        env.filters["fmt"] = fmt
        env.globals.update(optuna_url=optuna_url, state_labels=V.STATE_LABELS)
        return cls(StudyCache(storage), storage, results, templates, refresh_ms, plotly_js)

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    def error_page(self, request: Request, status: int, message: str) -> Response:
        title = "Not found" if status == 404 else "Error"
        return self.page(request, "error.html", status, message=message, title=title)

    def entry_or_error(self, request: Request, name: str) -> Entry | Response:
        try:
            return self.cache.get(name)
        except StorageError as e:
            return self.error_page(request, 404, str(e))
        except Exception as e:  # noqa: BLE001 - e.g. SQLite busy while a sweep commits
            log.warning("dashboard: reading study %r failed: %s", name, e)
            return self.error_page(request, 503, f"reading study '{name}' failed: {e}")

    def studies(self) -> tuple[list[dict[str, Any]], str | None]:
        """Every study's row for the studies page, most recently active first."""
        try:
            names = api.study_names(self.storage)
        except StorageError as e:
            return [], str(e)
        rows = []
        for name in names:
            try:
                record = self.cache.get(name).record
            except Exception as e:  # noqa: BLE001 - one unreadable study must not hide the rest
                rows.append({"name": name, "error": str(e)})
                continue
            rows.append(V.study_row(api.study_summary(record), api.study_target(record), record))
        rows.sort(key=lambda r: r.get("last_activity") or "", reverse=True)
        return rows, None


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers for people: 4 significant digits, integers as integers, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return "—"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.{digits}g}"
    return str(value)
