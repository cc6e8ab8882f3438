"""Transformer techniques on the real all-MiniLM-L6-v2: each changes the model the way it says.

Standard recipes' fidelity is checked against the values recorded on this machine (ONNX Runtime
dynamic int8 ~0.964; with the FFN down-projections in float ~0.995).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from autoopt import hardware, plugins
from autoopt.artifacts import TorchArtifact
from autoopt.backends.onnxruntime import OnnxRuntimeRunner
from autoopt.backends.torch_eager import TorchRunner
from autoopt.onnx_export import export_onnx
from autoopt.pipeline import make_context
from autoopt.plugins import Context
from autoopt.recipe import Recipe, Step
from autoopt.resolve import make_step
from autoopt.techniques.transformer_pruning import encoder_layers
from autoopt.workloads import Split, Workload, load_workload, predict_torch

FFN_OUT = "bert.encoder.layer.*.output.dense"


@pytest.fixture(scope="module")
def minilm() -> Workload:
    return load_workload("minilm", {"eval_size": 500, "train_size": 200, "calibration_size": 32})


@pytest.fixture(scope="module")
def check(minilm: Workload) -> tuple[Split, np.ndarray]:
    split = minilm.evaluation.take(96)
    return split, predict_torch(minilm.model, split, 32)


@pytest.fixture(scope="module")
def teacher_onnx(minilm: Workload, tmp_path_factory: pytest.TempPathFactory):
    return export_onnx(
        TorchArtifact(minilm.model), minilm, tmp_path_factory.mktemp("m") / "t.onnx"
    )


def _ctx(w: Workload, tmp: Path, backend: str = "onnxruntime", **steps: Step) -> Context:
    recipe = Recipe(
        precision=make_step("precision.fp32"), backend=make_step(f"backend.{backend}"), **steps
    )
    return make_context(recipe, w, hardware.current(), workdir=tmp)


def _fidelity(w: Workload, runner, check: tuple[Split, np.ndarray]) -> float:
    split, ref = check
    out = np.concatenate([runner.run(x) for x, _ in split.batches(32)])
    return w.metric(out, split, ref)["fidelity"]


def test_attention_ffn_pruning_slices_heads_and_neurons(minilm, check, tmp_path) -> None:
    step = make_step(
        "pruning.attention_ffn", {"heads": 0.25, "ffn": 0.5, "importance": "magnitude"}
    )
    tech = plugins.get_technique(step.key)()
    before = {k: v.clone() for k, v in minilm.model.state_dict().items()}
    out = tech.apply(
        TorchArtifact(minilm.model), step.config, _ctx(minilm, tmp_path, pruning=step)
    )
    for k, v in minilm.model.state_dict().items():  # pure: the teacher is untouched
        assert torch.equal(v, before[k]), k
    for layer in encoder_layers(out.model):
        sa = layer.attention.self
        assert sa.query.out_features == sa.key.out_features == sa.value.out_features == 9 * 32
        assert layer.attention.output.dense.in_features == 9 * 32
        assert layer.intermediate.dense.out_features == 768 == layer.output.dense.in_features
    n0 = sum(p.numel() for p in minilm.model.parameters())
    n1 = sum(p.numel() for p in out.model.parameters())
    assert n0 - n1 == 6 * (4 * 384 * 96 + 3 * 96 + 2 * 384 * 768 + 768)
    fidelity = _fidelity(minilm, TorchRunner(out.model, 1), check)
    assert 0.3 < fidelity < 0.98  # really pruned (not the teacher), not garbage
    # Exported, it still runs in ONNX Runtime with the narrower matmuls.
    graph = export_onnx(out, minilm, tmp_path / "p.onnx")
    assert (
        abs(_fidelity(minilm, OnnxRuntimeRunner(str(graph.path), "all", 1), check) - fidelity)
        < 1e-3
    )


def test_attention_ffn_pruning_is_refused_for_models_without_encoder_layers(
    digits, tmp_path
) -> None:
    step = make_step("pruning.attention_ffn")
    reason = plugins.get_technique(step.key)().check(
        step.config, _ctx(digits, tmp_path, pruning=step)
    )
    assert reason and "pruning.structured" in reason


def test_dynamic_int8_fidelity_matches_record_and_ffn_exclusion_restores_it(
    minilm, check, teacher_onnx, tmp_path
) -> None:
    tech = plugins.get_technique("quantization.dynamic_int8")()
    fidelities = {}
    for exclude in ([], [FFN_OUT]):
        step = make_step("quantization.dynamic_int8", {"exclude": exclude})
        out = tech.apply(teacher_onnx, step.config, _ctx(minilm, tmp_path, quantization=step))
        graph = onnx.load(str(out.path)).graph
        ops = {n.op_type for n in graph.node}
        assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
        float_ffn = [
            n.name
            for n in graph.node
            if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name
        ]
        assert len(float_ffn) == (6 if exclude else 0)
        fidelities[bool(exclude)] = _fidelity(
            minilm, OnnxRuntimeRunner(str(out.path), "all", 1), check
        )
    assert fidelities[False] == pytest.approx(0.964, abs=0.015)
    assert fidelities[True] == pytest.approx(0.995, abs=0.005)


def test_sensitivity_ranked_exclusions_keep_the_worst_layers_in_float(
    minilm, check, tmp_path
) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    from autoopt.techniques.quantization import sensitivity_ranking

    tech = plugins.get_technique("quantization.dynamic_int8")()
    base = {"per_channel": True, "sensitivity_samples": 16}
    ctx = _ctx(minilm, tmp_path, backend="torch_eager")
    ranking = sensitivity_ranking(
        minilm.model,
        make_step(tech.key, base).config,
        ctx,  # type: ignore[arg-type]
    )
    assert len(ranking) == 36  # 6 layers x (q, k, v, attention out, FFN in, FFN out)
    # Each Linear was swapped for its quantized copy and put back: the teacher is intact.
    assert not any(isinstance(m, DynamicLinear) for m in minilm.model.modules())
    errors = [e for _, e in ranking]
    assert errors == sorted(errors, reverse=True) and errors[0] > 10 * errors[-1]
    # Measured here: the FFN down-projections (fed by GELU outputs) are the worst.
    assert ranking[0][0].endswith(".output.dense") and ".attention." not in ranking[0][0]

    fidelities = {}
    for k in (0, 2):
        step = make_step(tech.key, {**base, "exclude_most_sensitive": k})
        model = tech.apply(
            TorchArtifact(minilm.model), step.config, _ctx(minilm, tmp_path, "torch_eager")
        ).model
        floats = [n for n, m in model.named_modules() if type(m) is torch.nn.Linear]
        assert sorted(floats) == sorted(name for name, _ in ranking[:k])
        assert sum(isinstance(m, DynamicLinear) for m in model.modules()) == 36 - k
        fidelities[k] = _fidelity(minilm, TorchRunner(model, 2), check)
    assert fidelities[2] > fidelities[0] + 0.005, fidelities

    # On ONNX Runtime the ranking (made on the PyTorch model before export) names the nodes
    # that stay float.
    step = make_step(tech.key, {**base, "exclude_most_sensitive": 1})
    out = tech.apply(TorchArtifact(minilm.model), step.config, _ctx(minilm, tmp_path))
    top = "/" + ranking[0][0].replace("bert.encoder.layer.", "encoder/layer.").replace(".", "/")
    graph = onnx.load(str(out.path), load_external_data=False).graph
    float_matmuls = [n.name for n in graph.node if n.op_type == "MatMul" and "/dense/" in n.name]
    assert len(float_matmuls) == 1 and top.replace("layer/", "layer.") in float_matmuls[0]


def test_bf16_really_runs_in_bf16_where_the_host_has_it(minilm, check, tmp_path) -> None:
    step = make_step("precision.bf16")
    ctx = _ctx(minilm, tmp_path, backend="torch_eager")
    reason = plugins.get_technique(step.key)().check(step.config, ctx)
    if not hardware.current().native_bf16:
        assert reason is not None and "avx512_bf16" in reason
        return
    assert reason is None
    out = plugins.get_technique(step.key)().apply(
        TorchArtifact(minilm.model), step.config, _ctx(minilm, tmp_path, backend="torch_eager")
    )
    assert {p.dtype for p in out.model.parameters()} == {torch.bfloat16}
    runner = TorchRunner(out.model, 1)
    assert runner.describe()["dtype"] == "bfloat16"
    seen = []
    hook = out.model.bert.encoder.layer[0].output.dense.register_forward_hook(
        lambda m, i, o: seen.append(o.dtype)
    )
    fidelity = _fidelity(minilm, runner, check)
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert 0.995 < fidelity < 1.0


def test_pt2e_static_int8_runs_int8_linears_through_inductor(minilm, check, tmp_path) -> None:
    import pickle

    from torch._dynamo.utils import counters

    from autoopt.backends.torch_compile import TorchCompileConfig
    from autoopt.torch_export import ExportedModule

    step = make_step("quantization.static_int8", {"exclude": [FFN_OUT], "per_channel": True})
    compile_step = make_step("backend.torch_compile", {"freezing": True})
    ctx = _ctx(minilm, tmp_path, backend="torch_compile", quantization=step)
    ctx.recipe = Recipe(precision=ctx.recipe.precision, backend=compile_step, quantization=step)
    tech = plugins.get_technique(step.key)()
    assert tech.check(step.config, ctx) is None
    out = tech.apply(TorchArtifact(minilm.model), step.config, ctx)
    assert isinstance(out.model, ExportedModule)
    graph = out.model.graph_module.graph
    weights = [n for n in graph.nodes if "dequantize_per_channel" in str(n.target)]
    assert len(weights) == 6 * 6 - 6  # every Linear of the 6 layers but the FFN outputs
    # Stored with int8 weights only (the float ones conversion replaced are dropped): 30 of
    # the 36 Linears' 10.6M weights take a byte instead of four.
    from autoopt.artifacts import artifact_size_bytes

    sizes = [artifact_size_bytes(a, tmp_path) for a in (TorchArtifact(minilm.model), out)]
    int8_weights = 6 * (4 * 384 * 384 + 384 * 1536)
    assert sizes[0] - sizes[1] > 0.9 * 3 * int8_weights, sizes

    # Through pickle (the stage cache and Ray), then compiled as the backend serves it.
    model = pickle.loads(pickle.dumps(out.model))
    counters.clear()
    runner = plugins.get_backend("backend.torch_compile")().compile(
        TorchArtifact(model), TorchCompileConfig(freezing=True), 1
    )
    fidelity = _fidelity(minilm, runner, check)
    assert counters["inductor"]["qlinear_weight_prepack_matcher_count"] >= len(weights)
    assert 0.985 < fidelity < 0.9999, fidelity  # int8 (not the float teacher), still faithful

    # Eager would run the q/dq graph in float: refused, as is compile without freezing.
    for backend in (make_step("backend.torch_eager"), make_step("backend.torch_compile")):
        ctx.recipe = Recipe(precision=ctx.recipe.precision, backend=backend, quantization=step)
        assert "freezing: true" in (tech.check(step.config, ctx) or "")
