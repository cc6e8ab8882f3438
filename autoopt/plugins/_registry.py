"""The registry of technique and backend methods, keyed ``family.method``.

A plugin module registers a method by decorating its class with :func:`register`; experiments
list plugin modules under ``plugins:`` so that workers import them too. The bundled methods are
imported on the first lookup.
"""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

from autoopt.errors import ConfigError
from autoopt.plugins._backend import Backend
from autoopt.plugins._config import MethodConfig
from autoopt.plugins._families import FAMILIES
from autoopt.plugins._technique import Technique

Method = type[Technique[Any]] | type[Backend[Any]]
_M = TypeVar("_M", bound=Method)

_METHODS: dict[str, Method] = {}
_BUILTIN_MODULES = (
    "autoopt.techniques.distillation",
    "autoopt.techniques.pruning",
    "autoopt.techniques.transformer_pruning",
    "autoopt.techniques.quantization",
    "autoopt.techniques.nncf_quantization",
    "autoopt.techniques.nncf_weights",
    "autoopt.techniques.precision",
    "autoopt.techniques.float8",
    "autoopt.backends.torch_eager",
    "autoopt.backends.torch_compile",
    "autoopt.backends.onnxruntime",
    "autoopt.backends.openvino",
    "autoopt.backends.tensorrt",
)
_loaded = False


def register(cls: _M) -> _M:
    """Class decorator: register a Technique or Backend subclass under its ``key``.

    Raises:
        ValueError: the key is not ``family.method`` of this kind of method, or another class
            holds it.
        TypeError: ``Config`` is not a :class:`MethodConfig` subclass.
    """
    key = cls.key
    family, _, method = key.partition(".")
    expected = "backend" if issubclass(cls, Backend) else cls.family
    if expected not in FAMILIES:
        raise ValueError(f"{cls.__qualname__}.family must be one of {', '.join(FAMILIES)}")
    if family != expected or not method:
        raise ValueError(f"method key '{key}' of {cls.__qualname__} must be '{expected}.<name>'")
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, MethodConfig)):
        raise TypeError(f"{cls.__qualname__}.Config must be a MethodConfig subclass")
    existing = _METHODS.get(key)
    # A module imported twice (by path and by name) registers an equal class again.
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


def get(key: str) -> Method:
    """The class registered under ``key``; ConfigError naming the family's methods if none."""
    _load_builtins()
    try:
        return _METHODS[key]
    except KeyError:
        family = key.split(".")[0]
        raise ConfigError(
            f"unknown method '{key}'; allowed: {', '.join(method_keys(family))}"
        ) from None


def get_technique(key: str) -> type[Technique[Any]]:
    cls = get(key)
    if not issubclass(cls, Technique):
        raise ConfigError(f"'{key}' is a backend, not a technique")
    return cls


def get_backend(key: str) -> type[Backend[Any]]:
    cls = get(key)
    if not issubclass(cls, Backend):
        raise ConfigError(f"'{key}' is a technique, not a backend")
    return cls


def method_keys(family: str) -> list[str]:
    _load_builtins()
    return sorted(k for k in _METHODS if k.split(".")[0] == family)


def method_names(family: str) -> list[str]:
    return [k.split(".", 1)[1] for k in method_keys(family)]
