"""A converted PT2E int8 program as an ONNX QDQ graph, for OpenVINO.

The dynamo ONNX exporter writes each ``quantize_per_tensor`` / ``dequantize_per_channel`` of
the program as QuantizeLinear / DequantizeLinear with the program's own scales and int8
weights, so the ranges QAT learned are the ones that run. OpenVINO's ONNX frontend reads them
as FakeQuantize, which its CPU plugin runs as u8 kernels (every Linear and Conv of the digits
CNN and of a BERT; the IR's outputs match the program's). OpenVINO's PyTorch frontend does
not convert the program itself: its int8 weight constants reach the Linear.

ONNX Runtime 1.32 does not run these graphs as int8: a BERT's graph fails to load (a name
defined twice), and on the digits CNN it fuses only the QDQ pairs whose output is quantized
again (QLinearConv, QGemm), leaving the last int8 Linear a float Gemm on dequantized weights
(the x86 quantizer quantizes inputs, not outputs). QAT int8 refuses it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autoopt.artifacts import OnnxArtifact
from autoopt.errors import failing_the_candidate
from autoopt.techniques.quantization._graph import require_integer_ops

if TYPE_CHECKING:
    from autoopt.torch_export import ExportedModule
    from autoopt.workloads import Workload

logger = logging.getLogger(__name__)


def qdq_onnx(model: ExportedModule, workload: Workload, path: Path, stage: str) -> OnnxArtifact:
    """Export ``model``'s program (batch axis dynamic, as it was captured) to ``path``."""
    import torch

    example = tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in workload.example_inputs(2))
    buffer = io.StringIO()
    what = f"{stage}: the int8 program does not export to ONNX QDQ"
    try:
        # The exporter prints its progress on stdout, which carries results in the CLI.
        with (
            failing_the_candidate(what, stage),
            contextlib.redirect_stdout(buffer),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model.program,
                example,
                input_names=list(workload.input_names),
                output_names=list(workload.output_names),
                dynamo=True,
                verbose=False,
            )
            assert program is not None  # noqa: S101 - dynamo=True returns the program
            program.save(str(path))
    finally:
        if buffer.getvalue().strip():
            logger.debug("torch.onnx: %s", buffer.getvalue().strip())
    require_integer_ops(path, stage)
    return OnnxArtifact(path)
