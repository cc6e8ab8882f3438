"""Execution: how trials are built and measured on the target's hardware (Ray today)."""

from autoopt.execution._base import Executor, Failure, Finished, SelfTestTask, TrialTask
from autoopt.execution.cluster import MEASURE_SLOT, check_targets, ensure_ray
from autoopt.execution.ray_executor import RayExecutor
from autoopt.execution.worker import build_candidate, measure_candidate, prepare, self_test

__all__ = [
    "MEASURE_SLOT",
    "Executor",
    "Failure",
    "Finished",
    "RayExecutor",
    "SelfTestTask",
    "TrialTask",
    "build_candidate",
    "check_targets",
    "ensure_ray",
    "measure_candidate",
    "prepare",
    "self_test",
]
