"""SmoothQuant before PT2E int8: the same function in float, flatter inputs, better int8."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from autoopt import plugins
from autoopt.artifacts import TorchArtifact
from autoopt.backends.torch_compile import TorchCompileConfig
from autoopt.techniques.quantization import QatInt8Config, StaticInt8Config
from autoopt.techniques.quantization._smooth import (
    SmoothedLinear,
    input_ranges,
    smooth_on_calibration,
)
from autoopt.testing import make_context, predict
from autoopt.workloads import Split, Workload

FROZEN = {"freezing": True}
#: Static int8's and QAT's settings here: QAT's few steps at a small rate leave the ranges
#: its calibration set, which is what smoothing changes.
CONFIGS = {
    "quantization.static_int8": StaticInt8Config(per_channel=True, calibration_samples=64),
    "quantization.qat_int8": QatInt8Config(steps=4, lr=1e-6, calibration_samples=64),
}


class _Block(nn.Module):
    """Linear, LayerNorm, Linear: the LayerNorm's output (the second Linear's input) has one
    channel 40 times the others, as a trained transformer's hidden states do, which the
    second Linear's weights scale back."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.norm, self.down = nn.Linear(16, 64), nn.LayerNorm(64), nn.Linear(64, 16)
        with torch.no_grad():
            self.norm.weight[3] = 40.0
            self.down.weight[:, 3] /= 40.0  # it does not dominate the output either

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.norm(self.up(x)))


@pytest.fixture(scope="module")
def outliers() -> Workload:
    """An embedding workload of :class:`_Block` on Gaussian inputs."""
    from autoopt.workloads.minilm import fidelity

    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        return Split((rng.standard_normal((n, 16)).astype(np.float32),))

    torch.manual_seed(0)
    return Workload(
        name="outliers",
        model=_Block().eval(),
        train=split(256),
        calibration=split(64),
        evaluation=split(256),
        metric=fidelity,
        metric_name="fidelity",
        output_kind="embedding",
    )


def _linears(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def _spread(ranges: dict[str, torch.Tensor]) -> float:
    """The largest channel range over the median one, worst Linear."""
    return max(float(r.max() / r.median()) for r in ranges.values())


def _batches(workload: Workload) -> list[tuple[torch.Tensor, ...]]:
    return [tuple(torch.from_numpy(x) for x in xs) for xs, _ in workload.calibration.batches(32)]


def test_smoothing_keeps_the_float_function_and_flattens_the_inputs(outliers: Workload) -> None:
    model = copy.deepcopy(outliers.model).eval()
    names = _linears(model)
    before = input_ranges(model, names, _batches(outliers))
    config = StaticInt8Config(smooth_quant_alpha=0.8, calibration_samples=64)
    smooth_on_calibration(model, [names[0]], config, outliers)  # "up" stays as it is
    smoothed = [n for n, m in model.named_modules() if isinstance(m, SmoothedLinear)]
    assert sorted(smoothed) == sorted(names[1:])  # every Linear but the excluded one
    after = input_ranges(model, [f"{n}.linear" for n in smoothed], _batches(outliers))
    assert _spread(after) < _spread({n: before[n] for n in smoothed}) / 4
    teacher = predict(TorchArtifact(outliers.model), outliers.evaluation)
    out = predict(TorchArtifact(model), outliers.evaluation)
    np.testing.assert_allclose(out, teacher, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("key", list(CONFIGS))
def test_smoothing_raises_int8_fidelity_on_outlier_channels(
    outliers: Workload, tmp_path: Path, key: str
) -> None:
    technique = plugins.get_technique(key)()
    teacher = predict(TorchArtifact(outliers.model), outliers.evaluation)
    fidelity = {}
    for alpha in (None, 0.8):
        config = CONFIGS[key].model_copy(update={"smooth_quant_alpha": alpha})
        ctx = make_context(
            outliers, tmp_path, key, config.model_dump(),
            backend="backend.torch_compile", backend_config=FROZEN,
        )  # fmt: skip
        assert technique.check(config, ctx) is None
        out = technique.apply(outliers.teacher(), config, ctx)
        fidelity[alpha] = outliers.metric(
            predict(out, outliers.evaluation), outliers.evaluation, teacher
        )["fidelity_mean"]
    # Without smoothing channel 3 takes the int8 range of the whole LayerNorm output.
    assert 1 - fidelity[0.8] < (1 - fidelity[None]) / 4, fidelity


def test_smoothed_static_int8_lowers_every_linear_to_onednn_int8(
    outliers: Workload, tmp_path: Path
) -> None:
    from torch._dynamo.utils import counters

    key = "quantization.static_int8"
    config = CONFIGS[key].model_copy(update={"smooth_quant_alpha": 0.8})
    ctx = make_context(
        outliers, tmp_path, key, config.model_dump(),
        backend="backend.torch_compile", backend_config=FROZEN,
    )  # fmt: skip
    built = plugins.get_technique(key)().apply(outliers.teacher(), config, ctx)
    model = pickle.loads(pickle.dumps(built.model))  # as the stage cache moves it
    counters.clear()
    runner = plugins.get_backend("backend.torch_compile")().compile(
        TorchArtifact(model), TorchCompileConfig(freezing=True), 1
    )
    runner.run(outliers.evaluation.take(8).inputs)
    # The multiply in front of each Linear does not stop Inductor's int8 Linear pattern.
    assert counters["inductor"]["qlinear_weight_prepack_matcher_count"] == 2


def test_onnxruntime_static_int8_refuses_smoothing(outliers: Workload, tmp_path: Path) -> None:
    key = "quantization.static_int8"
    config = StaticInt8Config(smooth_quant_alpha=0.5)
    ctx = make_context(outliers, tmp_path, key, config.model_dump(), backend="backend.onnxruntime")
    reason = plugins.get_technique(key)().check(config, ctx)
    assert reason is not None and "smooth_quant_alpha" in reason
    assert plugins.get_technique(key)().check(StaticInt8Config(), ctx) is None
