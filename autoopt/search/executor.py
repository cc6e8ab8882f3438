"""Running candidates as Ray tasks: build anywhere on the target, measure with the node's slot.

Each trial is two tasks:

* ``build`` (1 CPU, the target's resources): check the recipe and run the stages through the
  shared stage cache; returns the final cache key and the node it ran on. Builds are pure, so
  their worker processes are reused (saves the interpreter start-up per trial).
* ``measure`` (pinned to that node, holding its single ``autoopt_measure`` slot), in a fresh
  worker process (``max_calls=1``) so that no thread pool, allocator state or memory
  high-water mark leaks from one candidate into another: compile for the backend, verify
  against the teacher, score, time. Builds may overlap on a node; two measurements never do.

Both return plain dicts; a candidate's own failure comes back as ``{"error": ...}`` so that
Ray exceptions mean only infrastructure trouble (a dead worker, a cancelled task).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoopt.errors import CandidateError, CandidateRejected

log = logging.getLogger(__name__)
MEASURE_SLOT = "autoopt_measure"


@dataclass(frozen=True)
class TrialTask:
    """Everything a worker needs to build and measure one candidate (picklable, no objects)."""

    trial_number: int
    recipe: dict[str, Any]
    workload: str
    workload_options: dict[str, Any]
    cache_dir: str
    latency: dict[str, Any]
    verify: dict[str, Any]
    plugins: list[str] = field(default_factory=list)
    seed: int = 0
    sys_path: list[str] = field(default_factory=list)
    build_threads: int = 1
    #: The target's device: where models train, run and are timed.
    device: str = "cpu"


def _prepare(task: TrialTask) -> Any:
    import importlib

    for p in task.sys_path:
        if p not in sys.path:
            sys.path.append(p)
    for module in task.plugins:
        importlib.import_module(module)
    from autoopt.workloads import load_workload

    return load_workload(task.workload, task.workload_options)


def _node_id() -> str:
    try:
        import ray

        if not ray.is_initialized():  # outside Ray (tests, export): do not start one
            return "local"
        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside Ray (tests, export)
        return "local"


def _error(e: CandidateError) -> dict[str, Any]:
    return {
        "error": {
            "stage": e.stage or "build",
            "reason": str(e),
            "rejected": isinstance(e, CandidateRejected),
        },
        "node_id": _node_id(),
    }


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


def ensure_ray(num_cpus: int | None = None, address: str | None = None) -> None:
    """Start an embedded local Ray (or connect to ``address``) once per process."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Workers must import the project's plugins and user workloads like the driver does.
    pythonpath = os.pathsep.join(
        p for p in [os.getcwd(), *sys.path, os.environ.get("PYTHONPATH", "")] if p
    )
    runtime_env = {"env_vars": {"PYTHONPATH": pythonpath, "RAY_USAGE_STATS_ENABLED": "0"}}
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "runtime_env": runtime_env,
    }
    if address:
        ray.init(address=address, **kwargs)
    else:
        # address="local": never attach to a stale cluster a killed run left behind.
        ray.init(address="local", num_cpus=num_cpus, resources={MEASURE_SLOT: 1}, **kwargs)


def _split_resources(resources: dict[str, float]) -> dict[str, Any]:
    """Ray takes CPU and GPU as num_cpus/num_gpus, everything else under ``resources``."""
    custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}
    out: dict[str, Any] = {"resources": custom or None}
    if "GPU" in resources:
        out["num_gpus"] = resources["GPU"]
    return out


def check_targets(targets: list[Any], cpus: int = 1) -> None:
    """Fail fast, naming what the cluster has, when no alive node can serve a target (with
    ``cpus`` CPUs for a task: the larger of the build and the measurement threads)."""
    import ray

    from autoopt.errors import ConfigError

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    for target in targets:
        needs = {"CPU": float(cpus), MEASURE_SLOT: 1.0, **target.task_resources}
        matching = [
            n
            for n in nodes
            if all(n["Resources"].get(k, 0.0) >= v for k, v in needs.items())
            and all(n.get("Labels", {}).get(k) == v for k, v in target.labels.items())
        ]
        if matching:
            continue
        have = "; ".join(
            f"{n['NodeManagerAddress']} "
            + ", ".join(
                f"{k}={v:g}"
                for k, v in sorted(n["Resources"].items())
                if not k.startswith(("node:", "memory", "object_store"))
            )
            + (f" labels={dict(n.get('Labels', {}))}" if target.labels else "")
            for n in nodes
        )
        hint = (
            f" (start worker nodes with --resources='{{\"{MEASURE_SLOT}\": 1}}': one "
            "measurement slot per node)"
            if not any(MEASURE_SLOT in n["Resources"] for n in nodes)
            else ""
        )
        raise ConfigError(
            f"targets[{target.name}]: no node in the Ray cluster has {needs}"
            + (f" and labels {target.labels}" if target.labels else "")
            + f"; nodes: {have or '(none alive)'}{hint}"
        )


class RayExecutor:
    """Submits the two tasks of a trial to nodes of one hardware target."""

    def __init__(self, target: Any, threads: int = 1, build_threads: int = 1) -> None:
        import ray

        self._target = target
        self._threads = threads
        self._build_threads = build_threads
        self._build = ray.remote(build_candidate)
        self._measure = ray.remote(max_calls=1)(measure_candidate)

    def _placement(self) -> dict[str, Any]:
        options = _split_resources(self._target.task_resources)
        if self._target.labels:
            options["label_selector"] = dict(self._target.labels)
        return options

    def submit_build(self, task: TrialTask) -> Any:
        return self._build.options(
            num_cpus=self._build_threads,
            max_retries=0,
            name=f"build-{task.trial_number}",
            **self._placement(),
        ).remote(task)

    def submit_measure(self, task: TrialTask, built: dict[str, Any]) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options = _split_resources({**self._target.task_resources, MEASURE_SLOT: 1})
        strategy = NodeAffinitySchedulingStrategy(node_id=built["node_id"], soft=False)
        return self._measure.options(
            num_cpus=self._threads,
            scheduling_strategy=strategy,
            max_retries=0,
            name=f"measure-{task.trial_number}",
            **options,
        ).remote(task, built)

    @staticmethod
    def cancel(ref: Any) -> None:
        import ray

        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001 - already finished or gone
            pass
