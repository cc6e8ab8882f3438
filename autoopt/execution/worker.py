"""What a worker runs for one trial: prepare its process, build the candidate, measure it.

Both entry points are plain functions of a picklable :class:`TrialTask` returning plain dicts,
so any executor can run them (Ray tasks today, the export in-process). A candidate's own
failure comes back as ``{"error": ...}``, so that executor exceptions mean infrastructure
trouble only (a dead worker, a cancelled task).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoopt.errors import CandidateBelowFloor, CandidateError, CandidateRejected
from autoopt.execution._base import SelfTestTask, TrialTask

if TYPE_CHECKING:
    from autoopt.workloads import Workload

log = logging.getLogger(__name__)


def prepare(
    workload: str, options: dict[str, Any], plugins: list[str], sys_path: list[str]
) -> Workload:
    """Make this process able to build what the controller asked for: its import path, its
    plugins (they register techniques), then the workload (cached after its first load)."""
    for p in sys_path:
        if p not in sys.path:
            sys.path.append(p)
    for module in plugins:
        importlib.import_module(module)
    from autoopt.workloads import load_workload

    return load_workload(workload, options)


def _prepare(task: TrialTask) -> Workload:
    return prepare(task.workload, task.workload_options, task.plugins, task.sys_path)


def _node_id() -> str:
    try:
        import ray

        if not ray.is_initialized():  # outside Ray (tests, export): do not start one
            return "local"
        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside Ray (tests, export)
        return "local"


def _error(e: CandidateError) -> dict[str, Any]:
    error: dict[str, Any] = {
        "stage": e.stage or "build",
        "reason": str(e),
        "rejected": isinstance(e, CandidateRejected),
    }
    if isinstance(e, CandidateBelowFloor):
        error["below_floor"] = dict(e.verdict)
    return {"error": error, "node_id": _node_id()}


def build_candidate(task: TrialTask) -> dict[str, Any]:
    import torch

    from autoopt import hardware
    from autoopt.cache import StageCache
    from autoopt.pipeline import build
    from autoopt.resolve import recipe_from_dict

    start = time.perf_counter()
    # The build worker is reused across trials: set the threads of this trial's build.
    torch.set_num_threads(task.build_threads)
    try:
        workload = _prepare(task)
        recipe = recipe_from_dict(task.recipe)
        with tempfile.TemporaryDirectory(prefix="autoopt-build-") as workdir:
            result = build(
                recipe,
                workload,
                StageCache(task.cache_dir),
                hardware.current(),
                Path(workdir),
                seed=task.seed,
                device=task.device,
                fidelity=task.fidelity,
                rungs=task.rungs,
            )
    except CandidateError as e:
        return _error(e)
    except Exception as e:  # noqa: BLE001 - e.g. a plugin or workload error: fail this trial
        return _error(CandidateError(f"{type(e).__name__}: {e}", stage="build"))
    return {
        "key": result.key,
        "path": str(result.path),
        "kind": result.kind,
        "threads": torch.get_num_threads(),
        "events": [e.to_dict() for e in result.events],
        # Below 1 at a rung: the share of its training the least trained stage got.
        "fidelity": result.fidelity,
        "node_id": _node_id(),
        "seconds": time.perf_counter() - start,
    }


def measure_candidate(task: TrialTask, built: dict[str, Any]) -> dict[str, Any]:
    from autoopt.artifacts import load_artifact
    from autoopt.config import LatencyConfig, VerifyConfig
    from autoopt.measure import measure
    from autoopt.resolve import recipe_from_dict

    start = time.perf_counter()
    try:
        workload = _prepare(task)
        recipe = recipe_from_dict(task.recipe)
        artifact = load_artifact(Path(built["path"]), built["kind"])
        with tempfile.TemporaryDirectory(prefix="autoopt-measure-") as scratch:
            m = measure(
                artifact,
                recipe,
                workload,
                LatencyConfig(**task.latency),
                VerifyConfig(**task.verify),
                Path(scratch),
                device=task.device,
                # A rung's model is not the candidate yet: only a full build is screened.
                floor=task.accuracy_floor if built.get("fidelity", 1.0) >= 1.0 else None,
            )
    except CandidateError as e:
        return _error(e)
    except Exception as e:  # noqa: BLE001
        return _error(CandidateError(f"{type(e).__name__}: {e}", stage="measure"))
    return {
        "metrics": m.metrics,
        "runner": m.runner,
        "hardware": m.hardware,
        "node_id": _node_id(),
        "pid": os.getpid(),
        "seconds": time.perf_counter() - start,
    }


def self_test(task: SelfTestTask) -> list[dict[str, Any]]:
    """The host self-test of every path of the task's space (cached per host): what
    :func:`autoopt.selftest.run_selftest` finds, as plain dicts."""
    from autoopt.config import LatencyConfig, SearchSpace, VerifyConfig
    from autoopt.selftest import run_selftest

    workload = prepare(task.workload, task.workload_options, task.plugins, task.sys_path)
    results = run_selftest(
        workload,
        SearchSpace.model_validate(task.space),
        LatencyConfig(**task.latency),
        VerifyConfig(**task.verify),
        task.device,
    )
    return [r.to_dict() for r in results]
