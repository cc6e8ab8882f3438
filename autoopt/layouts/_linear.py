"""Linear layers as every technique counts them: ``nn.Linear`` and transformers' ``Conv1D``.

GPT-2 computes each projection with transformers' ``Conv1D``: a Linear whose weight is stored
transposed, ``(in, out)``, and applied with ``addmm``. PyTorch's quantizers, fp8 and
torch-pruning know ``nn.Linear`` only, so they work on :func:`linear_copy`, where each Conv1D
is the ``nn.Linear`` that computes the same thing.
"""

from __future__ import annotations

import copy
import sys

import torch
from torch import nn


def _conv1d() -> type[nn.Module] | None:
    # A model holding a Conv1D has imported its module; without that import there is none
    # to find, and transformers (seconds to import) is not loaded for nothing.
    module = sys.modules.get("transformers.pytorch_utils")
    found = getattr(module, "Conv1D", None)
    return found if isinstance(found, type) else None


def is_conv1d(module: nn.Module) -> bool:
    conv1d = _conv1d()
    return conv1d is not None and isinstance(module, conv1d)


def is_linear(module: nn.Module) -> bool:
    """Whether ``module`` is a linear layer: ``nn.Linear`` or transformers' ``Conv1D``."""
    return isinstance(module, nn.Linear) or is_conv1d(module)


def linear_shape(module: nn.Module) -> tuple[int, int]:
    """``(in_features, out_features)`` of a linear layer."""
    weight = module.weight
    assert isinstance(weight, torch.Tensor)  # noqa: S101 - callers pass is_linear modules
    if is_conv1d(module):
        return int(weight.shape[0]), int(weight.shape[1])
    return int(weight.shape[1]), int(weight.shape[0])


def weight_out_in(module: nn.Module) -> torch.Tensor:
    """The weight as ``(out, in)`` whatever the layer stores (a view, not a copy)."""
    weight = module.weight
    assert isinstance(weight, torch.Tensor)  # noqa: S101 - callers pass is_linear modules
    return weight.t() if is_conv1d(module) else weight


def _bias(module: nn.Module) -> torch.Tensor | None:
    bias = getattr(module, "bias", None)
    return bias if isinstance(bias, torch.Tensor) else None


def as_linear(module: nn.Module) -> nn.Linear:
    """The ``nn.Linear`` equal to a linear layer (itself when it already is one)."""
    if isinstance(module, nn.Linear):
        return module
    return _linear(weight_out_in(module), _bias(module))


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    # Not an inference tensor even when the caller runs under inference_mode: the result may
    # be trained (recovery fine-tuning, a student).
    with torch.inference_mode(False), torch.no_grad():
        out = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        out = out.to(device=weight.device, dtype=weight.dtype)
        out.weight.copy_(weight)
        if bias is not None:
            assert out.bias is not None  # noqa: S101 - made with a bias just above
            out.bias.copy_(bias)
    return out


def sliced(
    module: nn.Module,
    outputs: torch.Tensor | None = None,
    inputs: torch.Tensor | None = None,
) -> nn.Module:
    """A copy of a linear layer keeping the ``outputs`` and ``inputs`` indices given (all of
    an axis when None); of the same class, so a Conv1D stays a Conv1D."""
    weight = weight_out_in(module).detach()
    bias = _bias(module)
    if outputs is not None:
        weight = weight[outputs]
        bias = None if bias is None else bias.detach()[outputs]
    if inputs is not None:
        weight = weight[:, inputs]
    linear = _linear(weight, None if bias is None else bias.detach())
    if not is_conv1d(module):
        return linear
    conv1d = _conv1d()
    assert conv1d is not None  # noqa: S101 - is_conv1d found the class
    # Conv1D(nf, nx) stores a (nx, nf) weight and always has a bias.
    with torch.inference_mode(False), torch.no_grad():
        out = conv1d(linear.out_features, linear.in_features)
        out = out.to(device=weight.device, dtype=weight.dtype)
        out_weight, out_bias = out.weight, out.bias
        assert isinstance(out_weight, torch.Tensor) and isinstance(out_bias, torch.Tensor)  # noqa: S101
        out_weight.copy_(linear.weight.t())
        out_bias.copy_(linear.bias if linear.bias is not None else torch.zeros_like(out_bias))
    return out


def linear_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in which every Conv1D is the equal ``nn.Linear`` (same path,
    same outputs); the input is not modified."""
    out = copy.deepcopy(model)
    for name, module in list(out.named_modules()):
        if name and is_conv1d(module):
            out.set_submodule(name, as_linear(module))
    return out
