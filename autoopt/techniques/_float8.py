"""The fp8 Linear module (imports torch; :mod:`autoopt.techniques.float8` loads it lazily).

A module of its own so that a pickled fp8 model (the stage cache's ``torch.save``) finds the
class by name when it is loaded in another process.
"""

from __future__ import annotations

import copy

import torch

from autoopt.layouts import as_linear, is_linear, linear_shape
from autoopt.techniques._names import matches

#: The largest finite e4m3 value: scales map each row's absolute maximum onto it.
E4M3_MAX = 448.0
#: fp8 GEMMs need both the inner and the output dimension to be multiples of 16.
ALIGN = 16


def _to_e4m3(x: torch.Tensor) -> torch.Tensor:
    # The cast does not saturate: a value that rounds past the largest finite e4m3 becomes NaN.
    return x.clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


class Float8Linear(torch.nn.Module):
    """A Linear whose matrix product runs in e4m3 with row-wise scales, writing bf16."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        scale = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / E4M3_MAX
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = torch.nn.Parameter(_to_e4m3(w / scale), requires_grad=False)
        # (1, out): _scaled_mm takes the second operand's row-wise scales as a row.
        self.register_buffer("weight_scale", scale.t().contiguous())
        bias = linear.bias
        self.bias = (
            None
            if bias is None
            else torch.nn.Parameter(bias.detach().to(torch.bfloat16), requires_grad=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).float()
        x_scale = rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / E4M3_MAX
        x_fp8 = _to_e4m3(rows / x_scale)
        out = torch._scaled_mm(
            x_fp8,
            self.weight.t(),  # column-major, as the fp8 kernels want the second operand
            scale_a=x_scale,
            scale_b=self.weight_scale,
            out_dtype=torch.bfloat16,
        )
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, e4m3"


def eligible_linears(model: torch.nn.Module, exclude: list[str]) -> list[str]:
    """Paths of the linear layers (``nn.Linear``, GPT-2's Conv1D) fp8 takes: both dimensions
    multiples of 16, not excluded."""
    return [
        name
        for name, m in model.named_modules()
        if is_linear(m)
        and all(n % ALIGN == 0 for n in linear_shape(m))
        and not any(matches(name, e) for e in exclude)
    ]


def to_float8(model: torch.nn.Module, exclude: list[str]) -> tuple[torch.nn.Module, list[str]]:
    """A bf16 copy of ``model`` whose eligible Linears are fp8 (scales from the fp32 weights),
    and their paths. The input is not modified."""
    names = eligible_linears(model, exclude)
    out = copy.deepcopy(model).to(torch.bfloat16).eval()
    for name in names:
        out.set_submodule(name, Float8Linear(as_linear(model.get_submodule(name))))
    return out, names
