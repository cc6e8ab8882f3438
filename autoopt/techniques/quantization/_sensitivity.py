"""Which Linears to keep in float: each one's error when it alone is quantized."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from autoopt.techniques._names import covered
from autoopt.techniques.quantization._eager import quantized_linear

if TYPE_CHECKING:
    import torch

    from autoopt.plugins import Context
    from autoopt.techniques.quantization._config import DynamicInt8Config

logger = logging.getLogger(__name__)


def sensitivity_ranking(
    model: torch.nn.Module, config: DynamicInt8Config, ctx: Context
) -> list[tuple[str, float]]:
    """Every quantizable linear layer (``nn.Linear``, GPT-2's Conv1D) with the error that
    quantizing it *alone* causes.

    The error is the outputs' relative squared distance to the float model's,
    ``‖q(x) − f(x)‖² / ‖f(x)‖²``, on the first ``sensitivity_samples`` calibration samples
    (never the evaluation split), with the candidate's own settings (per-channel or not).
    Sorted from the most sensitive layer down. Each Linear is swapped for its quantized copy
    in ``model`` itself and put back, so no copy of the whole model is made; batches are
    trimmed by the workload's ``trim_batch`` (a ranking, not a measurement).
    """
    from autoopt.layouts import is_linear
    from autoopt.workloads import predict_torch

    split = ctx.workload.calibration.take(config.sensitivity_samples)

    def outputs() -> np.ndarray:
        out = predict_torch(model, split, batch_size=32, trim=ctx.workload.trim_batch)
        return out.astype(np.float64)

    reference = outputs()
    norm = float(np.sum(reference**2)) or 1.0
    parents = dict(model.named_modules())
    errors = []
    for name, module in list(model.named_modules()):
        if not is_linear(module) or covered(name, config.exclude):
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = parents[parent_name]
        setattr(parent, attr, quantized_linear(module, config.per_channel))
        try:
            errors.append((name, float(np.sum((outputs() - reference) ** 2)) / norm))
        finally:
            setattr(parent, attr, module)
    return sorted(errors, key=lambda item: -item[1])


def with_sensitive_exclusions(
    model: torch.nn.Module, config: DynamicInt8Config, ctx: Context
) -> DynamicInt8Config:
    """``config`` with its ``exclude_most_sensitive`` layers added to ``exclude``."""
    ranking = sensitivity_ranking(model, config, ctx)
    top = [name for name, _ in ranking[: config.exclude_most_sensitive]]
    logger.info(
        "dynamic_int8: keeping the %d most sensitive layers in float: %s",
        len(top), ", ".join(f"{n} ({e:.2e})" for n, e in ranking[: len(top)]),
    )  # fmt: skip
    return config.model_copy(update={"exclude": sorted({*config.exclude, *top})})
