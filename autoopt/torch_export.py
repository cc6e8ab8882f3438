"""``torch.export`` programs as modules: what static int8 on PyTorch builds and bundles load.

A module of its own, beside :mod:`autoopt.artifacts`, so that the technique that makes such a
program (:mod:`autoopt.techniques.quantization`), the backend that compiles it and the bundle
that loads it share it without importing each other.
"""

from __future__ import annotations

import io
from typing import Any

import torch

from autoopt.quiet import torchao_import


def register_inductor_passes() -> None:
    """Importing torchao's x86 quantizer registers Inductor's int8 fusion passes: needed
    before compiling a quantized graph in any process, including one that only loads it."""
    with torchao_import():
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401


class ExportedModule(torch.nn.Module):
    """A ``torch.export`` program as a module that pickles (through ``torch.export.save``).

    An exported graph module holds closures that ``pickle`` refuses, and the stage cache and
    Ray move models by pickling them.
    """

    def __init__(self, program: torch.export.ExportedProgram) -> None:
        super().__init__()
        self.program = program
        self.graph_module = program.module()

    def forward(self, *args: Any) -> Any:
        return self.graph_module(*args)

    def train(self, mode: bool = True) -> ExportedModule:
        # An exported graph is for inference and refuses train(); eval() is a no-op here.
        if mode:
            raise NotImplementedError("an exported (PT2E int8) model cannot be trained")
        self.training = False
        return self

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        buffer = io.BytesIO()
        torch.export.save(self.program, buffer)
        return _load_exported, (buffer.getvalue(),)


def _load_exported(data: bytes) -> ExportedModule:
    register_inductor_passes()
    return ExportedModule(torch.export.load(io.BytesIO(data))).eval()
