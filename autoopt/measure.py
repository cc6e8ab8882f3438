"""Verifying and measuring a built candidate: the one place timings are taken.

Discipline: fixed intra-op threads, warm-up, many timed runs, median/p90/p99, the batch sizes
the experiment names, peak resident memory of the measurement, and the hardware it ran on.
Each candidate is timed in alternating rounds with the baseline in the same process
(:mod:`autoopt.pairing`), so its speedup is a ratio taken under one load, and the host's
load while timing is recorded and flagged.
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

from autoopt import hardware, plugins
from autoopt.artifacts import Artifact, OnnxArtifact, OpenVinoArtifact, artifact_size_bytes
from autoopt.errors import CandidateError
from autoopt.pairing import cpu_share, host_loaded, paired_ratio, time_rounds
from autoopt.related import relation

if TYPE_CHECKING:
    from autoopt.config import LatencyConfig, VerifyConfig
    from autoopt.plugins import Runner
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
    than timing the candidate; the file is keyed by the workload's version (weights + data)
    and its model's code.
    """
    from autoopt.cache import autoopt_home
    from autoopt.workloads import predict_torch

    key = f"{workload.name}-{workload.version}-{workload.model_code}"
    if key not in _TEACHER_OUTPUTS:
        path = autoopt_home() / "teacher-outputs" / f"{key}.npy"
        try:
            outputs = np.load(path)
        except (OSError, ValueError):
            outputs = predict_torch(workload.model, workload.evaluation)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, outputs)
            os.replace(tmp, path)  # atomic: concurrent measurers never read half a file
        _TEACHER_OUTPUTS[key] = outputs
    return _TEACHER_OUTPUTS[key]


def predict(runner: Runner, workload: Workload, batch_size: int = EVAL_BATCH) -> np.ndarray:
    outs = [runner.run(inputs) for inputs, _ in workload.evaluation.batches(batch_size)]
    return np.concatenate(outs)


def score(runner: Runner, workload: Workload) -> dict[str, float]:
    """The workload's metrics of ``runner`` on the evaluation split (``accuracy`` included,
    under the workload's own name as well)."""
    outputs = predict(runner, workload)
    scores = workload.metric(outputs, workload.evaluation, teacher_outputs(workload))
    metrics = {k: float(v) for k, v in scores.items()}
    metrics["accuracy"] = metrics[workload.metric_name]
    return metrics


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
    # An inaccurate candidate is measured (an infeasible trial the search learns from); only
    # one whose outputs carry nothing of the teacher's is a broken build (autoopt.related).
    found = relation(reference, out, workload.output_kind)
    if not found.related:
        raise CandidateError(
            f"outputs unrelated to the teacher's ({found.detail}): the build is broken",
            stage="verify",
        )
    agreement = workload.agreement(reference, out)
    if agreement < settings.min_agreement:
        raise CandidateError(
            f"agrees with the teacher on {agreement:.1%} of reference inputs, below the "
            f"experiment's verify.min_agreement {settings.min_agreement:.1%}",
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


def _restoring_denormals(call: Callable[[], Any]) -> Callable[[], Any]:
    """``call`` run with IEEE denormals, as trial 0 ran it. A candidate may flush denormals
    to zero on the timing thread (ONNX Runtime's ``flush_denormals`` sets x86's MXCSR, per
    thread, and it stays set), which would speed up the baseline's calls timed after it."""
    import torch

    def wrapped() -> Any:
        torch.set_flush_denormal(False)
        return call()

    return wrapped


def baseline_calls(
    workload: Workload, threads: int, device: str, batch_sizes: list[int]
) -> dict[int, Callable[[], Any]]:
    """The baseline runner (the workload's teacher, fp32 on PyTorch eager: trial 0's
    recipe) on ``device`` with ``threads``, ready to time at each batch size."""
    from autoopt.artifacts import TorchArtifact
    from autoopt.resolve import baseline_recipe

    step = baseline_recipe().backend
    try:
        backend = plugins.get_backend(step.key)()
        runner = backend.compile(TorchArtifact(workload.model), step.config, threads, device)
        return {
            b: _restoring_denormals(runner.timed(workload.latency_inputs(b))) for b in batch_sizes
        }
    except Exception as e:  # noqa: BLE001 - without the baseline the trial cannot be paired
        raise CandidateError(
            f"the baseline could not be prepared for paired timing: {type(e).__name__}: {e}",
            stage="measure",
        ) from e


def time_candidate(
    calls: list[tuple[int, Callable[[], Any]]],
    baseline: dict[int, Callable[[], Any]],
    latency: LatencyConfig,
) -> dict[str, float]:
    """Time the candidate's call at each batch size, in alternating rounds with the
    baseline's where ``baseline`` has one, and how contended the host was meanwhile.

    The candidate's latencies keep their names (``@b<N>`` for an extra batch size); a paired
    timing adds ``paired_speedup`` (the baseline's total time / the candidate's over the
    interleaved rounds, see :mod:`autoopt.pairing` for why not medians),
    ``paired_speedup_min``/``_max`` (the lowest and highest ratio of a round),
    ``paired_speedup_median`` (baseline median / candidate median) and
    ``baseline_latency_p50_ms``. Without a baseline but with ``latency.paired`` (the baseline
    trial itself), the paired speedup is 1 by definition. Over all batch sizes:
    ``load_avg_1m``, ``cpu_share``, ``host_loaded``.
    """
    metrics: dict[str, float] = {}
    cpu_s = wall_s = 0.0
    load_before = os.getloadavg()[0]
    for i, (batch_size, call) in enumerate(calls):
        try:
            samples = time_rounds(
                call, baseline.get(batch_size), latency.warmup, latency.runs, latency.rounds
            )
        except Exception as e:  # noqa: BLE001
            raise CandidateError(f"timing failed: {type(e).__name__}: {e}", stage="measure") from e
        cpu_s, wall_s = cpu_s + samples.cpu_s, wall_s + samples.wall_s
        stats = LatencyStats.from_samples(samples.flat("candidate"))
        suffix = "" if i == 0 else f"@b{batch_size}"
        metrics[f"latency_p50_ms{suffix}"] = stats.p50_ms
        metrics[f"latency_p90_ms{suffix}"] = stats.p90_ms
        metrics[f"latency_p99_ms{suffix}"] = stats.p99_ms
        if i == 0:
            metrics["latency_mean_ms"] = stats.mean_ms
            metrics["latency_min_ms"] = stats.min_ms
            metrics["latency_runs"] = stats.runs
        if latency.paired:
            ratio = paired_ratio(samples)
            metrics[f"paired_speedup{suffix}"] = ratio.speedup
            metrics[f"paired_speedup_min{suffix}"] = ratio.low
            metrics[f"paired_speedup_max{suffix}"] = ratio.high
            metrics[f"paired_speedup_median{suffix}"] = ratio.median
            metrics[f"baseline_latency_p50_ms{suffix}"] = ratio.baseline_p50_ms
    # The 1-minute average lags: the larger of the two readings catches load that started
    # or ended while timing.
    load = max(load_before, os.getloadavg()[0])
    share = cpu_share(cpu_s, wall_s, latency.threads)
    metrics["load_avg_1m"] = load
    metrics["cpu_share"] = share
    metrics["host_loaded"] = float(host_loaded(load, hardware.current().logical_cores, share))
    return metrics


def _compiled(
    backend: Any, artifact: Artifact, recipe: Recipe, threads: int, device: str
) -> Runner:
    try:
        runner: Runner = backend.compile(artifact, recipe.backend.config, threads, device)
    except CandidateError:
        raise
    except Exception as e:  # noqa: BLE001 - a backend that cannot load the artifact fails it
        raise CandidateError(
            f"{recipe.backend.key} compile failed: {type(e).__name__}: {e}", stage="compile"
        ) from e
    return runner


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
    backend = plugins.get_backend(recipe.backend.key)()
    teacher_outputs(workload)  # computed before the memory window opens
    _reset_peak_rss()
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    rss_before = _peak_rss_mb()
    runner = _compiled(backend, artifact, recipe, latency.threads, device)
    agreement = verify(runner, workload, verify_settings)

    metrics = score(runner, workload)
    metrics["verify_agreement"] = agreement

    batch_sizes = [latency.batch_size, *latency.extra_batch_sizes]
    try:
        calls = [(b, runner.timed(workload.latency_inputs(b))) for b in batch_sizes]
        # One call at each batch size before the baseline shares the process: the peak
        # memory below is the candidate's alone (the teacher's activations would count).
        for _, call in calls:
            call()
    except Exception as e:  # noqa: BLE001
        raise CandidateError(f"timing failed: {type(e).__name__}: {e}", stage="measure") from e
    metrics["peak_memory_mb"] = _peak_rss_mb()
    metrics["memory_delta_mb"] = max(0.0, metrics["peak_memory_mb"] - rss_before)
    if device == "cuda":
        import torch

        metrics["gpu_peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    # The baseline trial is not paired with itself: its paired speedup is 1 by definition.
    baseline = (
        baseline_calls(workload, latency.threads, device, batch_sizes)
        if latency.paired and not recipe.is_baseline
        else {}
    )
    metrics.update(time_candidate(calls, baseline, latency))
    metrics["size_mb"] = artifact_size_bytes(artifact, scratch) / 2**20
    metrics["params"] = param_count(artifact)
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise CandidateError(f"metric '{name}' is {value}", stage="measure")
    hw = hardware.current().to_dict()
    hw["load_avg_1m"] = metrics["load_avg_1m"]
    return Measurement(metrics=metrics, runner=runner.describe(), hardware=hw)
