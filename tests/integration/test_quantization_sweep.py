"""QAT int8, codebook and NF4 end to end: a digits sweep (real Ray, real SQLite study) whose
seed candidates are one of each, then every one exported, reloaded with ``autoopt.load`` and
scored again: the bundle reproduces the recorded accuracy, and a codebook bundle is the size
the trial recorded."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

import autoopt
from autoopt.artifacts import TorchArtifact, artifact_size_bytes
from autoopt.study.records import StudyRecord, TrialRecord
from autoopt.techniques.quantization._codebook_layers import RUNTIME_NOTE

SPACE = """
parameters:
  quantization.method: [none, codebook, qat_int8, nncf_weights]
  quantization.codebook.bits: 3
  quantization.qat_int8.steps: 40
  quantization.qat_int8.lr: 0.0001
  quantization.qat_int8.batch_size: 64
  quantization.nncf_weights.mode: nf4
  precision.method: fp32
  backend.method: [torch_eager, torch_compile, openvino]
  backend.torch_compile.freezing: true
"""

SEEDS = {
    "codebook": ("codebook", "torch_eager"),
    "qat-openvino": ("qat_int8", "openvino"),
    "qat-inductor": ("qat_int8", "torch_compile"),
    "nf4": ("nncf_weights", "openvino"),
}


def _seeds() -> str:
    lines = ["seed_candidates:"]
    for name, (method, backend) in SEEDS.items():
        lines += [
            f"  - name: {name}",
            f"    params: {{quantization.method: {method}, backend.method: {backend}}}",
        ]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def swept(ray_session, tmp_path_factory) -> tuple[StudyRecord, str]:
    root = tmp_path_factory.mktemp("quantization-sweep")
    (root / "space.yaml").write_text(textwrap.dedent(SPACE))
    exp = root / "exp.yaml"
    exp.write_text(
        textwrap.dedent(
            f"""
            workload: digits_cnn
            search_space: space.yaml
            objectives: [accuracy, latency_p50_ms, size_mb]
            constraint: {{max_drop: 0.03}}
            budget: {{n_trials: {len(SEEDS) + 1}}}
            sampler: {{name: random, seed: 0}}
            latency: {{batch_size: 1, threads: 1, warmup: 3, runs: 20}}
            execution: {{workers: 2, trial_timeout_s: 400}}
            storage: sqlite:///{root}/study.db
            cache_dir: {root}/cache
            """
        )
        + _seeds()
        + "\n"
    )
    autoopt.run(exp, write_results=False)
    storage = f"sqlite:///{root}/study.db"
    return autoopt.load_study("exp", storage), storage


def _by_seed(study: StudyRecord) -> dict[str, TrialRecord]:
    out = {}
    for t in study.trials:
        recipe = t.recipe or {}
        method = ((recipe.get("quantization") or {}).get("key") or "").removeprefix(
            "quantization."
        )
        backend = ((recipe.get("backend") or {}).get("key") or "").removeprefix("backend.")
        for name, seed in SEEDS.items():
            if seed == (method, backend):
                out[name] = t
    return out


def test_each_family_is_measured_with_what_its_runner_ran(
    swept: tuple[StudyRecord, str],
) -> None:
    study, _ = swept
    trials = _by_seed(study)
    states = {n: (t.state, t.failure_reason) for n, t in trials.items()}
    assert set(trials) == set(SEEDS) and all(s == "COMPLETE" for s, _ in states.values()), states
    baseline = study.baseline.metrics
    for t in trials.values():
        assert t.metrics["accuracy"] >= baseline["accuracy"] - 0.03
    # Codebook: a third of a float's bits, and the runner says it is not faster.
    assert trials["codebook"].metrics["size_mb"] < baseline["size_mb"] / 5
    assert trials["codebook"].runner["notes"] == [RUNTIME_NOTE]
    # QAT int8 on OpenVINO and Inductor, NF4 on OpenVINO: smaller, and int8/nf4 kernels.
    for name in ("qat-openvino", "qat-inductor", "nf4"):
        assert trials[name].metrics["size_mb"] < baseline["size_mb"] / 2, name
    ops = trials["nf4"].runner["op_counts"]
    assert ops.get("FullyConnected:nf4") == 1 and ops.get("FullyConnected:u8") == 1
    ops = trials["qat-openvino"].runner["op_counts"]
    assert ops.get("Convolution:u8") == 2 and ops.get("FullyConnected:u8") == 2
    # One QAT stage for both backends: trained once, then converted for OpenVINO.
    stages = {
        name: [e["stage"] for e in trials[name].stages]
        for name in ("qat-openvino", "qat-inductor")
    }
    order = stages["qat-openvino"]
    assert order.index("quantization.qat_int8") < order.index("export.openvino")
    qat_keys = {
        e["key"]
        for name in stages
        for e in trials[name].stages
        if e["stage"] == "quantization.qat_int8"
    }
    assert len(qat_keys) == 1


@pytest.mark.parametrize("seed", list(SEEDS))
def test_bundle_round_trips_and_reproduces_the_recorded_accuracy(
    swept: tuple[StudyRecord, str], tmp_path: Path, seed: str
) -> None:
    study, storage = swept
    trial = _by_seed(study)[seed]
    out = tmp_path / seed
    result = autoopt.export(study.name, storage, out=out, trial=trial.number)
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    expected_format = {
        "codebook": "pickled_module",
        "qat-openvino": "openvino",
        "qat-inductor": "exported_program",
        "nf4": "openvino",
    }[seed]
    assert result.model_format == expected_format
    runner = autoopt.load(out)
    scores = runner.evaluate()
    assert abs(scores["accuracy"] - trial.metrics["accuracy"]) <= 0.005
    if seed == "codebook":
        # The bundle holds the codes: its module is the size the trial recorded.
        model = runner._runner.model  # type: ignore[attr-defined]
        recorded = trial.metrics["size_mb"] * 2**20
        assert artifact_size_bytes(TorchArtifact(model), tmp_path) == pytest.approx(
            recorded, abs=1
        )
        assert (out / manifest["model"]["file"]).stat().st_size < recorded + 16_000
        assert "codebook layer is not exported" in manifest["model"]["fallback_reason"]
        assert runner.describe()["notes"] == [RUNTIME_NOTE]
