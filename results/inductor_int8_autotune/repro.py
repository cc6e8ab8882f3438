"""Minimal reproduction: wrong results from Inductor (freezing + max-autotune) on a PT2E
int8 graph when the CPP GEMM template is chosen for a quantized Linear with an in-place
residual add (qlinear_pointwise.binary, binary_attr="sum").

The template's output is given a NonOwningLayout that aliases the residual buffer x2.
When a following kernel (here a LayerNorm) takes over that alias in place, the wrapper's
memory planner still frees the original x2 buffer after its last direct use and hands
its storage to a new allocation (the next Linear's output) while the LayerNorm output
still lives there: two live tensors share one storage.

Depends only on torch and torchao. Usage:
    python repro.py            # the bug and its controls, M = 128 rows
    python repro.py --all      # also single-Linear variants (Linear, Linear+GELU, Linear+add)
    python repro.py --m 8192   # other row counts
Exits 1 when a variant that must match the eager q/dq graph does not (cosine < 0.99).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings

logging.getLogger("torchao").setLevel(logging.ERROR)
warnings.filterwarnings("ignore")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchao  # noqa: E402
import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq  # noqa: E402
from torch._inductor.utils import run_and_get_code  # noqa: E402
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e  # noqa: E402

D = 384  # all-MiniLM-L6-v2 hidden size


class ResidualChain(torch.nn.Module):
    """LN -> Linear + residual -> LN -> Linear -> softmax + residual (a BERT sub-block)."""

    def __init__(self, d: int = D) -> None:
        super().__init__()
        self.ln0 = torch.nn.LayerNorm(d)
        self.fc1 = torch.nn.Linear(d, d)
        self.ln1 = torch.nn.LayerNorm(d)
        self.fc2 = torch.nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln0(x)
        h = self.ln1(self.fc1(h) + h)  # int8 Linear with in-place ("sum") residual add
        return self.fc2(h).softmax(-1) + h  # fc2's output must be materialized


class Single(torch.nn.Module):
    """One Linear, optionally with GELU or an add of a second input (controls)."""

    def __init__(self, kind: str, k: int = D, n: int = 4 * D) -> None:
        super().__init__()
        self.kind = kind
        self.fc = torch.nn.Linear(k, n)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        o = self.fc(x)
        if self.kind == "gelu":
            o = F.gelu(o)
        if self.kind == "add":
            o = o + y
        return o


def quantize(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.nn.Module:
    gm = torch.export.export(model.eval(), inputs).module()
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(gm, quantizer)
    with torch.no_grad():
        for _ in range(3):
            prepared(*(torch.randn_like(t) for t in inputs))
    return convert_pt2e(prepared)


def run(name, model, inputs, mode, inductor_config):
    torch._dynamo.reset()
    torch.manual_seed(0)
    q = quantize(model, inputs)
    with torch.no_grad():
        ref = q(*inputs)  # eager q/dq graph: the reference
        with torch._inductor.config.patch({"freezing": True, **inductor_config}):
            out, codes = run_and_get_code(torch.compile(q, mode=mode), *inputs)
    code = "\n".join(codes)
    cos = F.cosine_similarity(ref.flatten().double(), out.flatten().double(), dim=0).item()
    kernels = []
    if "_mm512_dpbusd_epi32(vc[i]" in code:
        kernels.append("CPP-template/AVX512-VNNI")
    if "_tile_dpbusd" in code:
        kernels.append("CPP-template/AMX")
    if "qlinear_pointwise" in code:
        kernels.append("oneDNN qlinear_pointwise")
    aliases = code.count("# alias")
    return cos, kernels, aliases


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, default=128, help="rows (batch*seq)")
    ap.add_argument("--all", action="store_true", help="also the single-Linear controls")
    args = ap.parse_args()
    torch.set_num_threads(min(torch.get_num_threads(), os.cpu_count() or 1))
    print(f"torch {torch.__version__}, torchao {torchao.__version__}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}, threads {torch.get_num_threads()}")
    M = args.m
    torch.manual_seed(0)
    x = torch.randn(M, D)
    mat = "max-autotune-no-cudagraphs"
    cpp = {"max_autotune_gemm_backends": "CPP"}
    # (name, model factory, inputs, mode, extra inductor config, must_match)
    cases = [
        ("chain  default mode", lambda: ResidualChain(), (x,), "default", {}, True),
        ("chain  max-autotune backends=ATEN", lambda: ResidualChain(), (x,), mat, {"max_autotune_gemm_backends": "ATEN"}, True),
        ("chain  max-autotune backends=CPP   [BUG]", lambda: ResidualChain(), (x,), mat, cpp, True),
        ("chain  max-autotune backends=CPP inplace_buffers=False", lambda: ResidualChain(), (x,), mat, {**cpp, "inplace_buffers": False}, True),
        ("chain  max-autotune backends=CPP allow_buffer_reuse=False", lambda: ResidualChain(), (x,), mat, {**cpp, "allow_buffer_reuse": False}, True),
    ]
    if args.all:
        for kind, k, n in (("none", D, 4 * D), ("gelu", D, 4 * D), ("add", 4 * D, D), ("none", D, D)):
            ins = (torch.randn(M, k),) + ((torch.randn(M, n),) if kind == "add" else ())
            cases.append((f"Linear {k}x{n} +{kind} backends=CPP", (lambda kind=kind, k=k, n=n: Single(kind, k, n)), ins, mat, cpp, True))
    failed = []
    for name, factory, inputs, mode, cfg, must in cases:
        t = time.time()
        cos, kernels, aliases = run(name, factory(), inputs, mode, cfg)
        bad = must and cos < 0.99
        failed += [name] if bad else []
        print(f"{'FAIL' if bad else 'ok  '} M={M:<5d} {name:<58s} cos(compiled, eager q/dq)={cos:+.4f} "
              f"gemm={','.join(kernels) or '-'} alias_lines={aliases} ({time.time() - t:.0f}s)", flush=True)
    if failed:
        print(f"BUG REPRODUCED in {len(failed)} variant(s): {failed}")
        return 1
    print("no wrong results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
