"""Quantization-aware training: fake quantization inserted and trained, int8 kernels after."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from autoopt import plugins
from autoopt.artifacts import OnnxArtifact, TorchArtifact
from autoopt.backends.openvino import OpenVinoRunner
from autoopt.backends.torch_compile import TorchCompileConfig
from autoopt.openvino_export import export_openvino
from autoopt.techniques.quantization import QatInt8Config
from autoopt.techniques.quantization._qat_graph import (
    QatModel,
    convert_qat,
    prepare_qat,
    train_qat,
)
from autoopt.techniques.quantization._qdq import qdq_onnx
from autoopt.testing import TechniqueTestSuite, make_context, predict
from autoopt.workloads import Split, Workload, top1_accuracy

FROZEN = {"freezing": True}
#: Short and quick: the digits CNN is far from the fine-tuning a real model needs.
QUICK = {"steps": 40, "lr": 1e-4, "batch_size": 64, "calibration_samples": 64}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fake_quantizers(module: nn.Module) -> int:
    from torchao.quantization.pt2e import FakeQuantizeBase

    return sum(isinstance(m, FakeQuantizeBase) for m in module.modules())


class TestQatInt8(TechniqueTestSuite):
    key = "quantization.qat_int8"
    config = QUICK
    backend = "backend.torch_compile"
    backend_config = FROZEN

    def test_lowered_model_runs_onednn_int8_conv_and_linear(
        self, built: Any, workload: Workload
    ) -> None:
        from torch._dynamo.utils import counters

        split = workload.evaluation
        teacher = predict(TorchArtifact(workload.model), split)
        teacher_accuracy = float(np.mean(teacher.argmax(-1) == split.targets))
        model = pickle.loads(pickle.dumps(built.output.model))  # as the stage cache moves it
        counters.clear()
        runner = plugins.get_backend("backend.torch_compile")().compile(
            TorchArtifact(model), TorchCompileConfig(freezing=True), 1
        )
        outputs = np.concatenate([runner.run(x) for x, _ in split.batches(256)])
        inductor = counters["inductor"]
        assert inductor["qconv_weight_prepack_matcher_count"] >= 2  # conv1, conv2
        assert inductor["qlinear_weight_prepack_matcher_count"] >= 2  # fc1, fc2
        assert float(np.mean(outputs.argmax(-1) == split.targets)) >= teacher_accuracy - 0.02


@pytest.fixture(scope="module")
def qat_trained(workload: Workload, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One QAT run, kept at each step: the teacher, the prepared graph (and its parameters
    before training), the trained graph and the converted program."""
    tmp = tmp_path_factory.mktemp("qat")
    config = QatInt8Config(**QUICK, exclude=["fc2"])
    ctx = make_context(
        workload, tmp, "quantization.qat_int8", config.model_dump(), backend="backend.openvino"
    )
    teacher = copy.deepcopy(workload.model)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    qat = prepare_qat(teacher, config, ctx, "qat")
    prepared = {k: v.detach().clone() for k, v in qat.graph.named_parameters()}
    fake_quantizers = _fake_quantizers(qat)
    train_qat(qat, config, ctx)
    trained = {k: v.detach().clone() for k, v in qat.graph.named_parameters()}
    program = convert_qat(qat, config, ctx, "qat")
    return {
        "ctx": ctx,
        "teacher": teacher,
        "teacher_before": before,
        "prepared": prepared,
        "trained": trained,
        "fake_quantizers": fake_quantizers,
        "qat": qat,
        "program": program,
        "tmp": tmp,
    }


def test_qat_inserts_fake_quantization_and_trains_the_weights(qat_trained: dict) -> None:
    # Inputs and weights of conv1, conv2, fc1 (fc2 excluded), plus the activations between.
    assert qat_trained["fake_quantizers"] >= 6
    prepared, trained = qat_trained["prepared"], qat_trained["trained"]
    assert prepared.keys() == trained.keys()
    moved = [k for k in prepared if not torch.equal(prepared[k], trained[k])]
    assert {"conv1.weight", "conv2.weight", "fc1.weight"} <= set(moved)
    # The teacher it started from is untouched: the graph trained copies of its weights.
    after = qat_trained["teacher"].state_dict()
    assert all(torch.equal(after[k], v) for k, v in qat_trained["teacher_before"].items())
    # Observers stopped halfway (freeze_observers 0.5), so the ranges are fixed now.
    enabled = [m.observer_enabled.item() for m in qat_trained["qat"].modules() if hasattr(
        m, "observer_enabled"
    )]  # fmt: skip
    assert enabled and not any(enabled)


def test_qat_program_holds_int8_weights_from_the_trained_ones(
    qat_trained: dict, workload: Workload
) -> None:
    graph = qat_trained["program"].graph_module.graph
    dequant = [n for n in graph.nodes if "dequantize_per_channel" in str(n.target)]
    assert len(dequant) == 3  # conv1, conv2, fc1; fc2 excluded
    module = qat_trained["program"].graph_module
    int8 = {
        name: t for name, t in [*module.named_buffers(), *module.named_parameters()]
        if t.dtype == torch.int8
    }  # fmt: skip
    assert len(int8) == 3
    # The trained fc1 weight, not the teacher's, is what was quantized: dequantized, it is
    # closer to the trained weight than to the teacher's.
    fc1 = max(int8.values(), key=lambda t: t.numel())
    trained = qat_trained["trained"]["fc1.weight"]
    teacher = workload.model.fc1.weight.detach()
    scale = trained.abs().amax(1, keepdim=True) / 127
    approx = fc1.float() * scale
    assert (approx - trained).abs().mean() < (approx - teacher).abs().mean()


def test_qat_qdq_graph_runs_int8_on_openvino(
    qat_trained: dict, workload: Workload, teacher_accuracy: float
) -> None:
    tmp: Path = qat_trained["tmp"]
    graph = qdq_onnx(qat_trained["program"], workload, tmp / "qat.onnx", "qat")
    model = onnx.load(str(graph.path))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    weights = [
        i for i in model.graph.initializer
        if i.data_type == onnx.TensorProto.INT8 and np.prod(i.dims) > 100
    ]  # fmt: skip
    assert len(weights) == 3  # conv1, conv2, fc1 (zero points aside)
    split = workload.evaluation
    ir = export_openvino(OnnxArtifact(graph.path), workload, tmp / "ov" / "model.xml")
    runner = OpenVinoRunner(ir, threads=1)
    outputs = np.concatenate([runner.run(x) for x, _ in split.batches(256)])
    # What OpenVINO runs is the converted program, int8 kernels and all.
    program = qat_trained["program"]
    with torch.no_grad():
        reference = np.concatenate(
            [program(torch.from_numpy(x[0])).numpy() for x, _ in split.batches(256)]
        )
    assert np.mean(outputs.argmax(-1) == reference.argmax(-1)) >= 0.99
    assert float(np.mean(outputs.argmax(-1) == split.targets)) >= teacher_accuracy - 0.02
    counts = runner.describe()["op_counts"]
    assert counts.get("Convolution:u8", 0) == 2 and counts.get("FullyConnected:u8", 0) == 1
    assert counts.get("FullyConnected:f32", 0) == 1  # fc2, excluded


def test_onnxruntime_does_not_run_the_qdq_graph_as_int8(qat_trained: dict) -> None:
    """Why QAT int8 refuses ONNX Runtime: with fc2 excluded, ONNX Runtime fuses conv1 and conv2
    into QLinearConv but leaves fc1 (whose output is not quantized again) a float Gemm."""
    tmp: Path = qat_trained["tmp"]
    graph = qdq_onnx(qat_trained["program"], qat_trained["ctx"].workload, tmp / "q.onnx", "qat")
    fused = _ort_fused_ops(graph.path, tmp / "optimized.onnx")
    assert fused.get("QLinearConv") == 2
    assert not fused.get("QGemm") and not fused.get("QLinearMatMul"), fused
    assert fused.get("DequantizeLinear", 0) >= 2, fused  # fc1's weight and input, then float


def _ort_fused_ops(path: Path, optimized: Path) -> dict[str, int]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops: dict[str, int] = {}
    for node in onnx.load(str(optimized)).graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return ops


def _bn_workload() -> Workload:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 36, 3),
    ).eval()  # fmt: skip
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        x = rng.normal(size=(n, 1, 6, 6)).astype(np.float32)
        return Split((x,), rng.integers(0, 3, size=n))

    return Workload(
        name="conv_bn", model=model, train=split(64), calibration=split(16),
        evaluation=split(16), metric=top1_accuracy,
    )  # fmt: skip


def test_qat_freezes_observers_and_batchnorm_on_schedule(tmp_path: Path) -> None:
    workload = _bn_workload()
    config = QatInt8Config(steps=4, freeze_observers=0.5, freeze_batchnorm=0.5)
    ctx = make_context(workload, tmp_path, "quantization.qat_int8", config.model_dump())
    qat = prepare_qat(workload.model, config, ctx, "qat")
    assert isinstance(qat, QatModel) and qat.observers_at == qat.batchnorm_at == 2
    (mean,) = [b for n, b in qat.graph.named_buffers() if n.endswith("running_mean")]
    after_calibration = mean.clone()
    assert qat.train() is qat
    x = torch.from_numpy(workload.train.inputs[0][:8])
    seen = []
    for _ in range(4):
        qat(x * (1 + len(seen)))  # batches whose statistics differ
        observing = [m.observer_enabled.item() for m in qat.modules() if hasattr(
            m, "observer_enabled"
        )]  # fmt: skip
        seen.append((mean.clone(), any(observing)))
    # Calibration ran in eval mode: the statistics first moved in training.
    assert torch.equal(after_calibration, workload.model[1].running_mean)
    assert not torch.equal(seen[0][0], after_calibration)
    assert not torch.equal(seen[1][0], seen[0][0])
    assert torch.equal(seen[2][0], seen[1][0]) and torch.equal(seen[3][0], seen[1][0])
    assert [observing for _, observing in seen] == [True, True, False, False]
    assert qat.eval() is qat and not qat.training


@pytest.mark.parametrize(
    ("backend", "backend_config", "expected"),
    [
        ("backend.torch_eager", {}, "freezing: true"),
        ("backend.torch_compile", {}, "freezing: true"),
        ("backend.torch_compile", FROZEN, None),
        ("backend.onnxruntime", {}, "does not run as int8 on ONNX Runtime"),
        ("backend.openvino", {}, None),
    ],
)
def test_qat_check_needs_int8_kernels(
    workload: Workload, tmp_path: Path, backend: str, backend_config: dict, expected: str | None
) -> None:
    ctx = make_context(
        workload, tmp_path, "quantization.qat_int8", backend=backend, backend_config=backend_config
    )
    technique = plugins.get_technique("quantization.qat_int8")()
    reason = technique.check(QatInt8Config(), ctx)  # type: ignore[arg-type]
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason
    per_tensor = technique.check(QatInt8Config(per_channel=False), ctx)  # type: ignore[arg-type]
    assert per_tensor is not None


class TestQatInt8TinyBertOnOpenVino(TechniqueTestSuite):
    """A transformer: the QDQ graph of a BERT runs every Linear as a u8 kernel on OpenVINO."""

    key = "quantization.qat_int8"
    config = {"steps": 10, "lr": 1e-5, "calibration_samples": 32}
    backend = "backend.openvino"
    workload_name = "autoopt.testing:tiny_bert"
    tolerance = 0.01

    def test_every_linear_runs_u8(self, built: Any, workload: Workload, tmp_path: Path) -> None:
        # The program, converted by the pipeline's OpenVINO export stage.
        ir = export_openvino(built.output, workload, tmp_path / "model.xml")
        counts = OpenVinoRunner(ir, threads=1).describe()["op_counts"]
        assert counts.get("FullyConnected:u8") == 12  # 6 Linears in each of 2 layers
        assert not counts.get("FullyConnected:f32")


def test_qat_trains_with_the_models_dropout_off(tmp_path: Path) -> None:
    # torchao's train/eval switch rewrites each dropout as p=0.5 in training mode, which took
    # MiniLM's fidelity to 0.95 after 300 steps; QAT keeps dropout off (an identity) instead.
    from autoopt.testing import tiny_bert

    workload = tiny_bert()
    config = QatInt8Config(steps=4, calibration_samples=8)
    ctx = make_context(workload, tmp_path, "quantization.qat_int8", config.model_dump())
    qat = prepare_qat(workload.model, config, ctx, "qat")
    dropouts = [
        n for n in qat.graph.graph.nodes if n.op == "call_function" and "dropout" in str(n.target)
    ]
    assert dropouts  # the BERT's dropouts are in the captured graph
    for mode in (True, False, True):
        qat.train(mode)
        flags = [n.args[2] for n in qat.graph.graph.nodes if "dropout" in str(n.target)]
        assert len(flags) == len(dropouts) and not any(flags)
