"""Dynamic int8 in PyTorch eager mode (``torch.ao``): whole models and single Linears."""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from autoopt.errors import CandidateError
from autoopt.techniques._names import covered
from autoopt.techniques.quantization._layers import require_known_modules

if TYPE_CHECKING:
    import torch

    from autoopt.techniques.quantization._config import DynamicInt8Config


@contextlib.contextmanager
def _torch_ao_quiet() -> Iterator[None]:
    # torch.ao.quantization is deprecated in favour of torchao, which is not a dependency;
    # the eager dynamic path still works and is what we measure.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantiz.*", category=UserWarning)
        yield


def _dynamic_qconfig(per_channel: bool) -> Any:
    with _torch_ao_quiet():
        from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    return per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig


def quantized_linear(module: torch.nn.Module, per_channel: bool) -> torch.nn.Module:
    """A dynamic int8 copy of one linear layer (``nn.Linear`` or Conv1D), as
    ``quantize_dynamic`` would make it."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    from autoopt.layouts import as_linear

    float_copy = copy.deepcopy(as_linear(module))
    float_copy.qconfig = _dynamic_qconfig(per_channel)
    with _torch_ao_quiet():
        return DynamicLinear.from_float(float_copy)


def torch_dynamic(
    model: torch.nn.Module,
    config: DynamicInt8Config,
    stage: str,
) -> torch.nn.Module:
    """``model`` with its Linears (those not excluded; GPT-2's Conv1D counts as one) in
    dynamic int8."""
    import torch
    from torch import nn

    from autoopt.layouts import linear_copy

    # A copy whose Conv1D layers are nn.Linear: the only layer PyTorch quantizes dynamically.
    model = linear_copy(model).eval()
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    require_known_modules(model, config.exclude, stage, linears)
    chosen = [n for n in linears if not covered(n, config.exclude)]
    if not chosen:
        raise CandidateError(
            f"{stage}: the model has no nn.Linear left to quantize after the exclusions "
            f"{config.exclude}; PyTorch dynamic quantization only covers nn.Linear",
            stage=stage,
        )
    with _torch_ao_quiet():
        from torch.ao.quantization import quantize_dynamic

        qconfig = _dynamic_qconfig(config.per_channel)
        # Naming each chosen Linear (rather than the nn.Linear type) is how exclusions stay float.
        quantized = quantize_dynamic(
            model,
            {name: qconfig for name in chosen},
            dtype=torch.qint8,
        )
    return quantized.eval()
