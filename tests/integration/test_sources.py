"""Bring your own model, end to end (real Ray, a real SQLite study): a Hugging Face checkpoint
with a CSV, and an ONNX file with an .npz, each named in ten lines of YAML."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import autoopt
from autoopt.study import schema as S
from tests.tiny_checkpoints import digits_onnx, text_classifier

pytestmark = pytest.mark.slow


def _experiment(folder: Path, workload: str, space: str, seeds: str, n_trials: int) -> Path:
    exp = folder / "exp.yaml"
    space = textwrap.indent(textwrap.dedent(space).strip(), "  ")
    exp.write_text(
        f"workload: {workload}\nsearch_space:\n{space}\n"
        + textwrap.dedent(
            f"""
            constraint: {{max_drop: 0.05}}
            budget: {{n_trials: {n_trials}}}
            sampler: {{name: random, seed: 0, starting_points: false}}
            seed_candidates: {seeds}
            latency: {{batch_size: 1, threads: 1, warmup: 3, runs: 20, rounds: 4}}
            execution: {{workers: 1, trial_timeout_s: 300, self_test: SELF_TEST}}
            storage: sqlite:///{folder}/study.db
            cache_dir: {folder}/cache
            results_dir: {folder}/results
            """
        )
    )
    return exp


def test_huggingface_checkpoint_with_a_csv_sweeps_end_to_end(ray_session, tmp_path: Path) -> None:
    text_classifier(tmp_path / "mine")
    exp = _experiment(
        tmp_path,
        "{huggingface: {model: mine/model, task: text-classification, data: mine/data.csv}}",
        """
        parameters:
          quantization.method: [none, dynamic_int8]
          quantization.dynamic_int8.per_channel: true
          precision.method: [fp32]
          backend.method: [torch_eager, onnxruntime]
        """,
        "[{name: int8, params: {quantization.method: dynamic_int8, precision.method: fp32, "
        "backend.method: onnxruntime}}]",
        n_trials=2,
    )
    exp.write_text(exp.read_text().replace("SELF_TEST", "false"))
    summary = autoopt.run(exp)
    assert summary.completed == 2, summary
    study = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db")
    base, int8 = study.trials
    assert base.is_baseline and base.recipe_str == "fp32 @ torch_eager"
    assert base.metrics["accuracy"] > 0.7  # trained briefly on the data's own rule
    assert int8.state == "COMPLETE" and int8.runner["backend"] == "onnxruntime"
    assert any("Integer" in op for op in int8.runner["op_counts"]), int8.runner["op_counts"]
    assert [e["stage"] for e in int8.stages] == ["export.onnx", "quantization.dynamic_int8"]
    assert abs(int8.metrics["accuracy"] - base.metrics["accuracy"]) <= 0.05
    assert {"macro_f1", "teacher_agreement"} <= set(int8.metrics)
    assert study.workload == "huggingface"


def test_onnx_file_with_an_npz_sweeps_end_to_end_on_onnx_runtime(
    ray_session, tmp_path: Path, digits
) -> None:
    digits_onnx(tmp_path / "mine", digits)
    exp = _experiment(
        tmp_path,
        "{onnx: {model: mine/model.onnx, task: image-classification, data: mine/data.npz}}",
        """
        parameters:
          distillation.method: [none, kd]
          quantization.method: [none, static_int8]
          precision.method: [fp32]
          backend.method: [torch_eager, onnxruntime]
        """,
        "[{name: kd, params: {distillation.method: kd, quantization.method: none, "
        "precision.method: fp32, backend.method: onnxruntime}}, "
        "{name: eager, params: {distillation.method: none, quantization.method: none, "
        "precision.method: fp32, backend.method: torch_eager}}, "
        "{name: int8, params: {distillation.method: none, quantization.method: static_int8, "
        "precision.method: fp32, backend.method: onnxruntime}}]",
        n_trials=2,
    )
    exp.write_text(exp.read_text().replace("SELF_TEST", "true"))
    summary = autoopt.run(exp)
    assert (summary.completed, summary.rejected) == (2, 2), summary
    study = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db")
    by_seed = {t.seed: t for t in study.trials if t.seed}
    base = study.trials[0]
    # The baseline is the graph as it is on ONNX Runtime, fp32, not paired with itself.
    assert base.is_baseline and base.recipe_str == "fp32 @ onnxruntime"
    assert base.runner["backend"] == "onnxruntime" and base.stages == []
    assert base.metrics["paired_speedup"] == 1.0 and base.metrics["accuracy"] > 0.9
    # int8 is built from the graph itself (no export) and timed against that baseline.
    int8 = by_seed["int8"]
    assert int8.state == "COMPLETE" and int8.metrics["baseline_latency_p50_ms"] > 0
    assert [e["stage"] for e in int8.stages] == ["quantization.static_int8"]
    assert "QuantizeLinear" in int8.runner["op_counts"]
    assert int8.metrics["accuracy"] >= base.metrics["accuracy"] - 0.05
    # What needs the PyTorch model is refused before anything runs, with the reason.
    for name, reason in (
        ("kd", "distillation.kd: works on PyTorch models only, and the workload's teacher is "
         "an ONNX graph (model.onnx)"),
        ("eager", "backend.torch_eager: serves PyTorch modules, and the workload's teacher is "
         "an ONNX graph (model.onnx)"),
    ):  # fmt: skip
        refused = by_seed[name]
        assert refused.status == "rejected" and refused.failure_stage == "check"
        assert reason in refused.failure_reason
    # The host self-test ran the space's ONNX Runtime paths on the graph itself.
    (tested,) = [v for k, v in study.user_attrs.items() if k.startswith(S.STUDY_SELFTEST_PREFIX)]
    status = {p["path"]: p["status"] for p in tested["paths"]}
    assert status.get("onnxruntime + fp32") == "pass", status
    assert status.get("onnxruntime + static_int8") == "pass", status
    assert {s for p, s in status.items() if p.startswith("torch_eager")} == {"refused"}
