"""Layer exclusions named by role (``ffn_out``), resolved through the teacher's layout.

Roles become module patterns of the teacher's layout (``bert.encoder.layer.*.output.dense``),
which hold in its layer-dropped students and pruned copies too, and match ONNX nodes as
module names do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autoopt.errors import CandidateError, WorkloadError

if TYPE_CHECKING:
    from autoopt.plugins import Context


def exclusion_patterns(names: list[str], ctx: Context, stage: str) -> list[str]:
    """``names`` with their roles replaced by module patterns; raises CandidateError for a
    role the model cannot name."""
    from autoopt.layouts import expand_roles

    try:
        return expand_roles(names, ctx.workload.model)
    except WorkloadError as e:
        raise CandidateError(f"{stage}.exclude: {e}", stage=stage) from e


def exclusion_refusal(names: list[str], ctx: Context) -> str | None:
    """Why ``names`` cannot be resolved for this workload's model, or None."""
    try:
        exclusion_patterns(names, ctx, "exclude")
    except CandidateError as e:
        return str(e)
    return None
