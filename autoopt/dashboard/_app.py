"""The dashboard's web app: read-only pages and JSON over :mod:`autoopt.api`.

Every route is a GET. The study page is a shell that fetches ``/api/studies/{name}`` and polls
it; the server answers ``304 Not Modified`` while the study's revision is unchanged, so an open
page costs one cheap query per poll while a sweep runs and a rebuild only when trials arrive.
Routes live in :mod:`._pages`, :mod:`._json` and :mod:`._files`; :mod:`._views` computes what
they show from the public read-side records.
"""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware

from autoopt.dashboard import _files, _json, _pages
from autoopt.dashboard._files import gzipped, plotly_js
from autoopt.dashboard._site import HERE, Site

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

# Everything is served from this origin; plotly sets inline styles, so styles may be inline.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)


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
    site = Site.make(storage, Path(results_dir), refresh_ms, plotly_js(), optuna_url)

    def warm_up() -> None:
        site.cache.warm()
        if site.plotly_js is not None:
            gzipped(site.plotly_js)  # so the first visitor does not wait for it to compress

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

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    for module in (_pages, _json, _files):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.site = site
    app.state.cache = site.cache
    return app
