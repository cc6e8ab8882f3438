"""What a model layout says about an architecture, and that layout bound to one model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

from torch import nn

from autoopt.errors import WorkloadError
from autoopt.layouts._linear import is_linear, linear_shape

#: What a linear layer of a block does. ``attn_qkv`` is the query, key and value projections
#: together (three layers, or GPT-2's one fused layer).
Role = Literal["attn_q", "attn_k", "attn_v", "attn_qkv", "attn_out", "ffn_in", "ffn_out"]
ROLES: tuple[Role, ...] = get_args(Role)

#: Attribute names under which Hugging Face's attention modules keep their head count, and
#: the width of all heads together (GPT-2 splits its fused projection by ``split_size``).
_HEAD_COUNT_ATTRS = ("num_attention_heads", "num_heads", "n_heads", "n_head")
_HEADS_WIDTH_ATTRS = ("all_head_size", "split_size")
_HEAD_SIZE_ATTRS = ("head_dim", "attention_head_size", "head_size", "dim_per_head")

#: ``set_heads(attention, heads, head_size)``: records a new head count on an attention module.
SetHeads = Callable[[nn.Module, int, int], None]


def set_head_attributes(attention: nn.Module, heads: int, head_size: int) -> None:
    """The default ``set_heads``: updates whichever of Hugging Face's head-count and
    all-heads-width attributes the module has (its forward reshapes by them)."""
    for name in _HEAD_COUNT_ATTRS:
        if isinstance(getattr(attention, name, None), int):
            setattr(attention, name, heads)
    for name in _HEADS_WIDTH_ATTRS:
        if isinstance(getattr(attention, name, None), int):
            setattr(attention, name, heads * head_size)


@dataclass(frozen=True)
class Layout:
    """Where one architecture keeps its blocks and each block's linear layers.

    Paths are dotted module paths: ``blocks`` from the *backbone* (the module the layout
    describes, found by ``model_types`` or ``model_classes`` anywhere inside the workload's
    model), every role from a block. Give either ``attn_q``, ``attn_k`` and ``attn_v``, or
    one fused ``attn_qkv`` whose outputs are the queries, keys and values one after the other.
    """

    name: str
    #: The container (``nn.ModuleList``) of the repeated blocks, from the backbone.
    blocks: str
    attn_out: str
    ffn_in: str
    ffn_out: str
    attn_q: str | None = None
    attn_k: str | None = None
    attn_v: str | None = None
    attn_qkv: str | None = None
    #: Hugging Face ``config.model_type`` values of the backbones this layout describes.
    model_types: tuple[str, ...] = ()
    #: Or the backbone's classes (a model that is not a Hugging Face one).
    model_classes: tuple[type[nn.Module], ...] = ()
    #: Size of one attention head; None: read from the attention module (``head_dim``,
    #: ``attention_head_size``) or the backbone's config (``hidden_size / num_attention_heads``).
    head_size: int | None = None
    #: Records a pruned head count on the attention module (the parent of the q/k/v layers).
    set_heads: SetHeads = set_head_attributes
    #: ``model_type`` of ``onnxruntime.transformers.optimizer`` for the fusions; None: none fits.
    onnx_model_type: str | None = None
    #: Why there is no ``onnx_model_type`` (shown when fusions are asked for).
    no_fusion: str = ""
    #: Why heads cannot be removed one layer at a time ("" where they can).
    no_head_pruning: str = ""

    def __post_init__(self) -> None:
        where = f"layout '{self.name}'"
        if not self.name:
            raise WorkloadError("a layout needs a name")
        if not self.model_types and not self.model_classes:
            raise WorkloadError(f"{where}: give model_types or model_classes to find it by")
        separate = (self.attn_q, self.attn_k, self.attn_v)
        if self.attn_qkv is None and None in separate:
            raise WorkloadError(f"{where}: give attn_q, attn_k and attn_v, or attn_qkv")
        if self.attn_qkv is not None and any(separate):
            raise WorkloadError(f"{where}: give attn_q/attn_k/attn_v or attn_qkv, not both")
        for field in ("blocks", "attn_out", "ffn_in", "ffn_out"):
            if not getattr(self, field):
                raise WorkloadError(f"{where}: {field} must be a module path")

    @property
    def fused_qkv(self) -> bool:
        return self.attn_qkv is not None

    def qkv_paths(self) -> tuple[str, ...]:
        """The block's query, key and value layers: three, or the one fused layer."""
        if self.attn_qkv is not None:
            return (self.attn_qkv,)
        return tuple(p for p in (self.attn_q, self.attn_k, self.attn_v) if p is not None)

    def role_paths(self, role: Role) -> tuple[str, ...]:
        """The paths (from a block) of the layers playing ``role``. Raises WorkloadError for
        a single projection of a fused q/k/v layer, which is one layer for all three."""
        if role == "attn_qkv":
            return self.qkv_paths()
        if role in ("attn_q", "attn_k", "attn_v"):
            path = getattr(self, role)
            if path is None:
                raise WorkloadError(
                    f"layout '{self.name}' computes queries, keys and values in one layer "
                    f"({self.attn_qkv}), so '{role}' cannot be told apart; name 'attn_qkv'"
                )
            return (path,)
        return (getattr(self, role),)

    def all_paths(self) -> tuple[str, ...]:
        return (*self.qkv_paths(), self.attn_out, self.ffn_in, self.ffn_out)

    def describes(self, module: nn.Module) -> bool:
        """Whether ``module`` is of the kind this layout is for (its structure not checked)."""
        if self.model_classes and isinstance(module, self.model_classes):
            return True
        model_type = getattr(getattr(module, "config", None), "model_type", None)
        return isinstance(model_type, str) and model_type in self.model_types

    def mismatch(self, backbone: nn.Module) -> str | None:
        """What ``backbone`` lacks that this layout names, or None when it has it all."""
        try:
            blocks = backbone.get_submodule(self.blocks)
        except AttributeError:
            return f"no block container at '{self.blocks}'"
        if not isinstance(blocks, nn.ModuleList | nn.Sequential) or len(blocks) == 0:
            return f"'{self.blocks}' is {type(blocks).__name__}, not a list of blocks"
        for path in self.all_paths():
            try:
                layer = blocks[0].get_submodule(path)
            except AttributeError:
                return f"its blocks have no '{path}'"
            if not is_linear(layer):
                return f"'{path}' is a {type(layer).__name__}, not a linear layer"
        return None


@dataclass(frozen=True)
class ModelLayout:
    """A :class:`Layout` found in one model: where its backbone is, and what its blocks hold
    now (a layer-dropped or pruned copy has fewer blocks, heads or neurons)."""

    layout: Layout
    model: nn.Module
    #: The backbone's path in ``model`` ("" when the model is the backbone).
    path: str

    @property
    def backbone(self) -> nn.Module:
        return self.model.get_submodule(self.path) if self.path else self.model

    @property
    def blocks_path(self) -> str:
        return f"{self.path}.{self.layout.blocks}" if self.path else self.layout.blocks

    def blocks(self) -> list[nn.Module]:
        return list(self.model.get_submodule(self.blocks_path).children())

    def patterns(self, role: Role) -> list[str]:
        """Module patterns (``*`` = any block) of the layers playing ``role`` in every block:
        ``bert.encoder.layer.*.output.dense``. They hold in this model's students too."""
        return [f"{self.blocks_path}.*.{p}" for p in self.layout.role_paths(role)]

    def attention(self, block: nn.Module) -> nn.Module:
        """The module the q/k/v layers belong to, which keeps the head count."""
        parent = self.layout.qkv_paths()[0].rpartition(".")[0]
        return block.get_submodule(parent) if parent else block

    def head_size(self, block: nn.Module) -> int:
        if self.layout.head_size is not None:
            return self.layout.head_size
        attention = self.attention(block)
        for name in _HEAD_SIZE_ATTRS:
            value = getattr(attention, name, None)
            if isinstance(value, int) and value > 0:
                return value
        config = getattr(self.backbone, "config", None)
        heads = getattr(config, "num_attention_heads", None)
        hidden = getattr(config, "hidden_size", None)
        if isinstance(heads, int) and isinstance(hidden, int) and heads > 0:
            return int(getattr(config, "head_dim", None) or hidden // heads)
        raise WorkloadError(
            f"layout '{self.layout.name}': the head size of {type(attention).__name__} is "
            "unknown; give the layout head_size"
        )

    def qkv_width(self, block: nn.Module) -> int:
        """The width of all heads together (the queries' width)."""
        _, out = linear_shape(block.get_submodule(self.layout.qkv_paths()[0]))
        return out // 3 if self.layout.fused_qkv else out

    def heads(self, block: nn.Module) -> int:
        return self.qkv_width(block) // self.head_size(block)

    def hidden_size(self) -> int:
        """The width of the residual stream (the attention output's)."""
        _, out = linear_shape(self.blocks()[0].get_submodule(self.layout.attn_out))
        return out
