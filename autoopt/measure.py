"""Verifying and measuring a built candidate: the one place timings are taken.

Discipline: fixed intra-op threads, warm-up, many timed runs, median/p90/p99, the batch sizes
the experiment names, peak resident memory of the measurement, and the hardware it ran on.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autoopt import hardware, registry
from autoopt.artifacts import Artifact, OnnxArtifact, OpenVinoArtifact, artifact_size_bytes
from autoopt.errors import CandidateError

if TYPE_CHECKING:
    from autoopt.backends._base import Runner
    from autoopt.config import LatencyConfig, VerifyConfig
    from autoopt.recipe import Recipe
    from autoopt.workloads import Workload

EVAL_BATCH = 64
_TEACHER_OUTPUTS: dict[str, np.ndarray] = {}


@dataclass(frozen=True)
class LatencyStats:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    runs: int

    @classmethod
    def from_samples(cls, samples_ns: list[int]) -> LatencyStats:
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        return cls(
            p50_ms=float(np.percentile(ms, 50)),
            p90_ms=float(np.percentile(ms, 90)),
            p99_ms=float(np.percentile(ms, 99)),
            mean_ms=float(ms.mean()),
            min_ms=float(ms.min()),
            runs=len(ms),
        )


@dataclass
class Measurement:
    metrics: dict[str, float] = field(default_factory=dict)
    runner: dict[str, Any] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)


def time_callable(fn: Callable[[], Any], warmup: int, runs: int) -> LatencyStats:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return LatencyStats.from_samples(samples)


def _reset_peak_rss() -> bool:
    # Linux: writing 5 to clear_refs resets VmHWM, so the peak covers only what follows.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def teacher_outputs(workload: Workload) -> np.ndarray:
    """The fp32 teacher's outputs on the evaluation split, computed once per machine.

    Every measurement runs in a fresh process, and for a transformer this pass costs more
    than timing the candidate; the file is keyed by the workload's version (weights + data).
    """
    from autoopt.cache import autoopt_home
    from autoopt.workloads import predict_torch

    if workload.version not in _TEACHER_OUTPUTS:
        path = autoopt_home() / "teacher-outputs" / f"{workload.name}-{workload.version}.npy"
        try:
            outputs = np.load(path)
        except (OSError, ValueError):
            outputs = predict_torch(workload.model, workload.evaluation)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, outputs)
            os.replace(tmp, path)  # atomic: concurrent measurers never read half a file
        _TEACHER_OUTPUTS[workload.version] = outputs
    return _TEACHER_OUTPUTS[workload.version]


def predict(runner: Runner, workload: Workload, batch_size: int = EVAL_BATCH) -> np.ndarray:
    outs = [runner.run(inputs) for inputs, _ in workload.evaluation.batches(batch_size)]
    return np.concatenate(outs)


def verify(runner: Runner, workload: Workload, settings: VerifyConfig) -> float:
    """Compare the candidate with the fp32 teacher on reference inputs; raise if it is broken."""
    n = min(settings.reference_samples, len(workload.evaluation))
    reference = teacher_outputs(workload)[:n]
    inputs = workload.evaluation.take(n).inputs
    try:
        out = runner.run(inputs)
    except Exception as e:  # noqa: BLE001 - any runtime failure means a broken candidate
        raise CandidateError(
            f"candidate failed to run: {type(e).__name__}: {e}", stage="verify"
        ) from e
    if out.shape != reference.shape:
        raise CandidateError(
            f"output shape {tuple(out.shape)} differs from the teacher's {tuple(reference.shape)}",
            stage="verify",
        )
    bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    if bad:
        raise CandidateError(f"{bad} non-finite values (NaN/inf) in the outputs", stage="verify")
    agreement = workload.agreement(reference, out)
    if agreement < settings.min_agreement:
        raise CandidateError(
            f"agrees with the teacher on {agreement:.1%} of reference inputs, below the "
            f"minimum {settings.min_agreement:.1%}: the build is broken",
            stage="verify",
        )
    return agreement


def param_count(artifact: Artifact) -> int:
    if isinstance(artifact, OpenVinoArtifact):
        from autoopt.techniques._openvino import constant_count

        return constant_count(artifact)
    if isinstance(artifact, OnnxArtifact):
        import onnx

        graph = onnx.load(str(artifact.path), load_external_data=False).graph
        return int(sum(math.prod(t.dims) for t in graph.initializer))
    model = artifact.model
    total = sum(p.numel() for p in model.parameters())
    # Dynamically quantized modules keep weights in packed params, not parameters.
    for module in model.modules():
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            w, b = packed._weight_bias()
            total += w.numel() + (b.numel() if b is not None else 0)
    return int(total)


def measure(
    artifact: Artifact,
    recipe: Recipe,
    workload: Workload,
    latency: LatencyConfig,
    verify_settings: VerifyConfig,
    scratch: Path,
    device: str = "cpu",
) -> Measurement:
    """Compile for the recipe's backend on ``device``, verify against the teacher, score and
    time it."""
    backend_cls = registry.get(recipe.backend.key)
    backend = backend_cls()
    teacher_outputs(workload)  # computed before the memory window opens
    _reset_peak_rss()
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    rss_before = _peak_rss_mb()
    try:
        runner = backend.compile(artifact, recipe.backend.parsed(), latency.threads, device)  # type: ignore[union-attr, call-arg]
    except CandidateError:
        raise
    except Exception as e:  # noqa: BLE001 - a backend that cannot load the artifact fails it
        raise CandidateError(
            f"{recipe.backend.key} compile failed: {type(e).__name__}: {e}", stage="compile"
        ) from e
    agreement = verify(runner, workload, verify_settings)

    outputs = predict(runner, workload)
    metrics: dict[str, float] = {
        k: float(v)
        for k, v in workload.metric(
            outputs, workload.evaluation, teacher_outputs(workload)
        ).items()
    }
    metrics["accuracy"] = metrics[workload.metric_name]
    metrics["verify_agreement"] = agreement

    for i, batch_size in enumerate([latency.batch_size, *latency.extra_batch_sizes]):
        try:
            fn = runner.timed(workload.latency_inputs(batch_size))
            stats = time_callable(fn, latency.warmup, latency.runs)
        except Exception as e:  # noqa: BLE001
            raise CandidateError(f"timing failed: {type(e).__name__}: {e}", stage="measure") from e
        suffix = "" if i == 0 else f"@b{batch_size}"
        metrics[f"latency_p50_ms{suffix}"] = stats.p50_ms
        metrics[f"latency_p90_ms{suffix}"] = stats.p90_ms
        metrics[f"latency_p99_ms{suffix}"] = stats.p99_ms
        if i == 0:
            metrics["latency_mean_ms"] = stats.mean_ms
            metrics["latency_min_ms"] = stats.min_ms
            metrics["latency_runs"] = stats.runs
    metrics["peak_memory_mb"] = _peak_rss_mb()
    metrics["memory_delta_mb"] = max(0.0, metrics["peak_memory_mb"] - rss_before)
    if device == "cuda":
        import torch

        metrics["gpu_peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    metrics["size_mb"] = artifact_size_bytes(artifact, scratch) / 2**20
    metrics["params"] = param_count(artifact)
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise CandidateError(f"metric '{name}' is {value}", stage="measure")
    hw = hardware.current().to_dict()
    hw["load_avg_1m"] = os.getloadavg()[0]
    return Measurement(metrics=metrics, runner=runner.describe(), hardware=hw)
