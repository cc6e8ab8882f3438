"""Helpers for techniques that write ONNX graphs: scratch file names and the ONNX form."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from autoopt.artifacts import OnnxArtifact, TorchArtifact
from autoopt.errors import CandidateError

if TYPE_CHECKING:
    from autoopt.artifacts import Artifact
    from autoopt.plugins import Context


def scratch_path(ctx: Context, stem: str) -> Path:
    """A fresh ``.onnx`` file name under the workdir (stages may share one workdir)."""
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{stem}-", suffix=".onnx", dir=ctx.workdir)
    os.close(fd)
    return Path(name)


def as_onnx(artifact: Artifact, ctx: Context, stem: str) -> OnnxArtifact:
    """The artifact as ONNX.

    The pipeline exports before ONNX stages when the backend runs ONNX; exporting here as
    well keeps a stage that accepts both kinds correct if it is handed the PyTorch model.
    """
    if isinstance(artifact, OnnxArtifact):
        return artifact
    if not isinstance(artifact, TorchArtifact):
        raise CandidateError(
            f"{stem} works on ONNX graphs, and an OpenVINO IR is not one", stage=stem
        )
    from autoopt.onnx_export import export_onnx

    return export_onnx(artifact, ctx.workload, scratch_path(ctx, f"{stem}-input"))
