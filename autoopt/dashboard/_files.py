"""Files the dashboard serves: result plots and tables (and only those), and plotly.js."""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from autoopt.dashboard._site import HERE, site_of

#: Files under the results directory that may be served (plots and tables, not models or DBs).
ARTIFACT_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg", ".csv", ".json", ".md", ".txt"}
RESULT_FILES = ("pareto.png", "trials.csv", "pareto.csv")


#: plotly.js's "basic" bundle (scatter, bar, pie), vendored: it starts 4-6x faster than the
#: full one (static/vendor/README.md). Without it the full bundle is served from site-packages.
PLOTLY_BASIC = HERE / "static" / "vendor" / "plotly-basic.min.js"


def plotly_js() -> Path | None:
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


@functools.cache
def gzipped(path: Path) -> bytes:
    return gzip.compress(path.read_bytes(), compresslevel=6)


router = APIRouter(include_in_schema=False)


@router.get("/results/{path:path}", include_in_schema=False)
def result_file(request: Request, path: str) -> Response:
    site = site_of(request)
    found = safe_artifact(site.results, path)
    if found is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    return FileResponse(found)


@router.get("/vendor/plotly.min.js", include_in_schema=False)
def plotly(request: Request) -> Response:
    site = site_of(request)
    if site.plotly_js is None:
        return Response("plotly.js not found: install the 'plotly' package", 500)
    headers = {"Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if "gzip" not in request.headers.get("accept-encoding", ""):
        return FileResponse(site.plotly_js, media_type="text/javascript", headers=headers)
    # Compressed once, not per request (3.5 MB at GZipMiddleware's level 9 costs ~0.3 s).
    return Response(
        gzipped(site.plotly_js),
        media_type="text/javascript",
        headers={**headers, "Content-Encoding": "gzip"},
    )
