"""Layers named by role (``ffn_out``) in configs, and what ONNX Runtime's fusions need."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from torch import nn

from autoopt.errors import WorkloadError
from autoopt.layouts._layout import ROLES, Role
from autoopt.layouts._registry import find_layout, missing_layout_reason

if TYPE_CHECKING:
    import onnx


def expand_roles(names: Iterable[str], model: nn.Module) -> list[str]:
    """``names`` with each role name (``attn_q``, ``attn_k``, ``attn_v``, ``attn_qkv``,
    ``attn_out``, ``ffn_in``, ``ffn_out``) replaced by the module patterns of that role in
    ``model``'s layout (``ffn_out`` → ``bert.encoder.layer.*.output.dense``); other names are
    module patterns and stay. Raises WorkloadError for a role the model's layout cannot
    name, or any role in a model without a layout."""
    names = list(names)
    roles = [n for n in names if n in ROLES]
    if not roles:
        return names
    found = find_layout(model)
    if found is None:
        raise WorkloadError(
            f"{', '.join(repr(r) for r in roles)} name layers by role, which needs a model "
            f"layout: {missing_layout_reason(model)}; or name the layers by module path"
        )
    out: list[str] = []
    for name in names:
        if name in ROLES:
            out.extend(found.patterns(cast("Role", name)))
        else:
            out.append(name)
    return sorted(set(out))


# ---------------------------------------------------------------------------------------------
# ONNX Runtime's transformer fusions

#: Metadata keys an exported graph records its fusion settings under.
_TYPE_KEY = "autoopt.onnx_model_type"
_HEADS_KEY = "autoopt.num_heads"
_WIDTH_KEY = "autoopt.attention_hidden_size"


@dataclass(frozen=True)
class FusionSettings:
    """What ``onnxruntime.transformers.optimizer.optimize_model`` needs to fuse a graph."""

    model_type: str
    #: Heads per layer (0: the layers differ, ONNX Runtime detects them).
    num_heads: int
    #: Width of all heads together, ``num_heads * head_size`` (for a pruned model, the width
    #: after pruning, as ONNX Runtime asks).
    hidden_size: int


def fusion_settings(model: nn.Module) -> FusionSettings | str:
    """The fusion settings of ``model``, or why it has none."""
    found = find_layout(model)
    if found is None:
        return missing_layout_reason(model)
    layout = found.layout
    if layout.onnx_model_type is None:
        why = layout.no_fusion or f"layout '{layout.name}' names no onnx_model_type"
        return f"{why}; use transformer_fusions: false for {layout.name} models"
    implementation = getattr(getattr(found.backbone, "config", None), "_attn_implementation", None)
    if implementation not in (None, "eager"):
        return (
            f"the model's attention is the '{implementation}' implementation, whose exported "
            "graph ONNX Runtime's fusions do not match; load it with "
            "attn_implementation='eager'"
        )
    shapes = {(found.heads(b), found.qkv_width(b)) for b in found.blocks()}
    heads, width = shapes.pop() if len(shapes) == 1 else (0, 0)
    return FusionSettings(layout.onnx_model_type, heads, width)


def _props(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def record_fusion(model: onnx.ModelProto, settings: FusionSettings) -> None:
    """Writes ``settings`` into the graph's metadata (in place)."""
    import onnx

    values = {
        _TYPE_KEY: settings.model_type,
        _HEADS_KEY: str(settings.num_heads),
        _WIDTH_KEY: str(settings.hidden_size),
    }
    onnx.helper.set_model_props(model, {**_props(model), **values})


def recorded_fusion(model: onnx.ModelProto) -> FusionSettings | None:
    """The settings a graph was exported with, or None when its model had no layout."""
    props = _props(model)
    if _TYPE_KEY not in props:
        return None
    return FusionSettings(
        props[_TYPE_KEY], int(props.get(_HEADS_KEY, 0)), int(props.get(_WIDTH_KEY, 0))
    )
