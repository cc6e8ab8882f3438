"""Techniques: every method passes the conformance suite, plus what each one must really do."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import autoopt.hardware
from autoopt import plugins
from autoopt.artifacts import Artifact, OnnxArtifact, TorchArtifact
from autoopt.errors import CandidateError
from autoopt.hardware import Hardware
from autoopt.techniques._objective import kd_loss
from autoopt.techniques._training import count_parameters
from autoopt.techniques.pruning import weight_sparsity
from autoopt.techniques.quantization import INTEGER_OPS, StaticInt8Config, onnx_layer_path
from autoopt.testing import TechniqueTestSuite, make_context, predict
from autoopt.workloads import Split, Workload, cosine_similarity


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    # The models here are tiny: a second intra-op thread gains nothing, and on a loaded 2-core
    # host its spin-waiting makes training ten times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _apply(
    workload: Workload,
    tmp_path: Path,
    key: str,
    config: dict[str, Any] | None = None,
    source: Any = None,
    **ctx_kwargs: Any,
) -> Any:
    ctx = make_context(workload, tmp_path, key, config, **ctx_kwargs)
    technique = plugins.get_technique(key)()
    source = source if source is not None else TorchArtifact(copy.deepcopy(workload.model))
    return technique.apply(source, technique.Config(**(config or {})), ctx)


def _check(
    workload: Workload,
    tmp_path: Path,
    key: str,
    config: dict[str, Any] | None = None,
    **ctx_kwargs: Any,
) -> str | None:
    ctx = make_context(workload, tmp_path, key, config, **ctx_kwargs)
    technique = plugins.get_technique(key)()
    return technique.check(technique.Config(**(config or {})), ctx)


def accuracy(artifact: Artifact, split: Split) -> float:
    return float(np.mean(predict(artifact, split).argmax(-1) == split.targets))


def _nodes_of_layer(path: Path, layer: str) -> list[onnx.NodeProto]:
    return [n for n in onnx.load(str(path)).graph.node if onnx_layer_path(n.name) == layer]


def test_registry_lists_every_technique_method() -> None:
    def builtin(family: str) -> list[str]:
        # Test plugins (tests/plugins) may be registered in the same process: leave them out.
        return [
            k.split(".", 1)[1]
            for k in plugins.method_keys(family)
            if plugins.get(k).__module__.startswith("autoopt.")
        ]

    assert builtin("distillation") == ["kd"]
    assert builtin("pruning") == ["attention_ffn", "structured", "unstructured"]
    assert sorted(builtin("quantization")) == [
        "codebook",
        "dynamic_int8",
        "nncf_accuracy_control",
        "nncf_int8",
        "nncf_weights",
        "qat_int8",
        "static_int8",
    ]
    assert builtin("precision") == ["bf16", "fp16", "fp32", "fp8"]


# ---------------------------------------------------------------------------------------------
# Distillation


class TestKnowledgeDistillation(TechniqueTestSuite):
    key = "distillation.kd"
    config = {"width": 0.5, "steps": 300}
    tolerance = 0.10

    def test_kd_student_is_smaller_and_accurate(self, built: Any, workload: Workload) -> None:
        assert count_parameters(built.output.model) < count_parameters(workload.model) / 2
        assert accuracy(built.output, workload.evaluation) >= 0.85


def test_kd_is_deterministic_given_the_seed(workload: Workload, tmp_path: Path) -> None:
    config = {"steps": 10}
    a, b = (_apply(workload, tmp_path, "distillation.kd", config) for _ in range(2))
    c = _apply(workload, tmp_path, "distillation.kd", config, seed=1)
    sa, sb, sc = (x.model.state_dict() for x in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_kd_check_refuses_workload_without_student(workload: Workload, tmp_path: Path) -> None:
    no_student = dataclasses.replace(workload, make_student=None)
    reason = _check(no_student, tmp_path, "distillation.kd")
    assert reason is not None and "make_student" in reason


def test_kd_loss_is_zero_when_student_matches_teacher_embeddings() -> None:
    t = torch.randn(8, 16)
    assert kd_loss(t.clone(), t, None, "embedding", 4.0, 0.7).item() == pytest.approx(0, abs=1e-6)
    s = torch.randn(8, 16, requires_grad=True)
    loss = kd_loss(s, t, None, "embedding", 4.0, 0.7)
    loss.backward()
    assert loss.item() > 0 and s.grad is not None


def test_kd_loss_uses_labels_only_with_alpha_below_one() -> None:
    s, t = torch.randn(8, 10), torch.randn(8, 10)
    labels = torch.randint(0, 10, (8,))
    soft = kd_loss(s, t, None, "logits", 4.0, 0.7)
    assert kd_loss(s, t, labels, "logits", 4.0, 1.0).item() == pytest.approx(soft.item())
    mixed = kd_loss(s, t, labels, "logits", 4.0, 0.7).item()
    hard = nn.functional.cross_entropy(s, labels).item()
    assert mixed == pytest.approx(0.7 * soft.item() + 0.3 * hard, rel=1e-5)


class _Embedder(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))


def test_kd_trains_an_embedding_student_towards_the_teacher(
    workload: Workload, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    teacher = _Embedder(128).eval()
    emb = dataclasses.replace(
        workload,
        name="digits_embedding",
        model=teacher,
        output_kind="embedding",
        train=Split(workload.train.inputs),
        make_student=lambda options: _Embedder(max(1, round(128 * options["width"]))),
    )
    student = _apply(emb, tmp_path, "distillation.kd", {"steps": 200, "width": 0.25})
    reference = teacher(torch.from_numpy(workload.evaluation.inputs[0])).detach().numpy()
    cos = cosine_similarity(reference, predict(student, workload.evaluation)).mean()
    assert cos > 0.95


# ---------------------------------------------------------------------------------------------
# Pruning


class TestUnstructuredPruning(TechniqueTestSuite):
    key = "pruning.unstructured"
    # With recovery: without it, what half the weights cost depends on the teacher, which
    # each CPU trains slightly differently (0.5-3.5 points over six seeds); with 100 steps the
    # drop stayed under 0.6 points for all six.
    config = {"amount": 0.5, "recovery_steps": 100}
    tolerance = 0.03


class TestStructuredPruning(TechniqueTestSuite):
    key = "pruning.structured"
    config = {"amount": 0.5, "recovery_steps": 150}
    tolerance = 0.03

    def test_structured_removes_channels_and_parameters(
        self, built: Any, workload: Workload
    ) -> None:
        model = built.output.model
        assert count_parameters(model) < 0.6 * count_parameters(workload.model)
        assert model.conv1.out_channels == 8 and model.conv2.out_channels == 16
        assert model.conv2.in_channels == 8 and model.fc1.out_features == 32
        # The classifier keeps its 10 outputs.
        assert model.fc2.out_features == 10


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_unstructured_sparsity_matches_the_amount(
    workload: Workload, tmp_path: Path, scope: str
) -> None:
    out = _apply(workload, tmp_path, "pruning.unstructured", {"amount": 0.6, "scope": scope})
    assert weight_sparsity(out.model) == pytest.approx(0.6, abs=0.02)
    assert not any(n.endswith(("_orig", "_mask")) for n in out.model.state_dict())
    if scope == "layer":
        for m in (out.model.conv1, out.model.conv2, out.model.fc1, out.model.fc2):
            assert float((m.weight == 0).float().mean()) == pytest.approx(0.6, abs=0.02)


def test_unstructured_recovery_keeps_sparsity_and_restores_accuracy(
    workload: Workload, tmp_path: Path
) -> None:
    plain = _apply(workload, tmp_path, "pruning.unstructured", {"amount": 0.8})
    recovered = _apply(
        workload, tmp_path, "pruning.unstructured", {"amount": 0.8, "recovery_steps": 100}
    )
    assert weight_sparsity(recovered.model) == pytest.approx(0.8, abs=0.02)
    # The same positions stay zero: recovery trains only the surviving weights.
    for name, m in recovered.model.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            assert torch.equal(m.weight == 0, plain.model.get_submodule(name).weight == 0)
    assert accuracy(recovered, workload.evaluation) > accuracy(plain, workload.evaluation)


class _ResidualNet(nn.Module):
    """Conv + BatchNorm + a residual add + global pooling: couplings torch-pruning must see."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.block = nn.Sequential(
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 16, 3, padding=1)
        )
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.relu(x + self.block(x))
        return self.head(x.mean((2, 3)))


def test_structured_prunes_a_residual_model_consistently(
    workload: Workload, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = _ResidualNet().eval()
    out = _apply(
        workload, tmp_path, "pruning.structured", {"amount": 0.5}, source=TorchArtifact(model)
    )
    pruned = out.model
    assert pruned.block[0].out_channels == 16 and pruned.head.out_features == 10
    # The residual couples stem, bn and the block's last conv: pruned together, to 8.
    assert pruned.stem.out_channels == pruned.bn.num_features == pruned.block[2].out_channels == 8
    x = torch.from_numpy(workload.example_inputs(3)[0])
    assert pruned(x).shape == (3, 10)


def test_pruning_never_reads_the_evaluation_split(workload: Workload, tmp_path: Path) -> None:
    blind = dataclasses.replace(workload, evaluation=_Forbidden())  # type: ignore[arg-type]
    for key in ("pruning.structured", "pruning.unstructured"):
        _apply(blind, tmp_path, key, {"amount": 0.3, "recovery_steps": 3})
    _apply(blind, tmp_path, "distillation.kd", {"steps": 3})


class _Forbidden:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the evaluation split was read ({name})")

    def __len__(self) -> int:
        raise AssertionError("the evaluation split was read (len)")


# ---------------------------------------------------------------------------------------------
# Quantization


class TestDynamicInt8Torch(TechniqueTestSuite):
    key = "quantization.dynamic_int8"
    config = {"exclude": ["fc2"]}

    def test_dynamic_int8_torch_replaces_linear_except_excluded(self, built: Any) -> None:
        model = built.output.model
        assert isinstance(model.fc1, torch.ao.nn.quantized.dynamic.Linear)
        assert type(model.fc2) is nn.Linear
        assert type(model.conv1) is nn.Conv2d


class TestDynamicInt8Onnx(TechniqueTestSuite):
    key = "quantization.dynamic_int8"
    config = {"exclude": ["fc2"], "per_channel": True}
    backend = "backend.onnxruntime"

    def test_dynamic_int8_onnx_has_integer_ops_except_excluded(self, built: Any) -> None:
        ops = {n.op_type for n in onnx.load(str(built.output.path)).graph.node}
        assert {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"} <= ops
        assert {n.op_type for n in _nodes_of_layer(built.output.path, "fc1")} >= {"MatMulInteger"}
        fc2 = {n.op_type for n in _nodes_of_layer(built.output.path, "fc2")}
        assert fc2 and not fc2 & INTEGER_OPS and fc2 & {"MatMul", "Gemm"}


def test_dynamic_int8_onnx_op_types_select_what_is_quantized(
    workload: Workload, tmp_path: Path, teacher_onnx: OnnxArtifact
) -> None:
    gemm_only = _apply(
        workload,
        tmp_path,
        "quantization.dynamic_int8",
        {"op_types": ["Gemm"]},
        source=teacher_onnx,
        backend="backend.onnxruntime",
    )
    ops = [n.op_type for n in onnx.load(str(gemm_only.path)).graph.node]
    assert "ConvInteger" not in ops and ops.count("Conv") == 2 and ops.count("MatMulInteger") == 2
    conv_only = _apply(
        workload,
        tmp_path,
        "quantization.dynamic_int8",
        {"op_types": ["Conv"]},
        source=teacher_onnx,
        backend="backend.onnxruntime",
    )
    ops = [n.op_type for n in onnx.load(str(conv_only.path)).graph.node]
    assert ops.count("ConvInteger") == 2 and "MatMulInteger" not in ops


@pytest.mark.parametrize("backend", ["backend.torch_eager", "backend.onnxruntime"])
def test_dynamic_int8_unknown_exclude_fails_the_candidate(
    workload: Workload, tmp_path: Path, teacher_onnx: OnnxArtifact, backend: str
) -> None:
    source = teacher_onnx if backend == "backend.onnxruntime" else None
    with pytest.raises(CandidateError, match=r"no layer named 'fc3'.*fc1"):
        _apply(
            workload,
            tmp_path,
            "quantization.dynamic_int8",
            {"exclude": ["fc3"]},
            source=source,
            backend=backend,
        )


def test_dynamic_int8_on_torch_model_with_onnx_backend_quantizes_onnx(
    workload: Workload, tmp_path: Path
) -> None:
    out = _apply(workload, tmp_path, "quantization.dynamic_int8", backend="backend.onnxruntime")
    assert isinstance(out, OnnxArtifact) and out.path.parent == tmp_path


def test_dynamic_int8_check_refuses_unsupported_torch_settings(
    workload: Workload, tmp_path: Path
) -> None:
    reason = _check(workload, tmp_path, "quantization.dynamic_int8", {"weight_type": "QUInt8"})
    assert reason is not None and "QInt8" in reason
    reason = _check(workload, tmp_path, "quantization.dynamic_int8", {"op_types": ["Conv"]})
    assert reason is not None and "onnxruntime" in reason
    assert (
        _check(
            workload,
            tmp_path,
            "quantization.dynamic_int8",
            {"weight_type": "QUInt8"},
            backend="backend.onnxruntime",
        )
        is None
    )


def test_quantization_config_is_canonical() -> None:
    cls = StaticInt8Config
    a = cls(exclude=["fc2", "fc1", "fc2"], op_types=["MatMul", "Conv"])
    assert a == cls(exclude=["fc1", "fc2"], op_types=["Conv", "MatMul"])
    with pytest.raises(ValueError):
        cls.model_validate({"op_types": ["Softmax"]})
    with pytest.raises(ValueError):
        cls.model_validate({"op_types": []})
    with pytest.raises(ValueError):
        cls.model_validate({"exclude": [".fc2"]})


class TestStaticInt8(TechniqueTestSuite):
    key = "quantization.static_int8"
    config = {"per_channel": True, "exclude": ["fc2"]}
    backend = "backend.onnxruntime"

    def test_static_int8_graph_is_qdq_with_int8_and_uint8(self, built: Any) -> None:
        model = onnx.load(str(built.output.path))
        inits = {i.name: i.data_type for i in model.graph.initializer}
        qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
        assert len(qdq) >= 8
        # Activations are quantized at run time (input not an initializer) to uint8, which is
        # fast on x86; weights are stored as int8 (biases as int32).
        activations = {
            inits[n.input[2]]
            for n in qdq
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits
        }
        assert activations == {onnx.TensorProto.UINT8}
        weights = {inits[n.input[0]] for n in qdq if n.input[0].endswith("weight_quantized")}
        assert weights == {onnx.TensorProto.INT8}

    def test_static_int8_exclude_keeps_the_layer_float(self, built: Any) -> None:
        model = onnx.load(str(built.output.path))
        producers = {o: n for n in model.graph.node for o in n.output}
        (fc2,) = [n for n in _nodes_of_layer(built.output.path, "fc2") if n.op_type == "Gemm"]
        # No input of the excluded Gemm (activation, weight, bias) comes out of a Dequantize.
        assert all(
            i not in producers or producers[i].op_type != "DequantizeLinear" for i in fc2.input
        )
        (fc1,) = [n for n in _nodes_of_layer(built.output.path, "fc1") if n.op_type == "Gemm"]
        assert all(producers[i].op_type == "DequantizeLinear" for i in fc1.input[:2])


class TestStaticInt8Pt2e(TechniqueTestSuite):
    key = "quantization.static_int8"
    config = {"per_channel": True, "exclude": ["fc2"]}
    backend = "backend.torch_compile"
    backend_config = {"freezing": True}


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_static_int8_calibration_methods_keep_accuracy(
    workload: Workload,
    tmp_path: Path,
    teacher_onnx: OnnxArtifact,
    teacher_accuracy: float,
    method: str,
) -> None:
    blind = dataclasses.replace(workload, evaluation=_Forbidden())  # type: ignore[arg-type]
    out = _apply(
        blind,
        tmp_path,
        "quantization.static_int8",
        {"calibration_method": method, "calibration_samples": 64},
        source=teacher_onnx,
        backend="backend.onnxruntime",
    )
    assert accuracy(out, workload.evaluation) >= teacher_accuracy - 0.02


FROZEN = {"backend": "backend.torch_compile", "backend_config": {"freezing": True}}


def test_static_int8_on_pytorch_needs_frozen_torch_compile(
    workload: Workload, tmp_path: Path
) -> None:
    key, pc = "quantization.static_int8", {"per_channel": True}
    for backend in ({}, {"backend": "backend.torch_compile"}):  # eager; compile, not frozen
        reason = _check(workload, tmp_path, key, pc, **backend)  # type: ignore[arg-type]
        assert reason is not None and "freezing: true" in reason
    assert _check(workload, tmp_path, key, pc, **FROZEN) is None  # type: ignore[arg-type]
    per_tensor = _check(workload, tmp_path, key, {}, **FROZEN)  # type: ignore[arg-type]
    assert per_tensor is not None and "per_channel: true" in per_tensor
    onnx_method = {**pc, "calibration_method": "percentile"}
    reason = _check(workload, tmp_path, key, onnx_method, **FROZEN)  # type: ignore[arg-type]
    assert reason is not None and "ONNX Runtime's" in reason
    reason = _check(
        workload, tmp_path, key, {"calibration_method": "histogram"}, backend="backend.onnxruntime"
    )
    assert reason is not None and "PyTorch's" in reason


@pytest.mark.parametrize("method", ["minmax", "histogram"])
def test_static_int8_on_pytorch_compiles_to_int8_conv_and_linear(
    workload: Workload, tmp_path: Path, teacher_accuracy: float, method: str
) -> None:
    import pickle

    from torch._dynamo.utils import counters

    from autoopt.backends.torch_compile import TorchCompileConfig

    config = {"per_channel": True, "exclude": ["fc2"], "calibration_method": method}
    out = _apply(workload, tmp_path, "quantization.static_int8", config, **FROZEN)  # type: ignore[arg-type]
    graph = out.model.graph_module.graph
    weights = [n for n in graph.nodes if "dequantize_per_channel" in str(n.target)]
    assert len(weights) == 3  # conv1, conv2, fc1; fc2 excluded
    model = pickle.loads(pickle.dumps(out.model))  # how the stage cache and Ray move it
    counters.clear()
    runner = plugins.get_backend("backend.torch_compile")().compile(
        TorchArtifact(model), TorchCompileConfig(freezing=True), 1
    )
    split = workload.evaluation
    filters = list(warnings.filters)
    outputs = np.concatenate([runner.run(x) for x, _ in split.batches(256)])
    assert warnings.filters == filters  # compiling silenced Inductor for its own calls only
    inductor = counters["inductor"]
    # Once per compiled batch shape (the last batch is smaller).
    assert inductor["qconv_weight_prepack_matcher_count"] >= 2
    assert inductor["qlinear_weight_prepack_matcher_count"] >= 1
    assert float(np.mean(outputs.argmax(-1) == split.targets)) >= teacher_accuracy - 0.02


@pytest.mark.parametrize("key", ["quantization.dynamic_int8", "quantization.static_int8"])
@pytest.mark.parametrize("precision", ["precision.fp16", "precision.bf16"])
def test_quantization_check_refuses_half_precision(
    workload: Workload, tmp_path: Path, key: str, precision: str
) -> None:
    reason = _check(workload, tmp_path, key, backend="backend.onnxruntime", precision=precision)
    assert reason is not None and precision.split(".")[1] in reason and "fp32" in reason


def test_onnx_layer_path_follows_the_exporters_scopes() -> None:
    assert onnx_layer_path("/fc2/Gemm") == "fc2"
    assert onnx_layer_path("/layers.0/layers.0.0/Gemm") == "layers.0.0"
    assert (
        onnx_layer_path("/encoder/layer.0/attention/self/query/MatMul")
        == "encoder.layer.0.attention.self.query"
    )
    assert onnx_layer_path("/MatMul") == "" and onnx_layer_path("") == ""


# ---------------------------------------------------------------------------------------------
# Precision


class TestFp32(TechniqueTestSuite):
    key = "precision.fp32"
    tolerance = 0.0

    def test_fp32_returns_its_input(self, built: Any) -> None:
        assert built.output is built.source


class TestFp16Torch(TechniqueTestSuite):
    key = "precision.fp16"

    def host_refusal(self, hardware: Hardware) -> str | None:
        return None if hardware.native_fp16 else "avx512_fp16"

    def test_fp16_torch_parameters_are_fp16(self, built: Any) -> None:
        assert {p.dtype for p in built.output.model.parameters()} == {torch.float16}


class TestBf16Torch(TechniqueTestSuite):
    key = "precision.bf16"

    def host_refusal(self, hardware: Hardware) -> str | None:
        return None if hardware.native_bf16 else "avx512_bf16"

    def test_bf16_torch_parameters_are_bf16(self, built: Any) -> None:
        assert {p.dtype for p in built.output.model.parameters()} == {torch.bfloat16}


class TestFp8(TechniqueTestSuite):
    """fp8 also runs (slowly) on the CPU, so the suite can apply it; a cpu target refuses it."""

    key = "precision.fp8"

    def host_refusal(self, hardware: Hardware) -> str | None:
        return "cuda target"


class TestFp16Onnx(TechniqueTestSuite):
    key = "precision.fp16"
    backend = "backend.onnxruntime"

    def test_fp16_onnx_keeps_float32_inputs_and_outputs(self, built: Any) -> None:
        model = onnx.load(str(built.output.path))
        io_types = {
            v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.output)
        }
        assert io_types == {onnx.TensorProto.FLOAT}
        weights = [i for i in model.graph.initializer if i.name.endswith("weight")]
        assert weights and {w.data_type for w in weights} == {onnx.TensorProto.FLOAT16}


@pytest.mark.parametrize(
    ("key", "flag"), [("precision.bf16", "avx512_bf16"), ("precision.fp16", "avx512_fp16")]
)
def test_half_precision_check_refuses_host_without_native_support(
    workload: Workload, tmp_path: Path, key: str, flag: str
) -> None:
    bare = dataclasses.replace(autoopt.hardware.current(), cpu_flags=(), cuda_devices=())
    reason = _check(workload, tmp_path, key, hardware=bare)
    assert reason is not None and flag in reason
    # A GPU in the host does not make the CPU's emulation fast: a cpu target still refuses.
    gpu = dataclasses.replace(bare, cuda_devices=("NVIDIA H100",))
    reason = _check(workload, tmp_path, key, hardware=gpu)
    assert reason is not None and flag in reason


def test_fp16_check_passes_on_a_cuda_target(workload: Workload, tmp_path: Path) -> None:
    bare = dataclasses.replace(autoopt.hardware.current(), cpu_flags=())
    assert _check(workload, tmp_path, "precision.fp16", hardware=bare, device="cuda") is None


def test_bf16_check_refuses_onnx_backend(workload: Workload, tmp_path: Path) -> None:
    reason = _check(workload, tmp_path, "precision.bf16", backend="backend.onnxruntime")
    assert reason is not None and "onnxruntime" in reason


def test_precision_configs_have_no_fields() -> None:
    for key in ("precision.fp32", "precision.fp16", "precision.bf16"):
        assert plugins.get(key).Config.model_fields == {}
