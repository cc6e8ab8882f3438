"""Export one trial of a study as a deployable, self-verifying bundle.

The candidate is rebuilt from the snapshot the study recorded with the trial (its experiment,
space, plugins and workload options: :mod:`._snapshot`), through the same preparation as a
sweep's workers and the stage cache (stages still cached are reused; evicted ones are built
again), written in its backend's native form, then loaded back from the folder, re-scored on
the workload's evaluation split and re-timed here through :mod:`autoopt.measure`. The export
fails if the score differs from the recorded one by more than a tolerance; the latency ratio
to the recorded timing is reported.

Bundle layout::

    DIR/
      manifest.json          recipe, recorded metrics, backend and library versions, hardware
                             measured on, input/output signature, verification, SHA-256 of
                             every other file (:mod:`.manifest`)
      README.md              what it is, its numbers, a runnable snippet
      model.onnx             ONNX Runtime bundles
      model.xml, model.bin   OpenVINO bundles (an IR; its inference precision is in the manifest)
      model.pt2              PyTorch bundles: a torch.export ExportedProgram, or, when the
      model.pt               module cannot be exported, the pickled module (+ code reference)
      example_inputs.npz     a few evaluation inputs, by input name
      example_outputs.npy    what the bundle returned for them at export
      triton/<name>/...      optional Triton model repository (ONNX and OpenVINO bundles)

Nothing is written to ``DIR`` unless verification passes: the bundle is assembled in a
sibling folder and renamed into place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autoopt.errors import CandidateError, ConfigError, ExportError
from autoopt.export import bundle
from autoopt.export._files import signature, write_model
from autoopt.export._inputs import exportable_trial, prepare_out
from autoopt.export._snapshot import BuildSnapshot, snapshot_of
from autoopt.export._verify import DEFAULT_ACCURACY_TOLERANCE, Verification, verify_bundle
from autoopt.export.manifest import (
    BackendInfo,
    BuildInfo,
    Manifest,
    ModelInfo,
    StudyInfo,
    TritonInfo,
    WorkloadInfo,
)
from autoopt.study import schema as S

if TYPE_CHECKING:
    from autoopt.pipeline import BuildResult
    from autoopt.recipe import Recipe
    from autoopt.study.records import StudyRecord, TrialRecord
    from autoopt.study.selection import Selection
    from autoopt.workloads import Workload

log = logging.getLogger(__name__)
EXAMPLE_SAMPLES = 8


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    study: str
    trial: int
    recipe: str
    model_format: str
    verification: Verification
    manifest: dict[str, Any]
    #: Stages built during this export (evicted or never cached) and stages reused.
    rebuilt: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    triton: Path | None = None
    selection: Selection | None = None

    def summary(self) -> str:
        v = self.verification
        lines = [
            f"Exported trial {self.trial} of '{self.study}' ({self.recipe}) to {self.directory}",
            f"  model: {self.model_format}"
            + (f"; Triton repository: {self.triton}" if self.triton else ""),
            f"  stages: {len(self.reused)} reused from the cache, {len(self.rebuilt)} rebuilt"
            + (f" ({', '.join(self.rebuilt)})" if self.rebuilt else ""),
            f"  {v.metric_name}: recorded {v.accuracy_recorded:.4f}, re-measured "
            f"{v.accuracy_measured:.4f} (difference {v.accuracy_difference:+.4f}, tolerance "
            f"{v.accuracy_tolerance:g})",
            f"  {v.latency_metric}: recorded {v.latency_recorded_ms:.4g} ms, re-timed "
            f"{v.latency_measured_ms:.4g} ms here (ratio {v.latency_ratio:.2f}"
            + ("" if v.same_hardware else ", different hardware than the sweep")
            + ")",
        ]
        return "\n".join(lines)


@dataclass
class _Job:
    """One export's inputs, resolved: what every step below reads."""

    study: StudyRecord
    record: TrialRecord
    snapshot: BuildSnapshot
    recipe: Recipe
    workload: Workload
    here: dict[str, Any]
    triton: bool
    triton_name: str | None
    selection: Selection | None


def export_trial(
    study: StudyRecord,
    trial: int,
    out: str | Path,
    *,
    triton: bool = False,
    triton_name: str | None = None,
    cache_dir: str | Path | None = None,
    accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE,
    overwrite: bool = False,
    selection: Selection | None = None,
) -> ExportResult:
    """Rebuild trial ``trial`` of ``study``, write it to ``out`` as a bundle and verify it.

    Raises:
        ConfigError: bad arguments (unknown trial, non-empty ``out``, Triton for a non-ONNX
            bundle).
        ExportError: the trial cannot be rebuilt, written or loaded, or its re-measured score
            differs from the recorded one by more than ``accuracy_tolerance``.
    """
    if not accuracy_tolerance >= 0:
        raise ConfigError(f"--accuracy-tolerance: must be >= 0; got {accuracy_tolerance!r}")
    job = _resolve(study, trial, triton, triton_name, selection)
    out = Path(out).expanduser().resolve()
    prepare_out(out, overwrite)
    staging = out.parent / f".{out.name}.export-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        built, model = _rebuild(job, cache_dir, staging)
        manifest, verification = _finish(job, built, model, staging, out, accuracy_tolerance)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    bundle.check(out)
    log.info("exported trial %d of '%s' to %s", trial, study.name, out)
    return ExportResult(
        directory=out,
        study=study.name,
        trial=job.record.number,
        recipe=job.recipe.describe(),
        model_format=manifest.model.format,
        verification=verification,
        manifest=manifest.model_dump(mode="json"),
        rebuilt=[e.stage for e in built.events if not e.hit],
        reused=[e.stage for e in built.events if e.hit],
        triton=out / "triton" / manifest.triton.model_name if manifest.triton else None,
        selection=selection,
    )


# ---- the steps ------------------------------------------------------------------------------


def _resolve(
    study: StudyRecord,
    number: int,
    triton: bool,
    triton_name: str | None,
    selection: Selection | None,
) -> _Job:
    """The trial, what it was built with, and this process made ready to rebuild it (the
    sweep's workers' own preparation: import path, plugins, workload)."""
    from autoopt import hardware, plugins
    from autoopt.execution.worker import prepare
    from autoopt.resolve import recipe_from_dict

    record = exportable_trial(study, number)
    snap = snapshot_of(study, record)
    try:
        workload = prepare(
            snap.workload, snap.workload_options, snap.plugins, [*snap.sys_path, os.getcwd()]
        )
    except ImportError as e:
        raise ExportError(
            f"trial {number}: cannot import what its sweep used ({e}); run the export from "
            "the folder the sweep ran in, or put its plugins on PYTHONPATH"
        ) from e
    recipe = recipe_from_dict(record.recipe or {})
    if triton and plugins.get_backend(recipe.backend.key).artifact_kind == "torch":
        raise ConfigError(
            f"--triton: trial {number} runs on {recipe.backend.key}, which serves a PyTorch "
            "model; the Triton layout is written for ONNX and OpenVINO bundles "
            "(backend.onnxruntime, backend.openvino)"
        )
    measured_with = study.workload_version
    if measured_with and measured_with != workload.version:
        raise ExportError(
            f"trial {number}: workload '{snap.workload}' here is version {workload.version} "
            f"(its teacher's weights and its data), but study '{study.name}' was measured with "
            f"version {measured_with}; a workload that trains its teacher on first use "
            "(digits_cnn does) can train a different one on another machine or library "
            "version: export where the sweep ran, or give this machine that one's "
            "AUTOOPT_HOME/workloads folder"
        )
    here = hardware.current().to_dict()
    return _Job(study, record, snap, recipe, workload, here, triton, triton_name, selection)


def _rebuild(
    job: _Job, cache_dir: str | Path | None, staging: Path
) -> tuple[BuildResult, ModelInfo]:
    """The trial's artifact, through the stage cache, with the threads its build used (so
    training stages reproduce bit for bit); its model file written into ``staging``."""
    from autoopt import hardware
    from autoopt.artifacts import load_artifact
    from autoopt.cache import StageCache, resolve_root
    from autoopt.pipeline import build

    threads = int(job.record.user_attrs.get(S.ATTR_BUILD_THREADS) or 1)
    cache = StageCache(resolve_root(cache_dir or job.snapshot.cache_dir))
    with tempfile.TemporaryDirectory(prefix="autoopt-export-") as workdir:
        with _torch_threads(threads):
            try:
                built = build(
                    job.recipe,
                    job.workload,
                    cache,
                    hardware.current(),
                    Path(workdir),
                    seed=job.snapshot.seed,
                    device=job.snapshot.device,
                )
            except CandidateError as e:
                raise ExportError(
                    f"trial {job.record.number}: cannot rebuild {job.recipe.describe()} here: "
                    f"[{e.stage or 'build'}] {e}"
                ) from e
        artifact = load_artifact(built.path, built.kind)  # type: ignore[arg-type]
        model = ModelInfo.model_validate(write_model(artifact, job.workload, staging))
    return built, model


def _finish(
    job: _Job, built: BuildResult, model: ModelInfo, staging: Path, out: Path, tolerance: float
) -> tuple[Manifest, Verification]:
    """Examples, Triton layout and manifest into ``staging``; then load it back as a user
    would, verify it, and complete the manifest with what verification found."""
    import torch

    workload, latency = job.workload, job.snapshot.latency
    example_inputs = workload.example_inputs(min(EXAMPLE_SAMPLES, len(workload.evaluation)))
    arrays: dict[str, Any] = dict(zip(workload.input_names, example_inputs, strict=True))
    np.savez(staging / bundle.EXAMPLE_INPUTS, **arrays)
    manifest = _manifest(job, built, model, _triton(job, staging, model))
    manifest.files = bundle.hash_files(staging)
    _write(staging, manifest)
    # PyTorch runners set the process-wide thread count; give the caller's back afterwards.
    with _torch_threads(torch.get_num_threads()):
        runner = bundle.load(staging, threads=latency.threads)
        verification = verify_bundle(
            runner, job.record, workload, latency, job.snapshot.verify, tolerance, job.here
        )
        example_outputs = runner(*example_inputs)
    np.save(staging / bundle.EXAMPLE_OUTPUTS, example_outputs)
    manifest.signature = signature(model.model_dump(), staging, workload, example_outputs)
    manifest.verification = verification.to_dict()
    (staging / "README.md").write_text(manifest.readme(out))
    manifest.files = bundle.hash_files(staging)
    _write(staging, manifest)
    return manifest, verification


def _manifest(
    job: _Job, built: BuildResult, model: ModelInfo, triton: TritonInfo | None
) -> Manifest:
    study, record, snap, workload = job.study, job.record, job.snapshot, job.workload
    selection = job.selection
    return Manifest(
        autoopt_version=_autoopt_version(),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        study=StudyInfo(
            name=study.name,
            storage=_storage_for_manifest(study.storage),
            trial=record.number,
            is_baseline=record.is_baseline,
            feasible=record.feasible,
            pareto=record.on_front,
            constraint=study.constraint,
            selection=(
                {"policy": selection.policy.model_dump(), "reason": selection.reason}
                if selection is not None
                else None
            ),
            snapshot=snap.source,
        ),
        workload=WorkloadInfo(
            name=snap.workload,
            options=snap.workload_options,
            version=workload.version,
            metric_name=workload.metric_name,
            output_kind=workload.output_kind,
            input_names=list(workload.input_names),
            output_names=list(workload.output_names),
            input_description=workload.input_description,
        ),
        recipe=job.recipe.to_dict(),
        recipe_str=job.recipe.describe(),
        seed=snap.seed,
        backend=BackendInfo(
            key=job.recipe.backend.key,
            config=job.recipe.backend.params,
            threads=snap.latency.threads,
            device=snap.device,
            runner=record.runner,
        ),
        model=model,
        metrics=dict(record.metrics),
        latency_settings=snap.latency.model_dump(),
        measured_on=record.hardware,
        verified_on=job.here,
        versions={
            "python": job.here.get("python"),
            **dict(job.here.get("versions") or {}),
            "autoopt": _autoopt_version(),
        },
        build=BuildInfo(
            artifact_key=built.key,
            recorded_artifact_key=record.artifact_key,
            same_artifact_key=built.key == record.artifact_key,
            stages=[e.to_dict() for e in built.events],
        ),
        triton=triton,
        files={},
    )


def _triton(job: _Job, staging: Path, model: ModelInfo) -> TritonInfo | None:
    if not job.triton:
        return None
    from autoopt.export.triton import model_name, write_model_repository, write_openvino_repository

    name = model_name(job.triton_name or job.snapshot.workload)
    if model.format == "openvino":
        folder = write_openvino_repository(
            staging / model.file,
            staging / "triton",
            name,
            precision=model.inference_precision or "f32",
            threads=job.snapshot.latency.threads,
        )
        return TritonInfo(
            model_name=folder.name,
            config=(folder / "config.pbtxt").relative_to(staging).as_posix(),
            model=(folder / "1" / "model.xml").relative_to(staging).as_posix(),
        )

    providers = job.record.runner.get("providers") or ["CPUExecutionProvider"]
    folder = write_model_repository(
        staging / model.file,
        staging / "triton",
        name,
        threads=job.snapshot.latency.threads,
        cpu_only=all(p == "CPUExecutionProvider" for p in providers),
    )
    return TritonInfo(
        model_name=folder.name,
        config=(folder / "config.pbtxt").relative_to(staging).as_posix(),
        model=(folder / "1" / "model.onnx").relative_to(staging).as_posix(),
    )


# ---- helpers ------------------------------------------------------------------------------


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _storage_for_manifest(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL we can parse: keep it out
        return ""


def _autoopt_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("autoopt")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _write(directory: Path, manifest: Manifest) -> None:
    (directory / bundle.MANIFEST).write_text(manifest.model_dump_json(indent=1) + "\n")
