"""The public Python API. The CLI and the dashboard call these functions and nothing deeper.

Typical use in a notebook::

    import autoopt
    summary = autoopt.run("experiments/digits_cnn.yaml", n_trials=20, workers=2)
    study = autoopt.load_study("digits_cnn")
    study.front()           # feasible Pareto front, fastest first
    study.frame()           # every trial as a pandas DataFrame
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoopt import export as _export_module
from autoopt.config import Experiment, load_experiment
from autoopt.errors import ConfigError, ExportError
from autoopt.export import DEFAULT_ACCURACY_TOLERANCE, ExportResult
from autoopt.search.controller import Controller, EventHandler, RunSummary
from autoopt.search.interrupt import stop_on_sigint
from autoopt.study import selection as _select_module
from autoopt.study.reading import (
    StudySummary,
    list_studies,
    load_study,
    read_study,
    storage_url,
    study_names,
    study_revision,
    study_summary,
    study_target,
)
from autoopt.study.records import StudyRecord
from autoopt.study.selection import Policy, Selection
from autoopt.study.storage import open_storage

if TYPE_CHECKING:
    from autoopt.selftest import HostInfo, PathResult


def validate(
    experiment: str | Path | Experiment, *, sampler: str | None = None, load: bool = True
) -> Experiment:
    """Load and check an experiment, its search space and its workload.

    ``sampler`` overrides the experiment's sampler (as ``--sampler`` does) and is checked with
    it. With ``load`` (the default) the workload is loaded as every worker loads it and its
    contract is checked (:func:`autoopt.workloads.check_contract`): the teacher runs on two
    evaluation samples and returns one tensor, the splits are numpy arrays and disjoint, the
    metric returns its name. Without it only the files are checked (the entry point imports,
    a source's files exist) and nothing is loaded or run. Raises :class:`autoopt.ConfigError`
    with a one-line message.
    """
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    if sampler is not None:
        exp = _with_sampler(exp, sampler)
    if load:
        from autoopt.errors import WorkloadError
        from autoopt.execution.worker import prepare

        try:
            prepare(exp.workload.name, dict(exp.workload.options), exp.plugins, [os.getcwd()])
        except WorkloadError as e:
            where = exp.name if isinstance(experiment, Experiment) else experiment
            raise ConfigError(f"{where}: {e}") from e
    return exp


def _with_sampler(exp: Experiment, sampler: str) -> Experiment:
    import difflib
    import typing

    from autoopt.config import SamplerConfig
    from autoopt.config._load import check_experiment

    allowed = typing.get_args(SamplerConfig.model_fields["name"].annotation)
    if sampler not in allowed:
        hint = difflib.get_close_matches(sampler, allowed, n=1)
        raise ConfigError(
            f"--sampler: unknown sampler '{sampler}'; allowed: {', '.join(allowed)}"
            + (f" (did you mean '{hint[0]}'?)" if hint else "")
        )
    chosen = SamplerConfig.model_validate({**exp.sampler.model_dump(), "name": sampler})
    exp = exp.model_copy(update={"sampler": chosen})
    check_experiment(exp, "--sampler")
    return exp


def run(
    experiment: str | Path | Experiment,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    workers: int | None = None,
    sampler: str | None = None,
    storage: str | None = None,
    study: str | None = None,
    ray_address: str | None = None,
    on_event: EventHandler | None = None,
    write_results: bool = True,
) -> RunSummary:
    """Run (or continue) a sweep; ``n_trials`` more trials, as in Optuna's ``optimize``."""
    exp = validate(experiment, sampler=sampler, load=False)  # each controller loads it
    from autoopt.execution import check_targets, ensure_ray

    ensure_ray(
        num_cpus=max(workers or exp.execution.workers, os.cpu_count() or 1), address=ray_address
    )
    check_targets(exp.targets, exp.task_cpus)  # every target, before any study is touched
    open_storage(storage or exp.storage, create=True)  # tables made once, not per thread
    controllers = [
        Controller(
            exp,
            target=target,
            storage=storage,
            workers=workers,
            on_event=on_event,
            ray_address=ray_address,
            study_name=(study if len(exp.targets) == 1 else f"{study}@{target.name}")
            if study
            else None,
        )
        for target in exp.targets
    ]
    with stop_on_sigint(controllers) as interrupts:
        summaries = _run_controllers(controllers, n_trials, timeout)
    for summary in summaries:
        summary.interrupted = interrupts.received
    if write_results:
        from autoopt.report import write_results as _write

        for summary in summaries:
            if summary.study is not None:
                summary.results_dir = _write(summary.study, exp.results_dir)
    first, *others = summaries
    first.siblings = others
    return first


def _run_controllers(
    controllers: list[Controller], n_trials: int | None, timeout: float | None
) -> list[RunSummary]:
    """One controller per target; several run side by side, each in its own thread."""
    if len(controllers) == 1:
        return [controllers[0].run(n_trials=n_trials, timeout_s=timeout)]
    results: dict[int, RunSummary] = {}
    errors: list[BaseException] = []

    def work(i: int, c: Controller) -> None:
        try:
            results[i] = c.run(n_trials=n_trials, timeout_s=timeout)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)
            for other in controllers:
                other.stop_requested.set()

    threads = [
        threading.Thread(target=work, args=(i, c), daemon=True) for i, c in enumerate(controllers)
    ]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.2)
    except KeyboardInterrupt:
        # Signals reach the main thread only: tell each controller to stop and record.
        for c in controllers:
            c.stop_requested.set()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return [results[i] for i in range(len(controllers))]


@dataclass(frozen=True)
class DoctorReport:
    """The host self-test of an experiment's paths (:func:`doctor`)."""

    experiment: str
    workload: str
    device: str
    #: The host the results hold for (:class:`autoopt.selftest.HostInfo`).
    host: HostInfo
    results: list[PathResult]

    @property
    def probe(self) -> str:
        """``BertLayer: 1x128x384 + 1x1x128x128, 64x128x384 + 64x1x128x128`` ("" when no
        path ran)."""
        ran = next((r for r in self.results if r.batches), None)
        if ran is None:
            return ""
        return f"{ran.probe}: {', '.join(b.shapes for b in ran.batches)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "workload": self.workload,
            "device": self.device,
            "host": self.host.to_dict(),
            "probe": self.probe,
            "results": [r.to_dict() for r in self.results],
        }


def doctor(
    experiment: str | Path | Experiment,
    *,
    refresh: bool = False,
    on_result: Callable[[PathResult], None] | None = None,
) -> DoctorReport:
    """Self-test on this host every path (backend, compile settings, precision, quantization)
    the experiment's search space can produce, on a probe cut from its workload's model.

    Results are cached per host, library versions and probe; ``refresh`` runs every path
    again. A failing path is a result, not an error. The device is the first target's.
    """
    from autoopt.execution import prepare
    from autoopt.selftest import current_host, run_selftest

    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    device = exp.targets[0].device
    workload = prepare(exp.workload.name, dict(exp.workload.options), exp.plugins, [os.getcwd()])
    results = run_selftest(
        workload, exp.space, exp.latency, exp.verify, device, refresh, on_result=on_result
    )
    return DoctorReport(
        experiment=exp.name,
        workload=workload.name,
        device=device,
        host=current_host(device),
        results=results,
    )


def _policy(policy: str | Policy, options: dict[str, Any]) -> Policy:
    if isinstance(policy, Policy):
        if any(v is not None and v is not False for v in options.values()):
            raise ConfigError(
                "give policy options either in the Policy object or as keywords, not both"
            )
        return policy
    return _select_module.make_policy(policy, **options)


def _study(study: str | StudyRecord, storage: str | None) -> StudyRecord:
    return study if isinstance(study, StudyRecord) else load_study(study, storage)


def select(
    study: str | StudyRecord,
    storage: str | None = None,
    policy: str | Policy = "knee",
    *,
    max_drop: float | None = None,
    relative: bool = False,
    max_latency_ms: float | None = None,
    latency_metric: str | None = None,
) -> Selection:
    """Choose one trial of a study by a policy: fastest, smallest, most-accurate or knee.

    ``fastest`` takes ``max_drop`` (default: the study's own accuracy constraint) and
    ``relative``; ``smallest`` and ``most-accurate`` need ``max_latency_ms``. When no trial
    meets the policy, the selection's ``trial`` is None and ``slower`` / ``less_accurate``
    hold the nearest trials on each side::

        sel = autoopt.select("digits_cnn", policy="fastest", max_drop=0.01)
        sel.trial.number if sel.found else sel.summary()
    """
    options = {
        "max_drop": max_drop,
        "relative": relative,
        "max_latency_ms": max_latency_ms,
        "latency_metric": latency_metric,
    }
    return _select_module.select(_study(study, storage), _policy(policy, options))


def export(
    study: str | StudyRecord,
    storage: str | None = None,
    *,
    out: str | Path,
    trial: int | None = None,
    policy: str | Policy | None = None,
    max_drop: float | None = None,
    relative: bool = False,
    max_latency_ms: float | None = None,
    latency_metric: str | None = None,
    triton: bool = False,
    triton_name: str | None = None,
    cache_dir: str | Path | None = None,
    accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE,
    overwrite: bool = False,
    on_start: Callable[[int], None] | None = None,
) -> ExportResult:
    """Rebuild one trial (by number, or chosen by a policy), write a bundle to ``out``, verify it.

    The bundle is re-scored on the evaluation split and re-timed here; an accuracy further
    than ``accuracy_tolerance`` from the recorded one raises :class:`autoopt.ExportError`
    and leaves nothing in ``out``. Load the bundle with :func:`autoopt.load`. ``on_start`` is
    called with the trial's number once the arguments are checked and the trial is known to
    be exportable, before the (slow) rebuild.
    """
    options = {
        "max_drop": max_drop,
        "relative": relative,
        "max_latency_ms": max_latency_ms,
        "latency_metric": latency_metric,
    }
    if (trial is None) == (policy is None):
        raise ConfigError("give either --trial N or --policy NAME (one of them, not both)")
    record = _study(study, storage)
    selection = None
    if policy is not None:
        selection = _select_module.select(record, _policy(policy, options))
        if selection.trial is None:
            raise ExportError(f"{selection.summary()}; nothing was exported")
        trial = selection.trial.number
    elif any(v is not None and v is not False for v in options.values()):
        raise ConfigError("policy options (max_drop, max_latency_ms, ...) need --policy")
    assert trial is not None  # noqa: S101 - guaranteed by the checks above
    _export_module.exportable_trial(record, trial)
    if on_start is not None:
        on_start(trial)
    return _export_module.export_trial(
        record,
        trial,
        out,
        triton=triton,
        triton_name=triton_name,
        cache_dir=cache_dir,
        accuracy_tolerance=accuracy_tolerance,
        overwrite=overwrite,
        selection=selection,
    )


#: The public API: these, and nothing deeper, are what the CLI and the dashboard call.
__all__ = [
    "DEFAULT_ACCURACY_TOLERANCE",
    "DoctorReport",
    "EventHandler",
    "ExportResult",
    "RunSummary",
    "StudySummary",
    "doctor",
    "export",
    "list_studies",
    "load_study",
    "read_study",
    "run",
    "select",
    "storage_url",
    "study_names",
    "study_revision",
    "study_summary",
    "study_target",
    "validate",
]
