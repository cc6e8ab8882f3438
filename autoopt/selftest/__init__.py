"""The host self-test: does each path a search space can produce compute the right thing on
this host?

A kernel right on one CPU can be wrong on another (an int8 GEMM autotuned on one AVX-512
variant), so autoopt verifies each *path* (backend and its kernel settings, precision,
quantization and its kernel settings; :mod:`._paths`) on the host before trusting it. Each
runs on a *probe* cut from the workload's own model (one of its repeated blocks, with the
inputs it really receives at the measured batch sizes; :mod:`._probe`), built by the normal
pipeline and compared with the fp32 probe (:mod:`._verdict`). Results are cached per host,
library versions and probe (:mod:`._store`). :func:`refusal_reason` turns a failed path into
the reason to refuse a candidate on it before it is built.

Flow: :func:`enumerate_paths` → :func:`build_probe` → :func:`run_selftest` (check, build,
compile, compare, time; cached) → :class:`PathResult` → :func:`refusal_reason`.
"""

from __future__ import annotations

from autoopt.selftest._block import BlockProbe, find_block
from autoopt.selftest._host import HostInfo, current_host
from autoopt.selftest._paths import (
    describe_path,
    enumerate_paths,
    kernel_settings,
    path_key,
    path_of,
)
from autoopt.selftest._probe import Probe, ProbeGroup, build_probe, probe_batch_sizes
from autoopt.selftest._refusal import refusal_reason
from autoopt.selftest._result import STATUSES, BatchResult, PathResult, Status
from autoopt.selftest._run import run_selftest
from autoopt.selftest._verdict import THRESHOLDS, PrecisionClass, Threshold, precision_class

__all__ = [
    "STATUSES",
    "THRESHOLDS",
    "BatchResult",
    "BlockProbe",
    "HostInfo",
    "PathResult",
    "PrecisionClass",
    "Probe",
    "ProbeGroup",
    "Status",
    "Threshold",
    "build_probe",
    "current_host",
    "describe_path",
    "enumerate_paths",
    "find_block",
    "kernel_settings",
    "path_key",
    "path_of",
    "precision_class",
    "probe_batch_sizes",
    "refusal_reason",
    "run_selftest",
]
