"""Layer exclusions: a name that matches no layer fails the candidate instead of passing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from autoopt.errors import CandidateError
from autoopt.techniques._names import covered

if TYPE_CHECKING:
    import torch


def unknown_layers_error(
    stage: str, unknown: list[str], available: Iterable[str]
) -> CandidateError:
    shown = sorted(set(available))
    listing = ", ".join(shown[:40]) + (f", ... ({len(shown)} in all)" if len(shown) > 40 else "")
    return CandidateError(
        f"{stage}.exclude: no layer named {', '.join(repr(u) for u in unknown)} in the model; "
        f"quantizable layers: {listing or '(none)'}",
        stage=stage,
    )


def require_known_modules(
    model: torch.nn.Module, exclude: list[str], stage: str, quantizable: list[str]
) -> None:
    """Raises if an exclusion names no module of ``model``."""
    modules = {name for name, _ in model.named_modules() if name}
    unknown = [e for e in exclude if not any(covered(n, [e]) for n in modules)]
    if unknown:
        raise unknown_layers_error(stage, unknown, quantizable)
