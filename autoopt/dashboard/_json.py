"""The dashboard's JSON: what the study page polls (with ETags, so an unchanged study costs one
cheap query), the studies list and one trial."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from autoopt.dashboard import _trial_views as T
from autoopt.dashboard import _views as V
from autoopt.dashboard._site import site_of
from autoopt.errors import StorageError

router = APIRouter()


@router.get("/api/studies")
def studies_json(request: Request) -> JSONResponse:
    site = site_of(request)
    rows, error = site.studies()
    return JSONResponse({"studies": rows, "error": error})


@router.get("/api/studies/{name}")
def study_json(request: Request, name: str) -> Response:
    site = site_of(request)
    try:
        entry = site.cache.get(name)
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


@router.get("/api/studies/{name}/trials/{number}")
def trial_json(request: Request, name: str, number: int) -> JSONResponse:
    site = site_of(request)
    try:
        record = site.cache.get(name).record
    except StorageError as e:
        return JSONResponse({"detail": str(e)}, status_code=404)
    trial = record.trial(number)
    if trial is None:
        return JSONResponse({"detail": f"study '{name}' has no trial {number}"}, 404)
    data = {k: v for k, v in vars(trial).items() if k != "user_attrs"}
    data.update(
        started=V._iso(trial.started),
        completed=V._iso(trial.completed),
        duration_s=trial.duration_s,
        ratios=record.ratios(trial),
        timing=T.timing_facts(trial),
        category=V.trial_category(trial),
    )
    return JSONResponse(jsonable_encoder(V.clean(data)))
