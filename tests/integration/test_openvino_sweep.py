"""OpenVINO end to end: a digits sweep with the openvino backend and NNCF int8 (real Ray, real
SQLite study), then its NNCF trial exported, reloaded, tampered with, and laid out for Triton."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_export import _triton_model_config

import autoopt
from autoopt.errors import ExportError
from autoopt.study.records import StudyRecord, TrialRecord

SPACE = """
parameters:
  quantization.method: [none, nncf_int8]
  quantization.nncf_int8.preset: performance
  precision.method: fp32
  backend.method: [torch_eager, openvino]
"""


def _int8_layers(op_counts: dict[str, int]) -> int:
    """Convolution and FullyConnected layers the plugin runs in int8 (``FullyConnected:u8``)."""
    return sum(
        n
        for k, n in op_counts.items()
        if k.split(":")[0] in ("Convolution", "FullyConnected") and k.split(":")[1] in ("u8", "i8")
    )


def _recipe(t: TrialRecord, family: str) -> str:
    return ((t.recipe or {}).get(family) or {}).get("key", "")


@pytest.fixture(scope="module")
def swept(ray_session, tmp_path_factory) -> tuple[StudyRecord, str]:
    root = tmp_path_factory.mktemp("openvino-sweep")
    (root / "space.yaml").write_text(textwrap.dedent(SPACE))
    exp = root / "exp.yaml"
    exp.write_text(
        textwrap.dedent(
            f"""
            workload: digits_cnn
            search_space: space.yaml
            constraint: {{max_drop: 0.02}}
            budget: {{n_trials: 4}}
            sampler: {{name: grid, seed: 0}}
            latency: {{batch_size: 1, threads: 1, warmup: 3, runs: 20}}
            execution: {{workers: 2, trial_timeout_s: 240}}
            storage: sqlite:///{root}/study.db
            cache_dir: {root}/cache
            """
        )
    )
    autoopt.run(exp, write_results=False)
    storage = f"sqlite:///{root}/study.db"
    return autoopt.load_study("exp", storage), storage


def test_sweep_with_openvino_records_what_the_plugin_ran(swept: tuple[StudyRecord, str]) -> None:
    study, _ = swept
    ov = [t for t in study.trials if _recipe(t, "backend") == "backend.openvino"]
    # The measured trials, not repeats (the grid proposes the derived starting points again).
    measured = [t for t in ov if t.state == "COMPLETE" and not t.is_repeat]
    by_quant = {_recipe(t, "quantization"): t for t in measured}
    assert set(by_quant) == {"", "quantization.nncf_int8"}, [
        (t.number, t.state, t.failure_reason) for t in study.trials
    ]
    for t in by_quant.values():
        assert t.runner["backend"] == "openvino" and t.runner["inference_precision"] == "f32"
        assert t.runner["threads"] == 1 and t.runner["streams"] == 1
        assert t.hardware["versions"]["openvino"].startswith("2026.")
        assert t.metrics["accuracy"] >= study.baseline.metrics["accuracy"] - 0.02
    int8 = by_quant["quantization.nncf_int8"]
    assert _int8_layers(int8.runner["op_counts"]) == 4  # conv1, conv2, fc1, fc2
    assert _int8_layers(by_quant[""].runner["op_counts"]) == 0
    assert {e["stage"] for e in int8.stages} >= {"export.openvino", "quantization.nncf_int8"}
    # NNCF quantizes OpenVINO IRs only: on PyTorch eager the pair is refused before building.
    refused = [t for t in study.trials if t.state == "PRUNED"]
    assert all("use backend openvino" in (t.failure_reason or "") for t in refused)


def test_openvino_bundle_round_trips_with_hashes_and_triton(
    swept: tuple[StudyRecord, str], tmp_path: Path
) -> None:
    from google.protobuf import text_format

    study, storage = swept
    trial = next(
        t
        for t in study.trials
        if t.state == "COMPLETE"
        and not t.is_repeat
        and _recipe(t, "quantization") == "quantization.nncf_int8"
    )
    out = tmp_path / "bundle"
    result = autoopt.export(study.name, storage, out=out, trial=trial.number, triton=True)
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    assert result.model_format == "openvino"
    assert manifest["model"]["inference_precision"] == "f32"
    assert {"model.xml", "model.bin"} <= set(manifest["files"])
    assert [t["name"] for t in manifest["signature"]["inputs"]] == ["image"]

    runner = autoopt.load(out)
    assert runner.describe()["inference_precision"] == "f32"
    assert _int8_layers(runner.describe()["op_counts"]) == 4
    np.testing.assert_array_equal(runner(*runner.example_inputs()), runner.example_outputs())

    folder = out / "triton" / "digits_cnn"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "1/model.bin",
        "1/model.xml",
        "config.pbtxt",
    ]
    config = text_format.Parse((folder / "config.pbtxt").read_text(), _triton_model_config()())
    assert config.backend == "openvino" and not config.platform
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params == {
        "INFERENCE_NUM_THREADS": "1",
        "NUM_STREAMS": "1",
        "PERFORMANCE_HINT": "LATENCY",
    }
    assert [i.name for i in config.input] == ["image"] and list(config.input[0].dims) == [1, 8, 8]

    # A modified weight file is refused before OpenVINO reads it.
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    weights = bytearray((tampered / "model.bin").read_bytes())
    weights[-1] ^= 1
    (tampered / "model.bin").write_bytes(bytes(weights))
    with pytest.raises(ExportError, match="model.bin: SHA-256 mismatch"):
        autoopt.load(tampered)
