"""NNCF weight compression (NF4 / int4) on OpenVINO IRs: what the plugin runs, and the size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoopt import plugins
from autoopt.artifacts import artifact_size_bytes
from autoopt.backends.openvino import OpenVinoRunner
from autoopt.errors import CandidateError
from autoopt.techniques._openvino import layer_path, read_model
from autoopt.techniques.nncf_weights import NncfWeightsConfig, weight_types
from autoopt.testing import TechniqueTestSuite
from autoopt.testing._build import make_context, teacher_artifact
from autoopt.workloads import Workload

TINY_BERT = "autoopt.testing:tiny_bert"
MATMULS = ("FullyConnected", "MatMul", "Convolution")


def _layer_precisions(runner: OpenVinoRunner) -> dict[str, str]:
    """Module path → the precision the CPU plugin runs its matrix layer at."""
    compiled = next(iter(runner._compiled.values()))
    out = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) not in MATMULS:
            continue
        names = info["originalLayersNames"].astype(str).split(",")
        out[next(p for p in map(layer_path, names) if p)] = info["runtimePrecision"].astype(str)
    return out


class TestNncfNf4(TechniqueTestSuite):
    key = "quantization.nncf_weights"
    backend = "backend.openvino"

    def test_fc1_runs_nf4_and_the_last_layer_int8(self, built: Any, tmp_path: Path) -> None:
        # NNCF's defaults: the last MatMul in int8 (its backup precision), convolutions float.
        assert _layer_precisions(OpenVinoRunner(built.output, threads=1)) == {
            "conv1": "f32",
            "conv2": "f32",
            "fc1": "nf4",
            "fc2": "u8",
        }
        assert weight_types(read_model(built.output)).get("nf4") == 1
        # fc1 is 32k of the 38k weights: the IR shrinks to under a third.
        assert (
            artifact_size_bytes(built.output, tmp_path)
            < artifact_size_bytes(built.source, tmp_path) / 3
        )


class TestNncfInt4AllLayersEightBit(TechniqueTestSuite):
    key = "quantization.nncf_weights"
    backend = "backend.openvino"
    config = {"mode": "int4_asym", "group_size": 32, "all_layers": True, "eight_bit": ["fc1"]}
    tolerance = 0.03

    def test_eight_bit_layers_stay_int8(self, built: Any) -> None:
        precisions = _layer_precisions(OpenVinoRunner(built.output, threads=1))
        assert precisions["fc1"] == "u8" and precisions["fc2"] == "u4"


class TestNncfNf4Embedding(TechniqueTestSuite):
    key = "quantization.nncf_weights"
    backend = "backend.openvino"
    config = {"group_size": 32, "all_layers": True}
    workload_name = TINY_BERT
    tolerance = 0.03

    def test_every_linear_runs_nf4(self, built: Any) -> None:
        precisions = _layer_precisions(OpenVinoRunner(built.output, threads=1))
        assert precisions and set(precisions.values()) == {"nf4"}


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("backend.openvino", None),
        ("backend.onnxruntime", "use backend openvino"),
        ("backend.torch_eager", "quantization.codebook on PyTorch"),
    ],
)
def test_nncf_weights_check(
    workload: Workload, tmp_path: Path, backend: str, expected: str | None
) -> None:
    ctx = make_context(workload, tmp_path, "quantization.nncf_weights", backend=backend)
    reason = plugins.get_technique("quantization.nncf_weights")().check(NncfWeightsConfig(), ctx)
    assert reason is None if expected is None else expected in (reason or "")


def test_nncf_weights_names_that_match_nothing_fail(workload: Workload, tmp_path: Path) -> None:
    config = {"eight_bit": ["fc9"]}
    ctx = make_context(
        workload, tmp_path, "quantization.nncf_weights", config, backend="backend.openvino"
    )
    technique = plugins.get_technique("quantization.nncf_weights")()
    source = teacher_artifact("openvino", workload, tmp_path)
    with pytest.raises(CandidateError, match="fc9"):
        technique.apply(source, NncfWeightsConfig(**config), ctx)


@pytest.mark.parametrize(("fallback", "fc2"), [("adjust", "nf4"), ("ignore", "f32")])
def test_a_layer_the_group_size_does_not_divide_falls_back(
    workload: Workload, tmp_path: Path, fallback: str, fc2: str
) -> None:
    # fc2 has 64 inputs, which groups of 128 do not divide (a student's narrower layer is
    # the common case); fc1's 512 they do.
    config = {"group_size": 128, "all_layers": True, "group_size_fallback": fallback}
    ctx = make_context(
        workload, tmp_path, "quantization.nncf_weights", config, backend="backend.openvino"
    )
    technique = plugins.get_technique("quantization.nncf_weights")()
    source = teacher_artifact("openvino", workload, tmp_path)
    out = technique.apply(source, NncfWeightsConfig(**config), ctx)
    precisions = _layer_precisions(OpenVinoRunner(out, threads=1))
    assert precisions["fc1"] == "nf4" and precisions["fc2"] == fc2


def test_group_size_fallback_error_fails_the_candidate(workload: Workload, tmp_path: Path) -> None:
    config = {"group_size": 128, "all_layers": True, "group_size_fallback": "error"}
    ctx = make_context(
        workload, tmp_path, "quantization.nncf_weights", config, backend="backend.openvino"
    )
    technique = plugins.get_technique("quantization.nncf_weights")()
    source = teacher_artifact("openvino", workload, tmp_path)
    with pytest.raises(CandidateError, match="group"):
        technique.apply(source, NncfWeightsConfig(**config), ctx)
