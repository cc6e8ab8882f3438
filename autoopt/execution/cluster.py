"""Starting or joining Ray, and checking that the cluster can serve each hardware target."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

#: The Ray resource each node offers once: latency measurements on a node never overlap.
MEASURE_SLOT = "autoopt_measure"
_RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


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
        from autoopt.quiet import without_records

        # address="local": never attach to a stale cluster a killed run left behind. Ray
        # announces that it turned token authentication on for this cluster, which lives and
        # dies with the sweep's process: nothing for the user to do (its warning that
        # authentication is *off* is kept).
        with without_records(_RAY_AUTH_LOGGER, "Token authentication is enabled"):
            ray.init(address="local", num_cpus=num_cpus, resources={MEASURE_SLOT: 1}, **kwargs)


def split_resources(resources: dict[str, float]) -> dict[str, Any]:
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
