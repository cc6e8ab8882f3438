"""Model layouts: what an architecture looks like, in one place.

A :class:`Layout` says where a family's repeated blocks are, each block's query, key, value
and attention-output projections, its FFN input and output layers, how to find the head
size, how to record a pruned head count, and what ONNX Runtime's fusion optimizer calls the
family. Techniques ask the layout (:func:`find_layout`) and never spell a module name:

- ``pruning.attention_ffn`` slices heads and FFN neurons block by block
  (:func:`prune_block`); ``pruning.structured`` tells torch-pruning the heads
  (:func:`sync_heads` after);
- ``distillation.kd`` builds layer-dropped students (:func:`kept_blocks`,
  :func:`drop_blocks`) and reads per-block hidden states (:class:`LayoutFeatures`) when the
  workload has no hooks of its own;
- int8 and fp8 exclusions may name roles (``ffn_out``; :func:`expand_roles`);
- the ONNX export records :func:`fusion_settings`, which ONNX Runtime's fusions read.

Linear layers are ``nn.Linear`` and transformers' ``Conv1D`` (GPT-2) alike (:func:`is_linear`,
:func:`linear_copy`). Layouts are found from the Hugging Face ``config.model_type`` or the
class of any submodule (a wrapper is searched through). Bundled: ``bert`` (BERT, RoBERTa,
XLM-R, CamemBERT, ELECTRA, MiniLM), ``mpnet``, ``distilbert``, ``vit`` (ViT, DeiT), ``gpt2``.
Anything else is registered::

    from autoopt.layouts import Layout, register_layout

    register_layout(Layout(
        name="my_encoder", model_classes=(MyEncoder,), blocks="layers",
        attn_q="attn.q", attn_k="attn.k", attn_v="attn.v", attn_out="attn.proj",
        ffn_in="mlp.fc1", ffn_out="mlp.fc2", head_size=64,
    ))
"""

from autoopt.layouts._layout import ROLES, Layout, ModelLayout, Role, set_head_attributes
from autoopt.layouts._linear import (
    as_linear,
    is_linear,
    linear_copy,
    linear_shape,
    sliced,
    weight_out_in,
)
from autoopt.layouts._registry import (
    find_layout,
    known_layouts,
    layout_of,
    missing_layout_reason,
    register_layout,
    unregister_layout,
)
from autoopt.layouts._roles import (
    FusionSettings,
    expand_roles,
    fusion_settings,
    record_fusion,
    recorded_fusion,
)
from autoopt.layouts._slicing import head_channels, prune_block, qkv_segments, sync_heads
from autoopt.layouts._states import LayoutFeatures, block_states
from autoopt.layouts._students import TEACHER_BLOCKS, drop_blocks, kept_blocks

__all__ = [
    "ROLES",
    "TEACHER_BLOCKS",
    "FusionSettings",
    "Layout",
    "LayoutFeatures",
    "ModelLayout",
    "Role",
    "as_linear",
    "block_states",
    "drop_blocks",
    "expand_roles",
    "find_layout",
    "fusion_settings",
    "head_channels",
    "is_linear",
    "kept_blocks",
    "known_layouts",
    "layout_of",
    "linear_copy",
    "linear_shape",
    "missing_layout_reason",
    "prune_block",
    "qkv_segments",
    "record_fusion",
    "recorded_fusion",
    "register_layout",
    "set_head_attributes",
    "sliced",
    "sync_heads",
    "unregister_layout",
    "weight_out_in",
]
