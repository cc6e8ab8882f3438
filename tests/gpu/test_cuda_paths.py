"""The CUDA paths, on a real NVIDIA GPU: skipped where PyTorch sees none (CI has none).

Each builds through the same pipeline a sweep's build task runs (``device="cuda"``) and
serves through the backends' runners on the GPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autoopt import hardware, plugins
from autoopt.artifacts import TorchArtifact
from autoopt.cache import StageCache
from autoopt.config import LatencyConfig, VerifyConfig
from autoopt.measure import measure
from autoopt.pipeline import build
from autoopt.recipe import Recipe
from autoopt.resolve import make_step
from autoopt.techniques._float8 import Float8Linear, to_float8
from autoopt.techniques._training import train_against_teacher
from autoopt.workloads import Workload, predict_torch

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs an NVIDIA GPU that PyTorch can use"
)


def _recipe(precision: str = "precision.fp32", backend: str = "backend.torch_eager", **kw):
    return Recipe(
        precision=make_step(precision),
        backend=make_step(backend, kw.get("backend_config")),
        **{k: v for k, v in kw.items() if k != "backend_config"},
    )


def _build(recipe: Recipe, workload: Workload, tmp_path: Path) -> TorchArtifact:
    result = build(
        recipe,
        workload,
        StageCache(tmp_path / "cache"),
        hardware.current(),
        tmp_path,
        device="cuda",
    )
    artifact = StageCache(tmp_path / "cache").lookup(result.key).load()  # type: ignore[union-attr]
    assert isinstance(artifact, TorchArtifact)
    return artifact


def _runner(recipe: Recipe, artifact: TorchArtifact):
    cls = plugins.get_backend(recipe.backend.key)
    return cls().compile(artifact, recipe.backend.config, 1, "cuda")


def _agreement(out: np.ndarray, digits: Workload) -> float:
    return float(
        np.mean(out.argmax(-1) == predict_torch(digits.model, digits.evaluation).argmax(-1))
    )


def test_eager_fp32_on_cuda_matches_the_cpu(digits: Workload) -> None:
    runner = _runner(_recipe(), TorchArtifact(digits.model))
    assert runner.describe()["device"] == "cuda" and runner.describe()["gpu"]
    cpu = predict_torch(digits.model, digits.evaluation)
    gpu = runner.run(digits.evaluation.inputs)
    # cuDNN convolutions may use TF32 tensor cores: close to the CPU, not bit-equal.
    assert np.allclose(cpu, gpu, rtol=1e-3, atol=1e-2), np.abs(cpu - gpu).max()
    assert next(digits.model.parameters()).device.type == "cpu"  # the teacher was not moved


@pytest.mark.parametrize(("key", "dtype"), [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_half_precisions_compute_in_their_dtype_on_the_gpu(
    digits: Workload, tmp_path: Path, key: str, dtype: torch.dtype
) -> None:
    recipe = _recipe(f"precision.{key}")
    runner = _runner(recipe, _build(recipe, digits, tmp_path))
    seen: list[tuple[torch.dtype, str]] = []
    runner.model.fc1.register_forward_hook(  # type: ignore[attr-defined]
        lambda m, i, o: seen.append((o.dtype, o.device.type))
    )
    out = runner.run(digits.evaluation.inputs)
    assert seen == [(dtype, "cuda")]
    assert _agreement(out, digits) > 0.97


def test_fp8_runs_scaled_mm_on_the_gpu_and_stays_close(digits: Workload, tmp_path: Path) -> None:
    recipe = _recipe("precision.fp8")
    artifact = _build(recipe, digits, tmp_path)
    assert isinstance(artifact.model.fc1, Float8Linear)  # 512→64: aligned to 16
    assert type(artifact.model.fc2) is torch.nn.Linear  # 64→10: is not
    runner = _runner(recipe, artifact)
    assert _agreement(runner.run(digits.evaluation.inputs), digits) > 0.97

    torch.manual_seed(0)
    linear = torch.nn.Linear(1024, 4096).cuda()
    x = torch.randn(256, 1024, device="cuda")
    fp8, names = to_float8(torch.nn.Sequential(linear), exclude=[])
    with torch.inference_mode():
        want = linear(x)
        got = fp8(x.bfloat16()).float()
    assert names == ["0"] and fp8[0].weight.dtype == torch.float8_e4m3fn
    rel = float((got - want).norm() / want.norm())
    assert 0 < rel < 0.05, rel


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_torch_compile_on_cuda_matches_eager(digits: Workload, mode: str) -> None:
    recipe = _recipe(backend="backend.torch_compile", backend_config={"mode": mode})
    runner = _runner(recipe, TorchArtifact(digits.model))
    batch = digits.evaluation.take(64).inputs
    eager = _runner(_recipe(), TorchArtifact(digits.model)).run(batch)
    for _ in range(3):  # CUDA graphs are recorded on a warm-up call and replayed after
        out = runner.run(batch)
    assert np.allclose(out, eager, atol=1e-3)
    call = runner.timed(batch)
    for _ in range(3):
        call()


def test_training_runs_on_the_gpu_and_returns_a_cpu_model(digits: Workload) -> None:
    student = digits.make_student({"width": 0.5}) if digits.make_student else None
    assert student is not None
    before = [p.detach().clone() for p in student.parameters()]
    trained = train_against_teacher(
        student,
        digits,
        steps=30,
        lr=1e-3,
        batch_size=64,
        temperature=4.0,
        alpha=0.5,
        seed=0,
        device="cuda",
    )
    params = list(trained.parameters())
    assert {p.device.type for p in params} == {"cpu"}
    assert any(not torch.equal(a, b) for a, b in zip(before, params, strict=True))


def test_measure_on_cuda_times_the_gpu_and_records_its_memory(
    digits: Workload, tmp_path: Path
) -> None:
    recipe = _recipe("precision.fp16")
    m = measure(
        _build(recipe, digits, tmp_path),
        recipe,
        digits,
        LatencyConfig(batch_size=1, warmup=5, runs=20, extra_batch_sizes=[256]),
        VerifyConfig(),
        tmp_path,
        device="cuda",
    )
    assert m.runner["device"] == "cuda" and m.runner["dtype"] == "float16"
    assert m.metrics["gpu_peak_memory_mb"] > 0
    assert m.metrics["accuracy"] > 0.9
    assert m.metrics["latency_p50_ms"] > 0 and m.metrics["latency_p50_ms@b256"] > 0
    assert m.hardware["cuda_devices"]
