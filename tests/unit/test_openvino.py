"""OpenVINO: the backend runs at the precision it records, NNCF int8 really computes in
integers, exclusions stay float, and the pipeline exports and caches the IR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import autoopt.hardware
from autoopt import hardware
from autoopt.artifacts import OpenVinoArtifact, TorchArtifact
from autoopt.backends.openvino import OpenVinoBackend, OpenVinoRunner
from autoopt.cache import StageCache
from autoopt.errors import CandidateError
from autoopt.openvino_export import export_openvino
from autoopt.pipeline import build
from autoopt.recipe import Recipe
from autoopt.resolve import make_step
from autoopt.techniques._openvino import is_transformer, layer_path, read_model
from autoopt.techniques.nncf_quantization import (
    NncfAccuracyControl,
    NncfAccuracyControlConfig,
    NncfInt8Config,
    NncfInt8Quantization,
    fake_quantize_count,
    ignored_nodes,
)
from autoopt.techniques.precision import Bf16Precision, Fp16Precision
from autoopt.testing import TechniqueTestSuite
from autoopt.testing._build import make_context
from autoopt.workloads import Split, Workload, predict_torch

MATMULS = ("FullyConnected", "Convolution", "MatMul")


def _weighted_precisions(runner: OpenVinoRunner) -> set[str]:
    """Precisions the compiled model's matrix layers run at (``FullyConnected:u8`` → u8)."""
    counts = runner.describe()["op_counts"]
    return {k.split(":")[1] for k in counts if k.split(":")[0] in MATMULS}


def _runtime_layer_precisions(runner: OpenVinoRunner) -> dict[str, str]:
    """Module path → the precision the plugin runs its matrix layer at (the runtime layer's
    original node names carry the path: ``__module.fc2/aten::linear/Add``)."""
    compiled = next(iter(runner._compiled.values()))
    out = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) not in MATMULS:
            continue
        names = info["originalLayersNames"].astype(str).split(",")
        path = next(p for p in map(layer_path, names) if p)
        out[path] = info["runtimePrecision"].astype(str)
    return out


# ---------------------------------------------------------------------------------------------
# Export and backend


def test_export_names_tensors_and_keeps_float32_weights(teacher_openvino: OpenVinoArtifact):
    model = read_model(teacher_openvino)
    assert [p.get_any_name() for p in model.inputs] == ["image"]
    assert [p.get_any_name() for p in model.outputs] == ["logits"]
    assert teacher_openvino.inference_precision == "f32"
    kinds = {
        op.get_output_element_type(0).get_type_name()
        for op in model.get_ops()
        if op.get_type_name() == "Constant" and len(op.get_output_shape(0)) >= 2
    }
    assert kinds == {"f32"}  # save_model would compress them to f16 unless told not to
    assert {layer_path(op.get_friendly_name()) for op in model.get_ops()} >= {
        "conv1",
        "conv2",
        "fc1",
        "fc2",
    }


def test_backend_runs_f32_and_bf16_where_native_at_the_precision_it_records(
    workload: Workload, teacher_openvino: OpenVinoArtifact, tmp_path: Path
) -> None:
    split = workload.evaluation.take(64)
    reference = predict_torch(workload.model, split)
    f32 = OpenVinoRunner(teacher_openvino, threads=1)
    info = f32.describe()
    assert (info["inference_precision"], info["threads"], info["streams"]) == ("f32", 1, 1)
    assert _weighted_precisions(f32) == {"f32"}
    np.testing.assert_allclose(f32.run(split.inputs), reference, rtol=1e-4, atol=1e-4)

    ctx = make_context(workload, tmp_path, "precision.bf16", backend="backend.openvino")
    bf16 = Bf16Precision()
    reason = bf16.check(bf16.Config(), ctx)
    if not hardware.current().native_bf16:
        assert reason is not None and "avx512_bf16" in reason, reason
        return
    assert reason is None
    artifact = bf16.apply(teacher_openvino, bf16.Config(), ctx)
    assert isinstance(artifact, OpenVinoArtifact) and artifact.inference_precision == "bf16"
    assert teacher_openvino.inference_precision == "f32"  # the input is left as it was
    runner = OpenVinoRunner(artifact, threads=1)
    assert runner.describe()["inference_precision"] == "bf16"
    assert "bf16" in _weighted_precisions(runner)
    out = runner.run(split.inputs)
    assert not np.array_equal(out, f32.run(split.inputs))  # really computed in bf16
    assert np.mean(out.argmax(-1) == reference.argmax(-1)) >= 0.95


def test_backend_fails_the_candidate_when_the_plugin_runs_another_precision(
    workload: Workload, teacher_openvino: OpenVinoArtifact, tmp_path: Path
) -> None:
    ctx = make_context(workload, tmp_path, "precision.fp16", backend="backend.openvino")
    fp16 = Fp16Precision()
    reason = fp16.check(fp16.Config(), ctx)
    artifact = fp16.apply(teacher_openvino, fp16.Config(), ctx)
    assert artifact.inference_precision == "f16"
    if hardware.current().native_fp16:
        assert reason is None
        assert OpenVinoRunner(artifact, threads=1).describe()["inference_precision"] == "f16"
    else:
        # Without AVX-512 FP16 the plugin compiles f16 as something else (bf16 on this
        # AMD EPYC, f32 without bf16): the check refuses it, and the runner would not hide it.
        assert reason is not None and "avx512_fp16" in reason, reason
        with pytest.raises(CandidateError, match="recipe asked for f16"):
            OpenVinoRunner(artifact, threads=1)


def test_static_shapes_compile_per_shape_with_the_same_outputs(
    workload: Workload, teacher_openvino: OpenVinoArtifact
) -> None:
    dynamic = OpenVinoRunner(teacher_openvino, threads=1)
    static = OpenVinoRunner(teacher_openvino, threads=1, static_shapes=True)
    for n in (1, 5):
        x = workload.example_inputs(n)
        np.testing.assert_allclose(static.run(x), dynamic.run(x), rtol=1e-5, atol=1e-5)
    static.timed(workload.example_inputs(1))()
    assert static.describe()["compiled_shapes"] == [[[1, 1, 8, 8]], [[5, 1, 8, 8]]]


def test_backend_check_refuses_cuda_and_reports_a_missing_openvino(
    workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert OpenVinoBackend.unavailable_reason() is None
    ctx = make_context(
        workload, tmp_path, "precision.fp32", backend="backend.openvino", device="cuda"
    )
    reason = OpenVinoBackend().check(OpenVinoBackend.Config(), ctx)
    assert reason is not None and "CPU plugin only" in reason
    monkeypatch.setitem(__import__("sys").modules, "openvino", None)
    uncached = OpenVinoBackend.unavailable_reason.__func__.__wrapped__  # type: ignore[attr-defined]
    assert "openvino is not installed" in uncached(OpenVinoBackend)


# ---------------------------------------------------------------------------------------------
# NNCF int8


class TestNncfInt8(TechniqueTestSuite):
    key = "quantization.nncf_int8"
    backend = "backend.openvino"

    def test_nncf_graph_holds_fake_quantize_and_int8_weights(self, built: Any) -> None:
        model = read_model(built.output)
        assert fake_quantize_count(model) > 0
        int8 = [
            op
            for op in model.get_ops()
            if op.get_type_name() == "Constant"
            and op.get_output_element_type(0).get_type_name() == "i8"
        ]
        assert len(int8) == 4  # conv1, conv2, fc1, fc2
        assert model.get_rt_info(["nncf", "quantization", "model_type"]).astype(str) == "None"

    def test_nncf_runtime_runs_every_matrix_layer_in_int8(self, built: Any) -> None:
        assert _weighted_precisions(OpenVinoRunner(built.output, threads=1)) <= {"u8", "i8"}


class TestNncfInt8Excluding(TechniqueTestSuite):
    key = "quantization.nncf_int8"
    backend = "backend.openvino"
    config = {"exclude": ["fc2"], "preset": "mixed"}

    def test_excluded_layer_keeps_float_weights_and_runs_in_float(self, built: Any) -> None:
        model = read_model(built.output)
        fc2 = [
            op
            for op in model.get_ops()
            if op.get_type_name() == "MatMul" and layer_path(op.get_friendly_name()) == "fc2"
        ]
        # No FakeQuantize on its input, and its weight an f32 constant.
        assert len(fc2) == 1
        assert {v.get_node().get_type_name() for v in fc2[0].input_values()} == {
            "Constant",
            "Relu",
        }
        precisions = _runtime_layer_precisions(OpenVinoRunner(built.output, threads=1))
        assert precisions["fc2"] == "f32"
        assert {precisions[k] for k in ("conv1", "conv2", "fc1")} <= {"u8", "i8"}


class TestNncfAccuracyControl(TechniqueTestSuite):
    key = "quantization.nncf_accuracy_control"
    backend = "backend.openvino"
    config = {"validation_size": 64, "max_drop": 0.005}

    def test_a_bound_the_int8_model_meets_keeps_every_layer_int8(self, built: Any) -> None:
        # Top-1 accuracy on the validation slice barely moves under int8: nothing goes back.
        assert _weighted_precisions(OpenVinoRunner(built.output, threads=1)) <= {"u8", "i8"}


def _cosine_digits(workload: Workload) -> Workload:
    """Digits scored by the mean cosine of its logits to the float model's: a metric every
    int8 layer moves, so a tight bound has something to restore."""
    from dataclasses import replace

    from autoopt.selftest._probe import cosine_metric

    return replace(workload, metric=cosine_metric, metric_name="cosine")


def test_accuracy_control_returns_the_costliest_layers_to_float_until_within_the_bound(
    workload: Workload, teacher_openvino: OpenVinoArtifact, tmp_path: Path
) -> None:
    cosine = _cosine_digits(workload)
    split = cosine.train.take(64)
    teacher = OpenVinoRunner(teacher_openvino, threads=1).run(split.inputs)

    def build(config: dict[str, Any], name: str) -> tuple[OpenVinoArtifact, float]:
        ctx = make_context(
            cosine,
            tmp_path / name,
            "quantization.nncf_accuracy_control",
            config,
            backend="backend.openvino",
        )
        out = NncfAccuracyControl().apply(
            teacher_openvino, NncfAccuracyControlConfig(**config), ctx
        )
        got = OpenVinoRunner(out, threads=1).run(split.inputs)
        return out, cosine.metric(got, split, teacher)["cosine"]

    loose, loose_cosine = build({"validation_size": 64, "max_drop": 0.5}, "loose")
    tight, tight_cosine = build({"validation_size": 64, "max_drop": 1e-4}, "tight")
    # Loose: the plain int8 model, every layer quantized. Tight: the int8 model's drop on
    # this slice (about 3e-4 here) exceeds 1e-4, so layers went back to float (fc2 alone
    # brought it to 2e-5), and the validation slice is closer to the teacher.
    assert fake_quantize_count(read_model(loose)) > fake_quantize_count(read_model(tight))
    assert 1 - tight_cosine < 1 - loose_cosine
    assert "f32" in set(_runtime_layer_precisions(OpenVinoRunner(tight, threads=1)).values())


def test_nncf_unknown_exclusion_fails_naming_the_layers(
    workload: Workload, teacher_openvino: OpenVinoArtifact, tmp_path: Path
) -> None:
    config = NncfInt8Config(exclude=["fc3"])
    ctx = make_context(
        workload,
        tmp_path,
        "quantization.nncf_int8",
        config.model_dump(),
        backend="backend.openvino",
    )
    with pytest.raises(CandidateError, match="no layer named 'fc3'") as e:
        NncfInt8Quantization().apply(teacher_openvino, config, ctx)
    assert "conv1, conv2, fc1, fc2" in str(e.value)


@pytest.mark.parametrize(
    ("key", "backend", "expected"),
    [
        ("quantization.dynamic_int8", "backend.openvino", "quantization.nncf_int8"),
        ("quantization.static_int8", "backend.openvino", "quantization.nncf_int8"),
        ("quantization.nncf_int8", "backend.onnxruntime", "use backend openvino"),
        ("quantization.nncf_int8", "backend.torch_eager", "use backend openvino"),
    ],
)
def test_int8_methods_refuse_the_other_engines(
    workload: Workload, tmp_path: Path, key: str, backend: str, expected: str
) -> None:
    from autoopt import plugins

    ctx = make_context(workload, tmp_path, key, backend=backend)
    technique = plugins.get_technique(key)()
    reason = technique.check(technique.Config(), ctx)  # type: ignore[union-attr, call-arg]
    assert reason is not None and expected in reason, reason


def test_pipeline_exports_the_ir_once_and_caches_nncf(workload: Workload, tmp_path: Path):
    cache = StageCache(tmp_path / "cache")
    recipe = Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step("backend.openvino"),
        quantization=make_step("quantization.nncf_int8", {"subset_size": 64}),
    )
    first = build(recipe, workload, cache, autoopt.hardware.current(), tmp_path / "w")
    assert [(e.stage, e.hit) for e in first.events] == [
        ("export.openvino", False),
        ("quantization.nncf_int8", False),
    ]
    assert first.kind == "openvino"
    again = build(recipe, workload, cache, autoopt.hardware.current(), tmp_path / "w")
    assert [e.hit for e in again.events] == [True, True] and again.key == first.key


# ---------------------------------------------------------------------------------------------
# A transformer (a small random-initialised BERT)


@pytest.fixture(scope="module")
def tiny_bert() -> Workload:
    from transformers import BertConfig, BertModel

    from autoopt.workloads.minilm import SentenceEmbedder, fidelity

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        attn_implementation="eager",
    )
    model = SentenceEmbedder(BertModel(config, add_pooling_layer=False)).eval()
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        ids = rng.integers(1, 120, (n, 16)).astype(np.int64)
        return Split((ids, np.ones_like(ids)))

    return Workload(
        name="tiny-bert",
        model=model,
        train=split(8),
        calibration=split(48),
        evaluation=split(48),
        metric=fidelity,
        metric_name="fidelity",
        output_kind="embedding",
        input_names=("input_ids", "attention_mask"),
        output_names=("embedding",),
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "embedding": {0: "batch"},
        },
    )


def test_nncf_quantizes_a_transformer_as_one_and_maps_module_exclusions(
    tiny_bert: Workload, teacher_openvino: OpenVinoArtifact, tmp_path: Path
) -> None:
    source = export_openvino(TorchArtifact(tiny_bert.model), tiny_bert, tmp_path / "m.xml")
    assert is_transformer(read_model(source))
    assert not is_transformer(read_model(teacher_openvino))
    ffn_out = "bert.encoder.layer.*.output.dense"
    assert ignored_nodes(read_model(source), [ffn_out], "q") == [
        f"__module.bert.encoder.layer.{i}.output.dense/aten::linear/MatMul" for i in (0, 1)
    ]
    config = NncfInt8Config(exclude=[ffn_out])
    ctx = make_context(
        tiny_bert,
        tmp_path,
        "quantization.nncf_int8",
        config.model_dump(),
        backend="backend.openvino",
    )
    quantized = NncfInt8Quantization().apply(source, config, ctx)
    model = read_model(quantized)
    assert model.get_rt_info(["nncf", "quantization", "model_type"]).astype(str) == "transformer"
    assert fake_quantize_count(model) > 0
    runner = OpenVinoRunner(quantized, threads=1)
    precisions = _runtime_layer_precisions(runner)
    for i in (0, 1):
        assert precisions[f"bert.encoder.layer.{i}.output.dense"] == "f32"
        assert precisions[f"bert.encoder.layer.{i}.intermediate.dense"] in ("u8", "i8")
    split = tiny_bert.evaluation
    scores = tiny_bert.metric(
        runner.run(split.inputs), split, predict_torch(tiny_bert.model, split)
    )
    assert scores["fidelity"] >= 0.98, scores
