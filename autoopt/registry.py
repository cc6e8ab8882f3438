"""The registry of technique and backend methods, keyed ``family.method``.

A plugin module registers a method by decorating its class with :func:`register`; experiments
list plugin modules under ``plugins:`` so that workers import them too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, TypeVar

from autoopt.errors import ConfigError

if TYPE_CHECKING:
    from autoopt.backends._base import Backend
    from autoopt.techniques._base import Technique

T = TypeVar("T")
_METHODS: dict[str, Any] = {}
_BUILTIN_MODULES = (
    "autoopt.techniques.distillation",
    "autoopt.techniques.pruning",
    "autoopt.techniques.transformer_pruning",
    "autoopt.techniques.quantization",
    "autoopt.techniques.nncf_quantization",
    "autoopt.techniques.precision",
    "autoopt.techniques.float8",
    "autoopt.backends.torch_eager",
    "autoopt.backends.torch_compile",
    "autoopt.backends.onnxruntime",
    "autoopt.backends.openvino",
    "autoopt.backends.tensorrt",
)
_loaded = False


def register(cls: type[T]) -> type[T]:
    """Class decorator: register a Technique or Backend subclass under its ``key``."""
    key: str = cls.key  # type: ignore[attr-defined]
    existing = _METHODS.get(key)
    if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"method key '{key}' is registered twice ({existing} and {cls})")
    _METHODS[key] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def get(key: str) -> type[Technique] | type[Backend]:
    _load_builtins()
    try:
        return _METHODS[key]
    except KeyError:
        family = key.split(".")[0]
        raise ConfigError(
            f"unknown method '{key}'; allowed: {', '.join(method_keys(family))}"
        ) from None


def method_keys(family: str) -> list[str]:
    _load_builtins()
    return sorted(k for k in _METHODS if k.split(".")[0] == family)


def method_names(family: str) -> list[str]:
    return [k.split(".", 1)[1] for k in method_keys(family)]
