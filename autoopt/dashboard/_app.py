"""The dashboard's web app: read-only pages and JSON over :mod:`autoopt.api`.

Every route is a GET. The study page is a shell that fetches ``/api/studies/{name}`` and polls
it; the server answers ``304 Not Modified`` while the study's revision is unchanged, so an open
page costs one cheap query per poll while a sweep runs and a rebuild only when trials arrive.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import logging
import shlex
import threading
import urllib.parse
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.gzip import GZipMiddleware

from autoopt import api
from autoopt.dashboard import _views as V
from autoopt.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from autoopt.search.records import StudyRecord

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
#: Files under the results directory that may be served (plots and tables, not models or DBs).
ARTIFACT_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg", ".csv", ".json", ".md", ".txt"}
RESULT_FILES = ("pareto.png", "trials.csv", "pareto.csv")
# Everything is served from this origin; plotly sets inline styles, so styles may be inline.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)


@dataclass
class _Entry:
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


class _StudyCache:
    """The last record and encoded payload of each study, keyed by its revision."""

    def __init__(self, storage: str | None) -> None:
        self.storage = storage
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, threading.Lock] = {}

    def get(self, name: str) -> _Entry:
        lock = self._locks.setdefault(name, threading.Lock())
        with lock:  # one rebuild per study at a time; other pollers wait for its result
            revision = api.study_revision(name, self.storage)
            entry = self._entries.get(name)
            if entry is None or entry.revision != revision:
                record = api.read_study(name, self.storage)
                payload = V.study_payload(record, api.study_target(record))
                payload["revision"] = revision
                body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
                entry = _Entry(revision, record, body, f'"{revision}"')
                self._entries[name] = entry
            return entry

    def warm(self) -> None:
        """Read every study once, so the first page view does not pay Optuna's cold read."""
        try:
            for name in api.study_names(self.storage):
                self.get(name)
        except Exception as e:  # noqa: BLE001 - warming is an optimisation; pages report errors
            log.warning("dashboard: could not pre-read the studies: %s", e)


#: plotly.js's "basic" bundle (scatter, bar, pie), vendored: it starts 4-6x faster than the
#: full one (static/vendor/README.md). Without it the full bundle is served from site-packages.
PLOTLY_BASIC = HERE / "static" / "vendor" / "plotly-basic.min.js"


def _plotly_js() -> Path | None:
    # Always served by us, never a CDN: the dashboard must work offline.
    if PLOTLY_BASIC.is_file():
        return PLOTLY_BASIC
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def safe_artifact(root: Path, relative: str) -> Path | None:
    """The file ``relative`` names under ``root``, or None if it is absent, not an artifact
    type, or would escape ``root`` (``..``, absolute paths, symlinks pointing out)."""
    if not relative or relative.startswith(("/", "\\")) or "\\" in relative or "\x00" in relative:
        return None
    parts = PurePosixPath(relative).parts
    if any(p in ("..", ".") or ":" in p for p in parts):
        return None
    root = root.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    if path.suffix.lower() not in ARTIFACT_SUFFIXES:
        return None
    return path


def create_app(
    storage: str | None,
    results_dir: str | Path = "results",
    *,
    optuna_url: str | None = None,
    refresh_ms: int = 3000,
    warm: bool = True,
) -> FastAPI:
    """The dashboard app over the study database ``storage`` (an SQLAlchemy URL or path).

    Args:
        storage: The study database; None means autoopt's default.
        results_dir: Where ``autoopt run`` writes per-study tables and plots; its files
            (and only those) are served under ``/results/``.
        optuna_url: Where Optuna's own dashboard runs, to link to it; None hides the link.
        refresh_ms: How often an open study page polls for new trials.
        warm: Read every study in the background at start-up.
    """
    cache = _StudyCache(storage)
    results = Path(results_dir)
    plotly_js = _plotly_js()

    def warm_up() -> None:
        cache.warm()
        if plotly_js is not None:
            _gzipped(plotly_js)  # so the first visitor does not wait for it to compress

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if warm:
            threading.Thread(target=warm_up, name="dashboard-warm", daemon=True).start()
        yield

    app = FastAPI(
        title="autoopt dashboard",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.add_middleware(GZipMiddleware, minimum_size=2048)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters["q"] = lambda s: urllib.parse.quote(str(s), safe="")
    env.filters["fmt"] = _fmt
    env.globals.update(optuna_url=optuna_url, state_labels=V.STATE_LABELS)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def error_page(request: Request, status: int, message: str) -> Response:
        return page(
            request,
            "error.html",
            status,
            message=message,
            title="Not found" if status == 404 else "Error",
        )

    def entry_or_error(request: Request, name: str) -> _Entry | Response:
        try:
            return cache.get(name)
        except StorageError as e:
            return error_page(request, 404, str(e))
        except Exception as e:  # noqa: BLE001 - e.g. SQLite busy while a sweep commits
            log.warning("dashboard: reading study %r failed: %s", name, e)
            return error_page(request, 503, f"reading study '{name}' failed: {e}")

    # ---- pages -----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def studies_page(request: Request) -> Response:
        rows, error = _studies(cache)
        return page(
            request,
            "studies.html",
            rows=rows,
            error=error,
            storage=api.storage_url(storage),
            refresh_ms=max(refresh_ms, 2000),
        )

    @app.get("/studies/{name}", include_in_schema=False)
    def study_page(request: Request, name: str) -> Response:
        entry = entry_or_error(request, name)
        if isinstance(entry, Response):
            return entry
        record = entry.record
        files = {
            f: f"/results/{urllib.parse.quote(name)}/{f}"
            for f in RESULT_FILES
            if safe_artifact(results, f"{name}/{f}") is not None
        }
        refresh = request.query_params.get("refresh", "")
        return page(
            request,
            "study.html",
            study=record,
            files=files,
            target=V.target_label(api.study_target(record)),
            refresh_ms=int(refresh) if refresh.isdigit() and int(refresh) >= 200 else refresh_ms,
        )

    @app.get("/studies/{name}/trials/{number}", include_in_schema=False)
    def trial_page(request: Request, name: str, number: int) -> Response:
        entry = entry_or_error(request, name)
        if isinstance(entry, Response):
            return entry
        record = entry.record
        trial = _trial(record, number)
        if trial is None:
            return error_page(request, 404, f"study '{name}' has no trial {number}")
        fams = V.families(record)
        numbers = [t.number for t in record.trials]
        i = numbers.index(number)
        command = [
            "autoopt",
            "export",
            "--study",
            name,
            "--trial",
            str(number),
            "--out",
            f"deploy/{name}-trial{number}",
        ]
        if storage:
            command += ["--storage", api.storage_url(storage)]
        return page(
            request,
            "trial.html",
            study=record,
            t=trial,
            ratios=record.ratios(trial),
            timing=V.timing_facts(trial),
            recipe=V.recipe_rows(trial, fams),
            metrics=V.metric_rows(record, trial),
            stages=V.stage_rows(record, trial),
            hardware=V.flat("", trial.hardware),
            runner=V.flat("", trial.runner),
            category=V.trial_category(trial),
            export_command=shlex.join(command),
            prev=numbers[i - 1] if i > 0 else None,
            next=numbers[i + 1] if i + 1 < len(numbers) else None,
            extra={
                k: trial.user_attrs.get(k)
                for k in ("build_s", "measure_s")
                if V.num(trial.user_attrs.get(k)) is not None
            },
            retries=trial.user_attrs.get("retries") or 0,
        )

    @app.get("/studies/{name}/compare", include_in_schema=False)
    def compare_page(request: Request, name: str, trials: str = "") -> Response:
        entry = entry_or_error(request, name)
        if isinstance(entry, Response):
            return entry
        record = entry.record
        wanted, unknown = _numbers(trials), []
        chosen = []
        for n in wanted:
            t = _trial(record, n)
            if t is None:
                unknown.append(n)
            elif t not in chosen:
                chosen.append(t)
        rows = V.compare_rows(record, chosen) if chosen else []
        return page(
            request,
            "compare.html",
            study=record,
            trials=chosen,
            rows=rows,
            unknown=unknown,
            query=trials,
        )

    # ---- JSON ------------------------------------------------------------------------------
    @app.get("/api/studies")
    def studies_json() -> JSONResponse:
        rows, error = _studies(cache)
        return JSONResponse({"studies": rows, "error": error})

    @app.get("/api/studies/{name}")
    def study_json(request: Request, name: str) -> Response:
        try:
            entry = cache.get(name)
        except StorageError as e:
            return JSONResponse({"detail": str(e)}, status_code=404)
        except Exception as e:  # noqa: BLE001 - transient read failure; the page retries
            return JSONResponse(
                {"detail": f"reading study '{name}' failed: {e}"},
                status_code=503,
                headers={"Retry-After": "2"},
            )
        headers = {"ETag": entry.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == entry.etag:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(
                entry.compressed,
                media_type="application/json",
                headers={**headers, "Content-Encoding": "gzip"},
            )
        return Response(entry.body, media_type="application/json", headers=headers)

    @app.get("/api/studies/{name}/trials/{number}")
    def trial_json(name: str, number: int) -> JSONResponse:
        try:
            record = cache.get(name).record
        except StorageError as e:
            return JSONResponse({"detail": str(e)}, status_code=404)
        trial = _trial(record, number)
        if trial is None:
            return JSONResponse({"detail": f"study '{name}' has no trial {number}"}, 404)
        data = {k: v for k, v in vars(trial).items() if k != "user_attrs"}
        data.update(
            started=V._iso(trial.started),
            completed=V._iso(trial.completed),
            duration_s=trial.duration_s,
            ratios=record.ratios(trial),
            timing=V.timing_facts(trial),
            category=V.trial_category(trial),
        )
        return JSONResponse(jsonable_encoder(V.clean(data)))

    # ---- files -----------------------------------------------------------------------------
    @app.get("/results/{path:path}", include_in_schema=False)
    def result_file(path: str) -> Response:
        found = safe_artifact(results, path)
        if found is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return FileResponse(found)

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly(request: Request) -> Response:
        if plotly_js is None:
            return Response("plotly.js not found: install the 'plotly' package", 500)
        headers = {"Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
        if "gzip" not in request.headers.get("accept-encoding", ""):
            return FileResponse(plotly_js, media_type="text/javascript", headers=headers)
        # Compressed once, not per request (3.5 MB at GZipMiddleware's level 9 costs ~0.3 s).
        return Response(
            _gzipped(plotly_js),
            media_type="text/javascript",
            headers={**headers, "Content-Encoding": "gzip"},
        )

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.cache = cache
    return app


@functools.cache
def _gzipped(path: Path) -> bytes:
    return gzip.compress(path.read_bytes(), compresslevel=6)


def _studies(cache: _StudyCache) -> tuple[list[dict[str, Any]], str | None]:
    try:
        names = api.study_names(cache.storage)
    except StorageError as e:
        return [], str(e)
    rows = []
    for name in names:
        try:
            record = cache.get(name).record
        except Exception as e:  # noqa: BLE001 - one unreadable study must not hide the rest
            rows.append({"name": name, "error": str(e)})
            continue
        rows.append(V.study_row(api.study_summary(record), api.study_target(record), record))
    rows.sort(key=lambda r: r.get("last_activity") or "", reverse=True)
    return rows, None


def _trial(record: StudyRecord, number: int) -> Any:
    return next((t for t in record.trials if t.number == number), None)


def _numbers(text: str) -> list[int]:
    out = []
    for part in text.replace(" ", ",").split(","):
        if part.strip().lstrip("#").isdigit():
            out.append(int(part.strip().lstrip("#")))
    return out


def _fmt(value: Any, digits: int = 4) -> str:
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
