"""What a cached result was computed by: the code a stage runs and the model it runs on.

A stage's cache key covers its input, its config, and :func:`code_fingerprint` of the code
that builds it: the source of the module that defines it and of every module of its package
tree and of autoopt it imports (transitively, lazy imports included: the graph is read from
the source, not from what happened to be imported). Editing a technique's helper module, a
layout, or the training loop then rebuilds exactly the stages that run that code.

The teacher's outputs and the first stage are keyed by :func:`model_fingerprint` too: the
source of every module class in the model and its Hugging Face config, so that editing a
model's ``forward`` never reuses results computed with the old one.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

_DIGEST = 12


def _digest(parts: list[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:_DIGEST]


@functools.cache
def _module_file(name: str) -> Path | None:
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if file is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        file = spec.origin if spec is not None else None
    if not file or not str(file).endswith(".py"):
        return None
    return Path(file)


def _imports(name: str, path: Path) -> set[str]:
    """The modules ``name``'s source imports, anywhere in it, as absolute names."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


@functools.cache
def module_closure(name: str) -> tuple[Path, ...]:
    """The source files of module ``name`` and of every module of its own top-level package
    or of autoopt that it imports, transitively."""
    roots = {name.partition(".")[0], "autoopt"}
    seen: dict[str, Path] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen or current.partition(".")[0] not in roots:
            continue
        if "." not in current and current != name:
            continue  # a top-level package's __init__ re-exports; its code builds nothing
        path = _module_file(current)
        if path is None:
            continue
        seen[current] = path
        todo.extend(_imports(current, path) - set(seen))
    return tuple(seen[n] for n in sorted(seen))


@functools.cache
def code_fingerprint(obj: Any) -> str:
    """The code a stage runs (a class or function): its module's closure, hashed."""
    module = getattr(obj, "__module__", None)
    if not module:
        return _digest([repr(obj).encode()])
    files = module_closure(module)
    if not files:
        return _digest([repr(obj).encode()])
    return _digest([p.read_bytes() for p in files])


def model_fingerprint(model: torch.nn.Module) -> str:
    """The model's code and configuration: the source of each distinct module class in it
    (its own and the library's: a library upgrade that changes a ``forward`` counts), and the
    Hugging Face configs it carries."""
    parts: list[bytes] = []
    seen: set[type] = set()
    for module in model.modules():
        cls = type(module)
        if cls in seen:
            continue
        seen.add(cls)
        try:
            parts.append(inspect.getsource(cls).encode())
        except (OSError, TypeError):  # defined in a notebook or generated: its name only
            parts.append(f"{cls.__module__}.{cls.__qualname__}".encode())
        config = getattr(module, "config", None)
        to_dict = getattr(config, "to_dict", None)
        if callable(to_dict):
            # Where the checkpoint was read from is no property of the model.
            settings = {k: v for k, v in to_dict().items() if k != "_name_or_path"}
            parts.append(json.dumps(settings, sort_keys=True, default=str).encode())
    return _digest(parts)
