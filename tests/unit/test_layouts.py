"""Model layouts: every layout-needing technique on a tiny trained model of each family.

Each family (BERT, DistilBERT, ViT, GPT-2, whose GPT-2 projections are transformers'
``Conv1D``) is a classifier trained for seconds on a synthetic task
(:func:`autoopt.testing.tiny_classifier`) with no workload hooks: what the techniques know
about it, they get from its layout.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from autoopt import plugins
from autoopt.artifacts import OnnxArtifact, TorchArtifact
from autoopt.backends.onnxruntime import OnnxRuntimeConfig, fuse_transformer
from autoopt.errors import CandidateError
from autoopt.layouts import (
    Layout,
    LayoutFeatures,
    drop_blocks,
    expand_roles,
    find_layout,
    fusion_settings,
    is_linear,
    register_layout,
    unregister_layout,
)
from autoopt.onnx_export import export_onnx
from autoopt.techniques.quantization import onnx_layer_path, sensitivity_ranking
from autoopt.testing import make_context, tiny_classifier
from autoopt.testing._families import FAMILIES
from autoopt.workloads import Workload, predict_torch

#: Where each family's blocks are, in the tiny classifiers (the workload wraps the Hugging
#: Face model as ``model``), and how many linear layers the whole model has.
BLOCKS = {
    "bert": ("bert", "model.bert.encoder.layer"),
    "distilbert": ("distilbert", "model.distilbert.transformer.layer"),
    "vit": ("vit", "model.vit.layers"),
    "gpt2": ("gpt2", "model.transformer.h"),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Tiny models: a second intra-op thread gains nothing, and on a loaded 2-core host its
    # spin-waiting makes training many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest, _one_thread: None) -> tuple[str, Workload]:
    return request.param, tiny_classifier(request.param)


def _accuracy(w: Workload, model: nn.Module) -> float:
    out = predict_torch(model, w.evaluation, 64)
    return float(np.mean(out.argmax(-1) == w.evaluation.targets))


def _apply(w: Workload, tmp: Path, key: str, config: dict[str, Any], source: Any = None, **kw):
    tech = plugins.get_technique(key)()
    ctx = make_context(w, tmp, key, config, **kw)
    assert tech.check(tech.Config(**config), ctx) is None
    return tech.apply(source or TorchArtifact(w.model), tech.Config(**config), ctx)


def _check(w: Workload, tmp: Path, key: str, config: dict[str, Any], **kw) -> str | None:
    tech = plugins.get_technique(key)()
    return tech.check(tech.Config(**config), make_context(w, tmp, key, config, **kw))


def _fusion_check(w: Workload, tmp: Path) -> str | None:
    """ONNX Runtime's refusal of transformer fusions for ``w``'s model, or None."""
    config = {"transformer_fusions": True}
    ctx = make_context(w, tmp, "precision.fp32", backend="backend.onnxruntime",
                       backend_config=config)  # fmt: skip
    return plugins.get_backend("backend.onnxruntime")().check(OnnxRuntimeConfig(**config), ctx)


def _linear_paths(model: nn.Module) -> set[str]:
    return {name for name, m in model.named_modules() if is_linear(m)}


def _role_paths(w: Workload, role: str) -> set[str]:
    """The module paths of ``role`` in every block of ``w``'s model."""
    found = find_layout(w.model)
    assert found is not None
    paths = found.layout.role_paths(role)  # type: ignore[arg-type]
    return {f"{found.blocks_path}.{i}.{p}" for i in range(len(found.blocks())) for p in paths}


# ---------------------------------------------------------------------------------------------
# Finding layouts


def test_layout_is_found_through_the_wrapper_for_each_family(family) -> None:
    name, w = family
    found = find_layout(w.model)
    assert found is not None
    assert (found.layout.name, found.blocks_path) == BLOCKS[name]
    blocks = found.blocks()
    assert len(blocks) == 2
    assert [(found.heads(b), found.head_size(b)) for b in blocks] == [(4, 8), (4, 8)]
    assert found.hidden_size() == 32
    kinds = {type(b.get_submodule(p)).__name__ for b in blocks for p in found.layout.all_paths()}
    # GPT-2's projections are transformers' Conv1D, which every technique counts as linear.
    assert kinds == ({"Conv1D"} if name == "gpt2" else {"Linear"})


@pytest.mark.parametrize(
    ("model_type", "layout"),
    [
        ("bert", "bert"),
        ("roberta", "bert"),
        ("xlm-roberta", "bert"),
        ("camembert", "bert"),
        ("electra", "bert"),
        ("mpnet", "mpnet"),
        ("distilbert", "distilbert"),
        ("vit", "vit"),
        ("deit", "vit"),
        ("gpt2", "gpt2"),
    ],
)
def test_layout_is_found_from_the_config_model_type(model_type: str, layout: str) -> None:
    import transformers as hf

    config = hf.AutoConfig.for_model(
        model_type, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, vocab_size=64, embedding_size=32, image_size=16, patch_size=4,
    )  # fmt: skip
    model = hf.AutoModel.from_config(config)
    found = find_layout(model)
    assert found is not None and found.layout.name == layout and found.path == ""
    assert len(found.blocks()) == 2 and found.heads(found.blocks()[0]) == 4


# ---------------------------------------------------------------------------------------------
# Distillation


def test_kd_builds_and_trains_a_layer_dropped_student_from_the_layout(family, tmp_path) -> None:
    name, w = family
    found = find_layout(w.model)
    assert found is not None and w.make_student is None
    student = drop_blocks(found, [1])
    kept = find_layout(student)
    assert kept is not None and len(kept.blocks()) == 1
    assert student.teacher_layers == [1] and len(found.blocks()) == 2  # the teacher is intact
    assert kept.backbone.config.num_hidden_layers == 1
    # The kept block is the teacher's block 1, now block 0; everything else is copied too.
    prefix, teacher_sd = found.blocks_path, w.model.state_dict()
    for key, value in student.state_dict().items():
        source = key.replace(f"{prefix}.0.", f"{prefix}.1.")
        assert torch.equal(value, teacher_sd[source]), key
    # Its states stand for the teacher's block 1; the teacher's for themselves.
    hooks = LayoutFeatures.for_inputs(w.input_names)
    batch = tuple(torch.from_numpy(x[:4]) for x in w.evaluation.inputs)
    with torch.inference_mode():
        *_, states, sources = hooks.layer_features(student, batch)
        *_, teacher_states, teacher_sources = hooks.layer_features(w.model, batch)
    assert (sources, teacher_sources, len(states), len(teacher_states)) == ([1], [0, 1], 1, 2)

    config = {"layers": 1, "steps": 60, "lr": 3e-3, "batch_size": 32, "feature_weight": 1.0}
    out = _apply(w, tmp_path, "distillation.kd", config).model
    trained = find_layout(out)
    assert trained is not None and len(trained.blocks()) == 1 and out.teacher_layers == [1]
    assert _accuracy(w, out) > 0.8


# ---------------------------------------------------------------------------------------------
# Pruning


def test_attention_ffn_pruning_removes_heads_and_neurons_and_runs(family, tmp_path) -> None:
    _, w = family
    before = {k: v.clone() for k, v in w.model.state_dict().items()}
    out = _apply(w, tmp_path, "pruning.attention_ffn", {"heads": 0.5, "ffn": 0.5}).model
    for k, v in w.model.state_dict().items():  # pure: the teacher is untouched
        assert torch.equal(v, before[k]), k
    found = find_layout(out)
    assert found is not None
    for block in found.blocks():
        assert (found.heads(block), found.head_size(block), found.qkv_width(block)) == (2, 8, 16)
        attention = found.attention(block)
        names = ("num_attention_heads", "num_heads", "n_heads")
        heads = [getattr(attention, a, None) for a in names]
        assert 2 in heads  # the head count the module reshapes by, where it keeps one
        ffn_in = block.get_submodule(found.layout.ffn_in)
        assert is_linear(ffn_in) and ffn_in.weight.numel() == 32 * 64
    removed = sum(p.numel() for p in w.model.parameters()) - sum(
        p.numel() for p in out.parameters()
    )
    # Per block: half of the q/k/v rows (+ biases) and attention-output columns, half of the
    # FFN's 128 neurons (in-rows, biases and out-columns).
    assert removed == 2 * (4 * 32 * 16 + 3 * 16 + 2 * 32 * 64 + 64)
    assert _accuracy(w, out) > 0.4  # runs, really pruned, not garbage
    # Exported, ONNX Runtime computes what PyTorch does with the narrower matmuls.
    from autoopt.backends.onnxruntime import OnnxRuntimeRunner

    graph = export_onnx(TorchArtifact(out), w, tmp_path / "pruned.onnx")
    split = w.evaluation.take(32)
    runner = OnnxRuntimeRunner(str(graph.path), "all", 1)
    np.testing.assert_allclose(runner.run(split.inputs), predict_torch(out, split), atol=1e-4)


def test_structured_pruning_removes_whole_heads_where_the_layout_gives_them(
    family, tmp_path
) -> None:
    name, w = family
    out = _apply(w, tmp_path, "pruning.structured", {"amount": 0.3}).model
    found = find_layout(out)
    assert found is not None
    for block in found.blocks():
        # torch-pruning removes ceil(0.3 * 4) whole heads of each block; a head keeps its size.
        # GPT-2's fused q/k/v layer keeps its heads (torch-pruning cannot split it).
        assert (found.heads(block), found.head_size(block)) == (4 if name == "gpt2" else 2, 8)
    assert found.hidden_size() < 32  # the hidden width shrank too
    assert predict_torch(out, w.evaluation.take(8)).shape == (8, 4 if w.name == "tiny_vit" else 2)


# ---------------------------------------------------------------------------------------------
# Quantization and fp8


def test_dynamic_int8_role_exclusions_keep_exactly_those_layers_float(family, tmp_path) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    _, w = family
    config = {"exclude": ["ffn_out"]}
    out = _apply(w, tmp_path, "quantization.dynamic_int8", config).model
    floats = {n for n, m in out.named_modules() if type(m) is nn.Linear}
    assert floats == _role_paths(w, "ffn_out")
    quantized = {n for n, m in out.named_modules() if isinstance(m, DynamicLinear)}
    assert quantized == _linear_paths(w.model) - floats
    assert _accuracy(w, out) >= _accuracy(w, w.model) - 0.05

    # On ONNX Runtime, the same role names the graph's nodes that stay float.
    graph = export_onnx(TorchArtifact(w.model), w, tmp_path / "teacher.onnx")
    onnx_out = _apply(w, tmp_path, "quantization.dynamic_int8", config, source=graph,
                      backend="backend.onnxruntime")  # fmt: skip
    nodes = onnx.load(str(onnx_out.path)).graph.node
    linear = _linear_paths(w.model)  # not the attention's own matrix products
    paths = {
        op: {onnx_layer_path(n.name) for n in nodes if n.op_type == op} & linear
        for op in ("MatMul", "Gemm", "MatMulInteger")
    }
    assert paths["MatMul"] | paths["Gemm"] == _role_paths(w, "ffn_out")
    assert paths["MatMulInteger"] == linear - _role_paths(w, "ffn_out")


def test_sensitivity_ranking_ranks_every_linear_layer_of_the_family(family, tmp_path) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    name, w = family
    key = "quantization.dynamic_int8"
    config = plugins.get_technique(key).Config(sensitivity_samples=16)
    ranking = sensitivity_ranking(w.model, config, make_context(w, tmp_path, key))
    assert {n for n, _ in ranking} == _linear_paths(w.model)
    if name == "gpt2":  # transformers' Conv1D: 4 per block, then the classifier
        assert len(ranking) == 2 * 4 + 1 and "model.transformer.h.0.attn.c_attn" in dict(ranking)
    assert not any(isinstance(m, DynamicLinear) for m in w.model.modules())  # put back


def test_pt2e_static_int8_captures_and_converts_the_family(family, tmp_path) -> None:
    from autoopt.torch_export import ExportedModule

    _, w = family
    config = {"per_channel": True, "exclude": ["attn_out"], "calibration_samples": 32}
    compile_on = {"backend": "backend.torch_compile", "backend_config": {"freezing": True}}
    out = _apply(w, tmp_path, "quantization.static_int8", config, **compile_on).model
    assert isinstance(out, ExportedModule)
    weights = [
        n for n in out.graph_module.graph.nodes if "dequantize_per_channel" in str(n.target)
    ]
    convs = sum(isinstance(m, nn.Conv2d) for m in w.model.modules())  # ViT's patch embedding
    assert len(weights) == len(_linear_paths(w.model)) - len(_role_paths(w, "attn_out")) + convs
    # The q/dq graph run eagerly computes in float what the int8 kernels will.
    assert _accuracy(w, out) >= _accuracy(w, w.model) - 0.05


def test_fp8_takes_conv1d_layers_and_role_exclusions() -> None:
    from autoopt.techniques._float8 import Float8Linear, eligible_linears, to_float8

    w = tiny_classifier("gpt2", steps=1)
    exclude = expand_roles(["ffn_out"], w.model)
    names = eligible_linears(w.model, exclude)
    # c_attn (32→96), attn.c_proj and mlp.c_fc of both blocks; not mlp.c_proj (excluded) nor
    # the 2-class score head (not a multiple of 16).
    kept = ("attn.c_attn", "attn.c_proj", "mlp.c_fc")
    assert sorted(names) == sorted(f"model.transformer.h.{i}.{p}" for i in range(2) for p in kept)
    model, converted = to_float8(w.model, exclude)
    assert converted == names
    assert all(isinstance(model.get_submodule(n), Float8Linear) for n in names)


# ---------------------------------------------------------------------------------------------
# ONNX Runtime's fusions


@pytest.mark.parametrize("name", ["bert", "distilbert"])
def test_onnxruntime_fuses_attention_with_the_layouts_settings(name, tmp_path) -> None:
    from autoopt.backends.onnxruntime import OnnxRuntimeRunner

    w = tiny_classifier(name, steps=20)  # type: ignore[arg-type]
    assert _fusion_check(w, tmp_path) is None
    graph = export_onnx(TorchArtifact(w.model), w, tmp_path / "m.onnx")
    fused = fuse_transformer(str(graph.path))  # no heads given: the layout's are recorded
    ops = [n.op_type for n in onnx.load(fused).graph.node]
    assert ops.count("Attention") == 2 and "SkipLayerNormalization" in ops
    split = w.evaluation.take(32)
    out = OnnxRuntimeRunner(fused, "all", 1).run(split.inputs)
    np.testing.assert_allclose(out, predict_torch(w.model, split), atol=1e-4)


def test_onnxruntime_fuses_a_head_pruned_model_with_its_pruned_head_count(tmp_path) -> None:
    w = tiny_classifier("distilbert", steps=20)
    pruned = _apply(w, tmp_path, "pruning.attention_ffn", {"heads": 0.5, "ffn": 0.25}).model
    settings = fusion_settings(pruned)
    assert not isinstance(settings, str) and (settings.num_heads, settings.hidden_size) == (2, 16)
    graph = export_onnx(TorchArtifact(pruned), w, tmp_path / "p.onnx")
    assert [n.op_type for n in onnx.load(fuse_transformer(str(graph.path))).graph.node].count(
        "Attention"
    ) == 2


@pytest.mark.parametrize("name", ["vit", "gpt2"])
def test_onnxruntime_fusions_are_refused_where_the_optimizer_fuses_no_attention(
    name, tmp_path
) -> None:
    w = tiny_classifier(name, steps=1)  # type: ignore[arg-type]
    reason = _fusion_check(w, tmp_path)
    assert reason is not None
    assert "matches no attention" in reason and "transformer_fusions: false" in reason


def test_onnxruntime_fusions_are_refused_for_attention_that_is_not_eager(tmp_path) -> None:
    import transformers as hf

    config = hf.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                           intermediate_size=64, attn_implementation="sdpa")  # fmt: skip
    reason = fusion_settings(hf.BertModel(config))
    assert isinstance(reason, str) and "attn_implementation='eager'" in reason


def test_a_distilbert_classifier_needs_no_glue_for_a_student_pruned_and_fused(tmp_path) -> None:
    """The issue's DistilBERT classifier, end to end through the pipeline and the stage cache:
    a layer-dropped student distilled with the token loss, heads and neurons pruned, exported
    and fused by ONNX Runtime, from a workload that gives a model, data and a metric only."""
    from autoopt import hardware
    from autoopt.cache import StageCache
    from autoopt.pipeline import build
    from autoopt.recipe import Recipe
    from autoopt.resolve import make_step

    w = tiny_classifier("distilbert")
    recipe = Recipe(
        distillation=make_step(
            "distillation.kd", {"layers": 1, "steps": 60, "feature_weight": 1.0}
        ),
        pruning=make_step("pruning.attention_ffn", {"heads": 0.5, "ffn": 0.5}),
        precision=make_step("precision.fp32"),
        backend=make_step("backend.onnxruntime", {"transformer_fusions": True}),
    )
    cache = StageCache(tmp_path / "cache")
    built = build(recipe, w, cache, hardware.current(), tmp_path)
    assert built.kind == "onnx"
    artifact = cache.lookup(built.key).load()  # type: ignore[union-attr]
    runner = plugins.get_backend("backend.onnxruntime")().compile(
        artifact, recipe.backend.config, 1
    )
    assert runner.describe()["op_counts"].get("Attention") == 1  # one block, 2 heads, fused
    out = runner.run(w.evaluation.inputs)
    assert float(np.mean(out.argmax(-1) == w.evaluation.targets)) > 0.75


# ---------------------------------------------------------------------------------------------
# Models without a layout, and user layouts


def test_model_without_layout_is_refused_with_how_to_add_one(
    workload: Workload, teacher_onnx: OnnxArtifact, tmp_path: Path
) -> None:
    import dataclasses

    how_to = "autoopt.layouts.register_layout"
    reason = _check(workload, tmp_path, "pruning.attention_ffn", {})
    assert reason and how_to in reason and "pruning.structured" in reason
    no_student = dataclasses.replace(workload, make_student=None)
    reason = _check(no_student, tmp_path, "distillation.kd", {})
    assert reason and how_to in reason and "make_student" in reason
    for key in ("quantization.dynamic_int8", "quantization.static_int8"):
        reason = _check(workload, tmp_path, key, {"exclude": ["ffn_out"]},
                        backend="backend.onnxruntime")  # fmt: skip
        assert reason and "'ffn_out' name layers by role" in reason and how_to in reason
    # Feature and layer losses are refused, not silently dropped, without hooks or layout.
    for field in ("feature_weight", "layer_weight"):
        reason = _check(workload, tmp_path, "distillation.kd", {field: 1.0})
        assert reason and f"{field} needs per-block hidden states" in reason
    reason = _check(workload, tmp_path, "distillation.kd", {"attention_weight": 1.0})
    assert reason and "attention_weight needs the model's query/key/value layers" in reason
    assert how_to in reason
    reason = _check(workload, tmp_path, "pruning.structured", {"recovery_feature_weight": 1.0})
    assert reason and how_to in reason
    with pytest.raises(CandidateError, match="records no model layout"):
        fuse_transformer(str(teacher_onnx.path))


class _Mixer(nn.Module):
    """A transformer block of its own: no Hugging Face names, its head count as ``h``."""

    def __init__(self, width: int, h: int) -> None:
        super().__init__()
        self.h = h
        self.wq, self.wk, self.wv, self.proj = (nn.Linear(width, width) for _ in range(4))
        self.up, self.down = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (
            m(x).view(b, t, self.h, -1).transpose(1, 2) for m in (self.wq, self.wk, self.wv)
        )
        att = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, -1) @ v
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, -1))
        return x + self.down(torch.relu(self.up(x)))


class _MyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 32)
        self.stack = nn.ModuleList(_Mixer(32, 4) for _ in range(3))
        self.head = nn.Linear(32, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for block in self.stack:
            x = block(x)
        return self.head(x.mean(1))


@pytest.fixture
def my_layout() -> Iterator[Layout]:
    layout = register_layout(Layout(
        name="my_encoder", model_classes=(_MyEncoder,), blocks="stack",
        attn_q="wq", attn_k="wk", attn_v="wv", attn_out="proj", ffn_in="up", ffn_out="down",
        head_size=8, set_heads=lambda block, heads, size: setattr(block, "h", heads),
    ))  # fmt: skip
    yield layout
    unregister_layout(layout.name)


def test_user_registered_layout_is_used_by_the_techniques(my_layout, tmp_path) -> None:
    from autoopt.workloads import Split, top1_accuracy

    torch.manual_seed(0)
    model = _MyEncoder().eval()
    ids = np.random.default_rng(0).integers(0, 16, (96, 8)).astype(np.int64)
    split = Split((ids,), (ids[:, 0] % 2).astype(np.int64))
    w = Workload(
        name="mine", model=model, train=split, calibration=split.take(32),
        evaluation=split.take(32), metric=top1_accuracy, input_names=("ids",),
    )  # fmt: skip
    found = find_layout(model)
    assert found is not None and found.layout is my_layout and found.blocks_path == "stack"
    pruned = _apply(w, tmp_path, "pruning.attention_ffn", {"heads": 0.5, "ffn": 0.5}).model
    assert [(b.h, b.wq.out_features, b.up.out_features) for b in pruned.stack] == [(2, 16, 32)] * 3
    assert predict_torch(pruned, w.evaluation).shape == (32, 2)
    student = _apply(w, tmp_path, "distillation.kd", {"layers": 2, "steps": 2}).model
    assert len(student.stack) == 2 and student.teacher_layers == [0, 2]
    reason = _check(w, tmp_path, "distillation.kd", {"keep": [0, 3]})
    assert reason and "'keep' must list distinct layer indices in 0..2" in reason
    int8 = _apply(w, tmp_path, "quantization.dynamic_int8", {"exclude": ["ffn_in", "attn_out"]})
    floats = {n for n, m in int8.model.named_modules() if type(m) is nn.Linear}
    assert floats == {f"stack.{i}.{p}" for i in range(3) for p in ("up", "proj")}

    unregister_layout(my_layout.name)
    assert find_layout(copy.deepcopy(model)) is None
