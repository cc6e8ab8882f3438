"""The dashboard's HTML pages: studies, a study, a trial, a comparison."""

from __future__ import annotations

import shlex
import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import Response

from autoopt import api
from autoopt.dashboard import _trial_views as T
from autoopt.dashboard import _views as V
from autoopt.dashboard._files import RESULT_FILES, safe_artifact
from autoopt.dashboard._site import site_of

router = APIRouter(include_in_schema=False)


@router.get("/", include_in_schema=False)
def studies_page(request: Request) -> Response:
    site = site_of(request)
    rows, error = site.studies()
    return site.page(
        request,
        "studies.html",
        rows=rows,
        error=error,
        storage=api.storage_url(site.storage),
        refresh_ms=max(site.refresh_ms, 2000),
    )


@router.get("/studies/{name}", include_in_schema=False)
def study_page(request: Request, name: str) -> Response:
    site = site_of(request)
    entry = site.entry_or_error(request, name)
    if isinstance(entry, Response):
        return entry
    record = entry.record
    files = {
        f: f"/results/{urllib.parse.quote(name)}/{f}"
        for f in RESULT_FILES
        if safe_artifact(site.results, f"{name}/{f}") is not None
    }
    refresh = request.query_params.get("refresh", "")
    custom = refresh.isdigit() and int(refresh) >= 200
    return site.page(
        request,
        "study.html",
        study=record,
        files=files,
        target=V.target_label(api.study_target(record)),
        refresh_ms=int(refresh) if custom else site.refresh_ms,
    )


@router.get("/studies/{name}/trials/{number}", include_in_schema=False)
def trial_page(request: Request, name: str, number: int) -> Response:
    site = site_of(request)
    entry = site.entry_or_error(request, name)
    if isinstance(entry, Response):
        return entry
    record = entry.record
    trial = record.trial(number)
    if trial is None:
        return site.error_page(request, 404, f"study '{name}' has no trial {number}")
    fams = V.families(record)
    numbers = [t.number for t in record.trials]
    i = numbers.index(number)
    # Only a measured trial has a model to export; a repeat's is its original trial's.
    exported = trial.duplicate_of if trial.is_repeat else number
    command = [
        "autoopt",
        "export",
        "--study",
        name,
        "--trial",
        str(exported),
        "--out",
        f"deploy/{name}-trial{exported}",
    ]
    if site.storage:
        command += ["--storage", api.storage_url(site.storage)]
    exportable = trial.state == "COMPLETE" and bool(trial.recipe)
    return site.page(
        request,
        "trial.html",
        study=record,
        t=trial,
        ratios=record.ratios(trial),
        timing=T.timing_facts(trial),
        recipe=T.recipe_rows(trial, fams),
        metrics=T.metric_rows(record, trial),
        stages=T.stage_rows(record, trial),
        hardware=T.flat("", trial.hardware),
        runner=T.flat("", trial.runner),
        category=V.trial_category(trial),
        export_command=shlex.join(command) if exportable else None,
        prev=numbers[i - 1] if i > 0 else None,
        next=numbers[i + 1] if i + 1 < len(numbers) else None,
        extra={
            k: trial.user_attrs.get(k)
            for k in ("build_s", "measure_s")
            if V.num(trial.user_attrs.get(k)) is not None
        },
        retries=trial.user_attrs.get("retries") or 0,
    )


@router.get("/studies/{name}/compare", include_in_schema=False)
def compare_page(request: Request, name: str, trials: str = "") -> Response:
    site = site_of(request)
    entry = site.entry_or_error(request, name)
    if isinstance(entry, Response):
        return entry
    record = entry.record
    wanted, unknown = _numbers(trials), []
    chosen = []
    for n in wanted:
        t = record.trial(n)
        if t is None:
            unknown.append(n)
        elif t not in chosen:
            chosen.append(t)
    rows = T.compare_rows(record, chosen) if chosen else []
    return site.page(
        request,
        "compare.html",
        study=record,
        trials=chosen,
        rows=rows,
        unknown=unknown,
        query=trials,
    )


def _numbers(text: str) -> list[int]:
    out = []
    for part in text.replace(" ", ",").split(","):
        if part.strip().lstrip("#").isdigit():
            out.append(int(part.strip().lstrip("#")))
    return out
