"""Workloads: the contract, loading by name or entry point, and the bundled examples."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from autoopt.cache import autoopt_home
from autoopt.errors import ConfigError, WorkloadError
from autoopt.workloads._base import (
    Split,
    Workload,
    cosine_similarity,
    predict_torch,
    top1_accuracy,
)
from autoopt.workloads._contract import check_contract
from autoopt.workloads.grouped import grouped_fidelity, neighbour_agreement

BUNDLED: dict[str, str] = {
    "digits_cnn": "autoopt.workloads.digits_cnn:load",
    "minilm": "autoopt.workloads.minilm:load",
}
#: The workload sources: factories of a Workload from files (``workload: {onnx: {...}}``).
SOURCES: dict[str, str] = {
    "huggingface": "autoopt.workloads.huggingface:load",
    "onnx": "autoopt.workloads.onnx_file:load",
}
_LOADED: dict[str, Workload] = {}


def asset_dir(name: str) -> Path:
    """Where a workload caches what it builds on first use (``$AUTOOPT_HOME/workloads/NAME``)."""
    path = autoopt_home() / "workloads" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _entry_point(name: str) -> str:
    if name in BUNDLED:
        return BUNDLED[name]
    if name in SOURCES:
        return SOURCES[name]
    if ":" not in name:
        raise ConfigError(
            f"unknown workload '{name}'; allowed: {', '.join(BUNDLED)} "
            "or 'package.module:function'"
        )
    return name


def resolve_factory(name: str) -> Callable[..., Workload]:
    target = _entry_point(name)
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - report any import failure the same way
        raise WorkloadError(f"cannot import workload module '{module_name}': {e}") from e
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise WorkloadError(f"'{target}' has no callable '{attr}'")
    return factory


def check_workload_ref(name: str, where: str) -> None:
    """Raise ConfigError unless the workload's entry point imports (nothing is loaded)."""
    try:
        resolve_factory(name)
    except (ConfigError, WorkloadError) as e:
        raise ConfigError(f"{where}: {e}") from e


def load_workload(name: str, options: Mapping[str, Any] | None = None) -> Workload:
    """Load (once per process) a workload and check its contract
    (:func:`~autoopt.workloads._contract.check_contract`: WorkloadError in one line)."""
    options = dict(options or {})
    cache_key = f"{name}:{json.dumps(options, sort_keys=True, default=str)}"
    if cache_key not in _LOADED:
        factory = resolve_factory(name)
        try:
            workload = factory(**options)
        except TypeError as e:
            raise WorkloadError(f"workload '{name}' rejected its options {options}: {e}") from e
        if not isinstance(workload, Workload):
            raise WorkloadError(
                f"workload '{name}' returned {type(workload).__name__}, not autoopt.Workload"
            )
        check_contract(workload)
        _LOADED[cache_key] = workload
    return _LOADED[cache_key]


__all__ = [
    "BUNDLED",
    "SOURCES",
    "Split",
    "Workload",
    "asset_dir",
    "check_contract",
    "check_workload_ref",
    "cosine_similarity",
    "grouped_fidelity",
    "load_workload",
    "neighbour_agreement",
    "predict_torch",
    "resolve_factory",
    "top1_accuracy",
]
