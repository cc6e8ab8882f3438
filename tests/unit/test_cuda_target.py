"""A cuda target on any host: what it asks Ray for, and what each step refuses and why.

The CUDA paths themselves run in tests/gpu (on a host with an NVIDIA GPU); here the refusals
and the fp8 arithmetic, which PyTorch also runs (slowly) on the CPU.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import autoopt.hardware
from autoopt import plugins
from autoopt.backends.torch_eager import TorchRunner, model_dtype
from autoopt.config import load_experiment
from autoopt.config._experiment import Target
from autoopt.errors import CandidateRejected, ConfigError
from autoopt.pipeline import check_recipe
from autoopt.recipe import Recipe
from autoopt.resolve import make_step
from autoopt.techniques._float8 import Float8Linear, to_float8
from autoopt.testing import make_context
from autoopt.workloads import Workload


def _check(workload: Workload, tmp_path: Path, key: str, **kwargs: object) -> str | None:
    ctx = make_context(workload, tmp_path, key, **kwargs)  # type: ignore[arg-type]
    technique = plugins.get_technique(key)()
    return technique.check(technique.Config(), ctx)


def _backend_check(workload: Workload, tmp_path: Path, backend: str, config: dict, device: str):
    ctx = make_context(workload, tmp_path, "precision.fp32", backend=backend, device=device)
    cls = plugins.get_backend(backend)
    return cls().check(cls.Config(**config), ctx)


def test_cuda_target_holds_one_gpu_per_task_unless_it_names_an_amount() -> None:
    assert Target(name="h100", device="cuda").task_resources == {"GPU": 1.0}
    assert Target(name="x", device="cuda", resources={"GPU": 0.5}).task_resources == {"GPU": 0.5}
    assert Target(name="c", resources={"pool": 1}).task_resources == {"pool": 1}


def test_unknown_device_is_a_one_line_error_naming_the_field(tmp_path: Path, repo: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "workload: digits_cnn\n"
        f"search_space: {repo / 'search_spaces/digits_cnn.yaml'}\n"
        "constraint: {max_drop: 0.01}\nbudget: {n_trials: 1}\n"
        "targets: [{name: tpu, device: tpu}]\n"
    )
    with pytest.raises(ConfigError) as e:
        load_experiment(exp)
    message = str(e.value)
    assert "\n" not in message and str(exp) in message
    assert "targets" in message and "device" in message and "'cuda'" in message


def test_cuda_target_on_a_host_without_cuda_is_refused_before_building(
    workload: Workload, tmp_path: Path
) -> None:
    no_gpu = dataclasses.replace(autoopt.hardware.current(), cuda_devices=())
    ctx = make_context(workload, tmp_path, "precision.fp16", hardware=no_gpu, device="cuda")
    with pytest.raises(CandidateRejected, match="no CUDA device"):
        check_recipe(ctx.recipe, ctx)


def test_fp8_is_refused_on_a_cpu_target_and_on_onnx(workload: Workload, tmp_path: Path) -> None:
    reason = _check(workload, tmp_path, "precision.fp8")
    assert reason is not None and "8.9" in reason and "cuda target" in reason
    onnx = _check(
        workload, tmp_path, "precision.fp8", backend="backend.onnxruntime", device="cuda"
    )
    assert onnx is not None and "torch_eager" in onnx


def test_int8_and_onnxruntime_are_refused_on_a_cuda_target(
    workload: Workload, tmp_path: Path
) -> None:
    ctx = make_context(workload, tmp_path, "quantization.dynamic_int8", device="cuda")
    technique = plugins.get_technique("quantization.dynamic_int8")()
    reason = technique.check(technique.Config(), ctx)
    assert reason is not None and "CPU" in reason and "fp8" in reason
    ort = _backend_check(workload, tmp_path, "backend.onnxruntime", {}, "cuda")
    assert ort is not None and "CPUExecutionProvider" in ort
    assert _backend_check(workload, tmp_path, "backend.onnxruntime", {}, "cpu") is None


def test_cuda_graph_modes_of_torch_compile_need_a_cuda_target(
    workload: Workload, tmp_path: Path
) -> None:
    for mode in ("reduce-overhead", "max-autotune"):
        reason = _backend_check(workload, tmp_path, "backend.torch_compile", {"mode": mode}, "cpu")
        assert reason is not None and "CUDA graphs" in reason
        ok = _backend_check(workload, tmp_path, "backend.torch_compile", {"mode": mode}, "cuda")
        assert ok is None
    default = _backend_check(workload, tmp_path, "backend.torch_compile", {}, "cpu")
    assert default is None


class _Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(64, 128)
        self.odd = nn.Linear(128, 10)  # 10 outputs: not a multiple of 16, stays bf16
        self.down = nn.Linear(128, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.up(x))
        return self.down(h) + self.odd(h).sum(-1, keepdim=True)


def test_fp8_converts_aligned_linears_to_e4m3_weights_and_stays_close() -> None:
    torch.manual_seed(0)
    model = _Mlp().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fp8, names = to_float8(model, exclude=["down"])
    assert names == ["up"]
    assert isinstance(fp8.up, Float8Linear) and fp8.up.weight.dtype == torch.float8_e4m3fn
    assert type(fp8.down) is nn.Linear and fp8.down.weight.dtype == torch.bfloat16
    assert type(fp8.odd) is nn.Linear
    assert model_dtype(fp8) == torch.bfloat16  # the fp8 weights are not what it computes in
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input intact
    x = torch.randn(32, 64)
    with torch.inference_mode():
        want = model(x)
        # Row-wise scaled fp8 products run on CUDA, and on the CPU from PyTorch 2.13.
        device = "cuda" if torch.cuda.is_available() else "cpu"
        got = fp8.to(device)(x.bfloat16().to(device)).float().cpu()
    rel = float((got - want).norm() / want.norm())
    assert 0 < rel < 0.05, rel  # e4m3 has a 3-bit mantissa: close, but not bf16-exact


def test_fp8_model_survives_the_stage_cache_round_trip(tmp_path: Path) -> None:
    """The cache pickles whole modules: a fresh process must find Float8Linear by name."""
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64)).eval()
    fp8, _ = to_float8(model, exclude=[])
    path = tmp_path / "model.pt"
    torch.save(fp8, path)
    code = (
        f"import torch; m = torch.load(r'{path}', weights_only=False);"
        "print(type(m[0]).__module__, m[0].weight.dtype)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["autoopt.techniques._float8", "torch.float8_e4m3fn"]


def test_torch_runner_reports_its_device(workload: Workload) -> None:
    runner = TorchRunner(workload.model, threads=1)
    assert runner.describe()["device"] == "cpu"
    assert runner.model is workload.model  # already on the device: served as it is
    inputs = workload.evaluation.take(4).inputs
    assert np.allclose(runner.run(inputs), runner.timed(inputs)().numpy())


def test_cuda_recipe_step_validation_knows_fp8() -> None:
    recipe = Recipe(precision=make_step("precision.fp8"), backend=make_step("backend.torch_eager"))
    assert recipe.precision.key == "precision.fp8" and "fp8" in recipe.describe()
