"""The bundled layouts, written against the module names of ``transformers`` 5.

Each is checked against the model it is found in (:meth:`Layout.mismatch`): a release that
renames a module gets a refusal naming the missing path, not a wrong result.
"""

from __future__ import annotations

from autoopt.layouts._layout import Layout

#: BERT and the encoders built like it, module for module (RoBERTa, XLM-R, CamemBERT,
#: ELECTRA; all-MiniLM-L6-v2 is a BertModel).
BERT = Layout(
    name="bert",
    model_types=("bert", "roberta", "xlm-roberta", "camembert", "electra"),
    blocks="encoder.layer",
    attn_q="attention.self.query",
    attn_k="attention.self.key",
    attn_v="attention.self.value",
    attn_out="attention.output.dense",
    ffn_in="intermediate.dense",
    ffn_out="output.dense",
    onnx_model_type="bert",
)

MPNET = Layout(
    name="mpnet",
    model_types=("mpnet",),
    blocks="encoder.layer",
    attn_q="attention.attn.q",
    attn_k="attention.attn.k",
    attn_v="attention.attn.v",
    attn_out="attention.attn.o",
    ffn_in="intermediate.dense",
    ffn_out="output.dense",
    # Measured with onnxruntime 1.32: its BERT fusion finds no Attention in MPNet's graph,
    # whose scores add a relative position bias.
    no_fusion=(
        "ONNX Runtime's BERT fusion matches no attention in MPNet's graph (its scores add a "
        "relative position bias)"
    ),
    no_head_pruning=(
        "MPNet adds one relative position bias per head, shared by every layer "
        "(encoder.relative_attention_bias), so one layer's heads cannot be removed alone"
    ),
)

DISTILBERT = Layout(
    name="distilbert",
    model_types=("distilbert",),
    blocks="transformer.layer",
    attn_q="attention.q_lin",
    attn_k="attention.k_lin",
    attn_v="attention.v_lin",
    attn_out="attention.out_lin",
    ffn_in="ffn.lin1",
    ffn_out="ffn.lin2",
    # Its eager attention exports to the graph ONNX Runtime's BERT fusion matches (measured:
    # EmbedLayerNormalization, an Attention per layer, SkipLayerNormalization, BiasGelu).
    onnx_model_type="bert",
)

VIT = Layout(
    name="vit",
    model_types=("vit", "deit"),
    blocks="layers",
    attn_q="attention.q_proj",
    attn_k="attention.k_proj",
    attn_v="attention.v_proj",
    attn_out="attention.o_proj",
    ffn_in="mlp.fc1",
    ffn_out="mlp.fc2",
    # Measured with onnxruntime 1.32 and transformers 5: model_type "vit" (and "bert") fuse
    # the LayerNorms and GELUs of this graph but no Attention (the softmax is followed by
    # casts its pattern does not allow).
    no_fusion=("ONNX Runtime's ViT fusion matches no attention in transformers 5's ViT graph"),
)

GPT2 = Layout(
    name="gpt2",
    model_types=("gpt2",),
    blocks="h",
    attn_qkv="attn.c_attn",
    attn_out="attn.c_proj",
    ffn_in="mlp.c_fc",
    ffn_out="mlp.c_proj",
    # Measured as for ViT: model_type "gpt2" fuses no Attention in transformers 5's graph
    # (its causal mask is built another way than the pattern expects).
    no_fusion=("ONNX Runtime's GPT-2 fusion matches no attention in transformers 5's GPT-2 graph"),
)

BUILTIN: tuple[Layout, ...] = (BERT, MPNET, DISTILBERT, VIT, GPT2)
