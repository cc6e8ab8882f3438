"""Export one trial of a study as a deployable, self-verifying bundle.

The candidate is rebuilt with the recipe and seed recorded in the study, through the stage
cache (stages still cached are reused; evicted ones are built again), written in its
backend's native form, then loaded back from the folder, re-scored on the workload's
evaluation split and re-timed here. The export fails if the score differs from the recorded
one by more than a tolerance; the latency ratio to the recorded timing is reported.

Bundle layout::

    DIR/
      manifest.json          recipe, recorded metrics, backend and library versions, hardware
                             measured on, input/output signature, verification, SHA-256 of
                             every other file
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
import importlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autoopt.errors import CandidateError, ConfigError, ExportError

if TYPE_CHECKING:
    import torch

    from autoopt.artifacts import Artifact
    from autoopt.bundle import BundleRunner
    from autoopt.search.records import StudyRecord, TrialRecord
    from autoopt.selection import Selection
    from autoopt.workloads import Workload

log = logging.getLogger(__name__)

#: Largest accepted |re-measured - recorded| of the workload's metric (absolute). The rebuild
#: is seeded and deterministic on one machine; the slack covers a sample or two flipping
#: across CPUs or library builds (1 sample of digits' 540 is 0.0019).
DEFAULT_ACCURACY_TOLERANCE = 0.005
#: A re-timed latency this many times the recorded one is logged as a warning.
LATENCY_WARN_RATIO = 1.5
EXAMPLE_SAMPLES = 8
#: The sweep builds candidates in 1-CPU Ray tasks (1 intra-op thread); rebuilding with the
#: same thread count keeps recovery fine-tuning and distillation bit-for-bit reproducible.
BUILD_THREADS = 1


@dataclass(frozen=True)
class Verification:
    """How the exported bundle compares with what the study recorded for the trial."""

    metric_name: str
    accuracy_recorded: float
    accuracy_measured: float
    accuracy_tolerance: float
    #: Top-1 agreement (or cosine) with the teacher on the verify reference inputs.
    reference_agreement: float
    latency_metric: str
    latency_recorded_ms: float
    latency_measured_ms: float
    latency_ratio: float
    latency_p90_ms: float
    latency_p99_ms: float
    batch_size: int
    threads: int
    warmup: int
    runs: int
    same_hardware: bool
    passed: bool = True

    @property
    def accuracy_difference(self) -> float:
        return self.accuracy_measured - self.accuracy_recorded

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accuracy_difference": self.accuracy_difference}


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


# ---- preparing --------------------------------------------------------------------------


def _trial(study: StudyRecord, number: int) -> TrialRecord:
    for t in study.trials:
        if t.number == number:
            if t.state != "COMPLETE" or not t.recipe:
                why = f": [{t.failure_stage}] {t.failure_reason}" if t.failure_reason else ""
                raise ExportError(
                    f"trial {number} of study '{study.name}' is {t.state}{why}; only complete "
                    "trials can be exported"
                )
            if not isinstance(t.metrics.get("accuracy"), int | float):
                raise ExportError(
                    f"trial {number} of study '{study.name}' has no recorded accuracy"
                )
            return t
    numbers = [t.number for t in study.trials]
    span = f"{min(numbers)}..{max(numbers)}" if numbers else "none"
    raise ConfigError(f"--trial: study '{study.name}' has no trial {number}; trials: {span}")


def _experiment(study: StudyRecord) -> dict[str, Any]:
    from autoopt.search.records import STUDY_EXPERIMENT

    exp = study.user_attrs.get(STUDY_EXPERIMENT)
    if not isinstance(exp, dict) or "workload" not in exp:
        raise ExportError(
            f"study '{study.name}' records no experiment (user attribute '{STUDY_EXPERIMENT}'), "
            "so its candidates cannot be rebuilt; was it created by `autoopt run`?"
        )
    return exp


def _import_plugins(plugins: list[str]) -> None:
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    for module in plugins:
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - report any import failure the same way
            raise ExportError(
                f"cannot import plugin '{module}' that the study's experiment lists: {e}; run "
                "the export from the folder the sweep ran in, or put it on PYTHONPATH"
            ) from e


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(
            f"--out: {out} exists and is not empty; choose another folder or pass --overwrite"
        )
    out.parent.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---- writing the model --------------------------------------------------------------------


def _code_reference(model: torch.nn.Module) -> str:
    cls = type(model)
    return f"{cls.__module__}:{cls.__qualname__}"


def _torch_inputs(workload: Workload, model: torch.nn.Module, batch: int) -> tuple[Any, ...]:
    import torch

    from autoopt.backends.torch_eager import model_dtype

    dtype = model_dtype(model)
    tensors = [torch.from_numpy(np.ascontiguousarray(x)) for x in workload.example_inputs(batch)]
    return tuple(t.to(dtype) if t.is_floating_point() else t for t in tensors)


def _dynamic_shapes(workload: Workload) -> tuple[dict[int, Any] | None, ...]:
    import torch

    axes = workload.onnx_dynamic_axes()
    out = []
    for name in workload.input_names:
        # DYNAMIC lets export infer each axis's range and the axes' equalities from the model
        # (a named Dim without a maximum fails on BERT's sequence axis, bounded by 512).
        spec = {axis: torch.export.Dim.DYNAMIC for axis in axes.get(name, {})}
        out.append(spec or None)
    return tuple(out)


def _write_torch(model: torch.nn.Module, workload: Workload, directory: Path) -> dict[str, Any]:
    """An ExportedProgram (model.pt2) when torch.export handles the module, else model.pt."""
    import torch

    from autoopt.techniques.pt2e import ExportedModule

    reference = _code_reference(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(model, ExportedModule):  # already a program (static int8 on PyTorch)
                program = model.program
            else:
                example = _torch_inputs(workload, model, 4)
                program = torch.export.export(
                    model, example, dynamic_shapes=_dynamic_shapes(workload)
                )
            torch.export.save(program, str(directory / "model.pt2"))
            # Round trip: the saved program must compute what the module computes.
            reloaded = torch.export.load(str(directory / "model.pt2")).module()
            probe = _torch_inputs(workload, model, 3)
            with torch.inference_mode():
                want, got = model(*probe).float(), reloaded(*probe).float()
        if want.shape != got.shape or not torch.allclose(want, got, rtol=1e-3, atol=1e-3):
            raise ValueError("the exported program's outputs differ from the module's")
        return {"format": "exported_program", "file": "model.pt2", "code_reference": reference}
    except Exception as e:  # noqa: BLE001 - any exporter failure: fall back to the pickle
        (directory / "model.pt2").unlink(missing_ok=True)
        reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        log.info(
            "torch.export cannot export %s (%s); saving the pickled module", reference, reason
        )
        torch.save(model, directory / "model.pt")
        return {
            "format": "pickled_module",
            "file": "model.pt",
            "code_reference": reference,
            "fallback_reason": f"torch.export failed: {reason[:300]}",
        }


def _write_model(artifact: Artifact, workload: Workload, directory: Path) -> dict[str, Any]:
    from autoopt.artifacts import OnnxArtifact, OpenVinoArtifact

    if isinstance(artifact, OpenVinoArtifact):
        shutil.copyfile(artifact.path, directory / "model.xml")
        shutil.copyfile(artifact.weights, directory / "model.bin")
        return {
            "format": "openvino",
            "file": "model.xml",
            "weights": "model.bin",
            "inference_precision": artifact.inference_precision,
            "code_reference": None,
        }
    if isinstance(artifact, OnnxArtifact):
        shutil.copyfile(artifact.path, directory / "model.onnx")
        return {"format": "onnx", "file": "model.onnx", "code_reference": None}
    return _write_torch(artifact.model, workload, directory)


def _signature(
    model_info: dict[str, Any], directory: Path, workload: Workload, outputs: np.ndarray
) -> dict[str, Any]:
    if model_info["format"] == "onnx":
        from autoopt.triton import onnx_signature

        return onnx_signature(directory / model_info["file"])
    if model_info["format"] == "openvino":
        from autoopt.triton import openvino_signature

        return openvino_signature(directory / model_info["file"])
    axes = workload.onnx_dynamic_axes()

    def shape(name: str, full: tuple[int, ...]) -> list[int | str]:
        dyn = axes.get(name, {})
        return [dyn[i] if i in dyn else int(d) for i, d in enumerate(full)]

    example = workload.example_inputs(1)
    inputs = [
        {"name": n, "dtype": x.dtype.name, "shape": shape(n, x.shape)}
        for n, x in zip(workload.input_names, example, strict=True)
    ]
    first = workload.output_names[0] if workload.output_names else "output"
    return {
        "inputs": inputs,
        "outputs": [{"name": first, "dtype": "float32", "shape": shape(first, outputs.shape)}],
    }


# ---- verifying ----------------------------------------------------------------------------


def _same_hardware(recorded: Mapping[str, Any], here: Mapping[str, Any]) -> bool:
    keys = ("cpu_model", "logical_cores", "cuda_devices")
    return all(recorded.get(k) == here.get(k) for k in keys)


def _verify(
    runner: BundleRunner,
    trial: TrialRecord,
    workload: Workload,
    latency: Any,
    verify_settings: Any,
    tolerance: float,
    here: Mapping[str, Any],
) -> Verification:
    from autoopt.measure import time_callable, verify

    try:
        agreement = verify(runner, workload, verify_settings)
    except CandidateError as e:
        raise ExportError(f"trial {trial.number}: the exported bundle is broken: {e}") from e
    scores = runner.evaluate(workload)
    measured = scores[workload.metric_name]
    recorded = float(trial.metrics["accuracy"])
    fn = runner.timed(workload.latency_inputs(latency.batch_size))
    stats = time_callable(fn, latency.warmup, latency.runs)
    metric = "latency_p50_ms"
    recorded_ms = float(trial.metrics.get(metric, math.nan))
    ratio = stats.p50_ms / recorded_ms if recorded_ms and math.isfinite(recorded_ms) else math.nan
    result = Verification(
        metric_name=workload.metric_name,
        accuracy_recorded=recorded,
        accuracy_measured=measured,
        accuracy_tolerance=tolerance,
        reference_agreement=agreement,
        latency_metric=metric,
        latency_recorded_ms=recorded_ms,
        latency_measured_ms=stats.p50_ms,
        latency_ratio=ratio,
        latency_p90_ms=stats.p90_ms,
        latency_p99_ms=stats.p99_ms,
        batch_size=latency.batch_size,
        threads=latency.threads,
        warmup=latency.warmup,
        runs=latency.runs,
        same_hardware=_same_hardware(trial.hardware, here),
    )
    if not abs(measured - recorded) <= tolerance:
        raise ExportError(
            f"trial {trial.number}: the exported bundle scores {workload.metric_name} "
            f"{measured:.4f} on the evaluation split but the study recorded {recorded:.4f} "
            f"(difference {measured - recorded:+.4f}, tolerance {tolerance:g}); the rebuild "
            "does not reproduce the trial (code or library versions changed since the sweep?), "
            "so nothing was exported"
        )
    if math.isfinite(ratio) and ratio > LATENCY_WARN_RATIO:
        log.warning(
            "trial %d: re-timed %s %.4g ms is %.2fx the recorded %.4g ms%s",
            trial.number,
            metric,
            stats.p50_ms,
            ratio,
            recorded_ms,
            "" if result.same_hardware else " (measured on different hardware)",
        )
    return result


# ---- README -------------------------------------------------------------------------------


def _readme(manifest: dict[str, Any], directory: Path) -> str:
    study, model, w = manifest["study"], manifest["model"], manifest["workload"]
    v = manifest["verification"]
    rec = manifest["metrics"]
    names = w["input_names"]
    args = ", ".join(f'example["{n}"]' for n in names)
    triton = manifest.get("triton")
    lines = [
        f"# {w['name']}: trial {study['trial']} of study '{study['name']}'",
        "",
        f"Recipe: `{manifest['recipe_str']}`",
        "",
        f"Exported by autoopt {manifest['autoopt_version']} on {manifest['created']}. "
        f"Model: `{model['file']}` ({model['format']}), backend `{manifest['backend']['key']}`.",
        "",
        "| | recorded in the study | re-measured at export |",
        "| --- | --- | --- |",
        f"| {w['metric_name']} | {v['accuracy_recorded']:.4f} | {v['accuracy_measured']:.4f} |",
        f"| latency p50 (batch {v['batch_size']}, {v['threads']} thread(s)) | "
        f"{v['latency_recorded_ms']:.4g} ms | {v['latency_measured_ms']:.4g} ms "
        f"(x{v['latency_ratio']:.2f}) |",
        f"| size | {rec.get('size_mb', float('nan')):.3g} MB | |",
        "",
        f"Measured on: {manifest['measured_on'].get('cpu_model', '?')}; re-measured on: "
        f"{manifest['verified_on'].get('cpu_model', '?')}.",
        "",
        "## Run it",
        "",
        "```python",
        "import numpy as np",
        "import autoopt",
        "",
        f'BUNDLE = "{directory}"',
        "runner = autoopt.load(BUNDLE)  # checks every file's SHA-256 against manifest.json",
        f'example = np.load(BUNDLE + "/example_inputs.npz")  # inputs: {", ".join(names)}',
        f"outputs = runner({args})",
        'expected = np.load(BUNDLE + "/example_outputs.npy")',
        "print(outputs.shape, float(np.abs(outputs - expected).max()))",
        "```",
        "",
        "The runner takes the workload's model inputs (one array per input, batch first, as in "
        "the workload's data splits) and returns the first output as float32.",
    ]
    if model["format"] == "onnx":
        lines += [
            "",
            'Without autoopt: `onnxruntime.InferenceSession("model.onnx").run(None, '
            "{" + ", ".join(f'"{n}": ...' for n in names) + "})`.",
        ]
    elif model["format"] == "openvino":
        lines += [
            "",
            'Without autoopt: `openvino.Core().compile_model("model.xml", "CPU", '
            f'{{"INFERENCE_PRECISION_HINT": "{model["inference_precision"]}", '
            '"PERFORMANCE_HINT": "LATENCY"})` (set the precision: the plugin\'s default is '
            "bf16 on CPUs with native bf16).",
        ]
    elif model["format"] == "exported_program":
        lines += ["", 'Without autoopt: `torch.export.load("model.pt2").module()(*inputs)`.']
    else:
        lines += [
            "",
            f'Without autoopt: `torch.load("model.pt", weights_only=False)` with '
            f"`{model['code_reference']}` importable.",
        ]
    if triton:
        lines += [
            "",
            "## Triton Inference Server",
            "",
            f"`tritonserver --model-repository {directory}/triton` serves it as "
            f"model `{triton['model_name']}`.",
        ]
    return "\n".join(lines) + "\n"


# ---- the export ---------------------------------------------------------------------------


def _storage_for_manifest(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL we can parse: keep it out
        return ""


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
    from autoopt import bundle, hardware, registry
    from autoopt.artifacts import load_artifact
    from autoopt.cache import StageCache, resolve_root
    from autoopt.config import LatencyConfig, VerifyConfig
    from autoopt.pipeline import build
    from autoopt.recipe import Recipe
    from autoopt.search.records import STUDY_CACHE_DIR, STUDY_WORKLOAD_VERSION
    from autoopt.workloads import load_workload

    if not accuracy_tolerance >= 0:
        raise ConfigError(f"--accuracy-tolerance: must be >= 0; got {accuracy_tolerance!r}")
    record = _trial(study, trial)
    exp = _experiment(study)
    out = Path(out).expanduser().resolve()
    _prepare_out(out, overwrite)
    _import_plugins(list(exp.get("plugins") or []))
    recipe = Recipe.from_dict(record.recipe or {})
    backend_kind = registry.get(recipe.backend.key).artifact_kind  # type: ignore[union-attr]
    if triton and backend_kind not in ("onnx", "openvino"):
        raise ConfigError(
            f"--triton: trial {trial} runs on {recipe.backend.key}, which serves a PyTorch "
            "model; the Triton layout is written for ONNX and OpenVINO bundles "
            "(backend.onnxruntime, backend.openvino)"
        )
    wref = exp["workload"]
    workload = load_workload(wref["name"], wref.get("options") or {})
    measured_with = study.user_attrs.get(STUDY_WORKLOAD_VERSION)
    if measured_with and measured_with != workload.version:
        raise ExportError(
            f"trial {trial}: workload '{wref['name']}' here is version {workload.version} (its "
            f"teacher's weights and its data), but study '{study.name}' was measured with "
            f"version {measured_with}; a workload that trains its teacher on first use "
            "(digits_cnn does) can train a different one on another machine or library "
            "version: export where the sweep ran, or give this machine that one's "
            "AUTOOPT_HOME/workloads folder"
        )
    latency = LatencyConfig.model_validate(exp.get("latency") or {})
    verify_settings = VerifyConfig.model_validate(exp.get("verify") or {})
    seed = int((exp.get("sampler") or {}).get("seed") or 0)
    # The study records the resolved cache root, so export finds the cache from any cwd.
    cache_root = resolve_root(
        cache_dir
        or study.user_attrs.get(STUDY_CACHE_DIR)
        or exp.get("cache_dir")
        or "results/cache"
    )
    here: dict[str, Any] = hardware.current().to_dict()
    versions: dict[str, Any] = dict(here.get("versions") or {})
    device = study.target["device"]

    staging = out.parent / f".{out.name}.export-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        with tempfile.TemporaryDirectory(prefix="autoopt-export-") as workdir:
            with _torch_threads(BUILD_THREADS):
                try:
                    built = build(
                        recipe,
                        workload,
                        StageCache(cache_root),
                        hardware.current(),
                        Path(workdir),
                        seed=seed,
                        device=device,
                    )
                except CandidateError as e:
                    raise ExportError(
                        f"trial {trial}: cannot rebuild {recipe.describe()} here: "
                        f"[{e.stage or 'build'}] {e}"
                    ) from e
            artifact = load_artifact(built.path, built.kind)  # type: ignore[arg-type]
            model_info = _write_model(artifact, workload, staging)
        del artifact

        example_inputs = workload.example_inputs(min(EXAMPLE_SAMPLES, len(workload.evaluation)))
        arrays: dict[str, Any] = dict(zip(workload.input_names, example_inputs, strict=True))
        np.savez(staging / bundle.EXAMPLE_INPUTS, **arrays)
        triton_info = None
        if triton and model_info["format"] == "openvino":
            from autoopt.triton import model_name, write_openvino_repository

            folder = write_openvino_repository(
                staging / model_info["file"],
                staging / "triton",
                model_name(triton_name or wref["name"]),
                precision=model_info["inference_precision"],
                threads=latency.threads,
            )
            triton_info = {
                "model_name": folder.name,
                "config": (folder / "config.pbtxt").relative_to(staging).as_posix(),
                "model": (folder / "1" / "model.xml").relative_to(staging).as_posix(),
            }
        elif triton:
            from autoopt.triton import model_name, write_model_repository

            providers = record.runner.get("providers") or ["CPUExecutionProvider"]
            folder = write_model_repository(
                staging / model_info["file"],
                staging / "triton",
                model_name(triton_name or wref["name"]),
                threads=latency.threads,
                cpu_only=all(p == "CPUExecutionProvider" for p in providers),
            )
            triton_info = {
                "model_name": folder.name,
                "config": (folder / "config.pbtxt").relative_to(staging).as_posix(),
                "model": (folder / "1" / "model.onnx").relative_to(staging).as_posix(),
            }

        manifest: dict[str, Any] = {
            "format_version": bundle.FORMAT_VERSION,
            "autoopt_version": _autoopt_version(),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "study": {
                "name": study.name,
                "storage": _storage_for_manifest(study.storage),
                "trial": record.number,
                "is_baseline": record.is_baseline,
                "feasible": record.feasible,
                "pareto": record.on_front,
                "constraint": study.constraint,
                "selection": (
                    {"policy": selection.policy.model_dump(), "reason": selection.reason}
                    if selection is not None
                    else None
                ),
            },
            "workload": {
                "name": wref["name"],
                "options": wref.get("options") or {},
                "version": workload.version,
                "metric_name": workload.metric_name,
                "output_kind": workload.output_kind,
                "input_names": list(workload.input_names),
                "output_names": list(workload.output_names),
            },
            "recipe": recipe.to_dict(),
            "recipe_str": recipe.describe(),
            "seed": seed,
            "backend": {
                "key": recipe.backend.key,
                "config": recipe.backend.params,
                "threads": latency.threads,
                "device": device,
                "runner": record.runner,
            },
            "model": model_info,
            "signature": {},
            "metrics": dict(record.metrics),
            "latency_settings": latency.model_dump(),
            "measured_on": record.hardware,
            "verified_on": here,
            "versions": {
                "python": here.get("python"),
                **versions,
                "autoopt": _autoopt_version(),
            },
            "build": {
                "artifact_key": built.key,
                "recorded_artifact_key": record.artifact_key,
                "same_artifact_key": built.key == record.artifact_key,
                "stages": [e.to_dict() for e in built.events],
            },
            "triton": triton_info,
            "verification": None,
            "files": bundle.hash_files(staging),
        }
        _write_json(staging / bundle.MANIFEST, manifest)

        # PyTorch runners set the process-wide thread count; give the caller's back afterwards.
        import torch

        with _torch_threads(torch.get_num_threads()):
            runner = bundle.load(staging, threads=latency.threads)
            verification = _verify(
                runner, record, workload, latency, verify_settings, accuracy_tolerance, here
            )
            example_outputs = runner(*example_inputs)
        np.save(staging / bundle.EXAMPLE_OUTPUTS, example_outputs)
        manifest["signature"] = _signature(model_info, staging, workload, example_outputs)
        manifest["verification"] = verification.to_dict()
        (staging / "README.md").write_text(_readme(manifest, out))
        manifest["files"] = bundle.hash_files(staging)
        _write_json(staging / bundle.MANIFEST, manifest)
        del runner

        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    bundle.check(out)
    rebuilt = [e.stage for e in built.events if not e.hit]
    reused = [e.stage for e in built.events if e.hit]
    log.info("exported trial %d of '%s' to %s", trial, study.name, out)
    return ExportResult(
        directory=out,
        study=study.name,
        trial=record.number,
        recipe=recipe.describe(),
        model_format=model_info["format"],
        verification=verification,
        manifest=manifest,
        rebuilt=rebuilt,
        reused=reused,
        triton=out / "triton" / triton_info["model_name"] if triton_info else None,
        selection=selection,
    )


def _autoopt_version() -> str:
    import autoopt

    return str(getattr(autoopt, "__version__", "unknown"))


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


__all__ = [
    "DEFAULT_ACCURACY_TOLERANCE",
    "ExportResult",
    "Verification",
    "export_trial",
]
