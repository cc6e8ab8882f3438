"""Verifying a written bundle through :mod:`autoopt.measure`, as the sweep measured the trial:
the teacher check, the score on the evaluation split, and the latency at the trial's settings.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from autoopt.errors import CandidateError, ExportError

if TYPE_CHECKING:
    from autoopt.config import LatencyConfig, VerifyConfig
    from autoopt.plugins import Runner
    from autoopt.study.records import TrialRecord
    from autoopt.workloads import Workload

log = logging.getLogger(__name__)

#: Largest accepted |re-measured - recorded| of the workload's metric (absolute). The rebuild
#: is seeded and deterministic on one machine; the slack covers a sample or two flipping
#: across CPUs or library builds (1 sample of digits' 540 is 0.0019).
DEFAULT_ACCURACY_TOLERANCE = 0.005
#: A re-timed latency this many times the recorded one is logged as a warning.
LATENCY_WARN_RATIO = 1.5


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


def same_hardware(recorded: Mapping[str, Any], here: Mapping[str, Any]) -> bool:
    keys = ("cpu_model", "logical_cores", "cuda_devices")
    return all(recorded.get(k) == here.get(k) for k in keys)


def verify_bundle(
    runner: Runner,
    trial: TrialRecord,
    workload: Workload,
    latency: LatencyConfig,
    verify_settings: VerifyConfig,
    tolerance: float,
    here: Mapping[str, Any],
) -> Verification:
    """Re-measure the loaded bundle; raises when its score differs from the recorded one by
    more than ``tolerance``."""
    from autoopt.measure import score, time_callable, verify

    try:
        agreement = verify(runner, workload, verify_settings)
    except CandidateError as e:
        raise ExportError(f"trial {trial.number}: the exported bundle is broken: {e}") from e
    measured = score(runner, workload)[workload.metric_name]
    recorded = float(trial.metrics["accuracy"])
    stats = time_callable(
        runner.timed(workload.latency_inputs(latency.batch_size)), latency.warmup, latency.runs
    )
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
        same_hardware=same_hardware(trial.hardware, here),
    )
    _check_reproduced(trial.number, workload.metric_name, measured, recorded, tolerance)
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


def _check_reproduced(
    number: int, metric: str, measured: float, recorded: float, tolerance: float
) -> None:
    if not abs(measured - recorded) <= tolerance:
        raise ExportError(
            f"trial {number}: the exported bundle scores {metric} {measured:.4f} on the "
            f"evaluation split but the study recorded {recorded:.4f} (difference "
            f"{measured - recorded:+.4f}, tolerance {tolerance:g}); the rebuild does not "
            "reproduce the trial (code or library versions changed since the sweep?), so "
            "nothing was exported"
        )
