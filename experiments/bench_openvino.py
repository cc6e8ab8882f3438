"""OpenVINO on MiniLM against PyTorch and autoopt's ONNX Runtime int8, in one process.

Every candidate is built by autoopt's own pipeline (stage cache under results/cache/), compiled
by its backend at 1 thread, scored on the evaluation split (fidelity: cosine to the fp32
teacher) and timed in alternating rounds against the others, so each speedup is a ratio taken
under the same load:

- batch 1 × 128 real tokens (evaluation sentences joined and cut at 128: no padding to skip);
- batch 1 at the evaluation sentences' own lengths (what sentence-transformers users see;
  static-shape variants are left out: each length would compile anew).

A 3-layer student (``--student-steps N`` of distillation, 0: none) is measured too: its
latency is the architecture's, its fidelity only that of so short a training (the sweep's
students train 3000 steps, 19 minutes on this host; the default, 20, builds in about a minute).
Writes results/openvino/benchmark.md.

    .venv/bin/python experiments/bench_openvino.py [--rounds 10] [--student-steps 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
from pathlib import Path

from paired_timing import Built, alternate, build_and_compile, natural_inputs, paired_speedup

from autoopt import hardware
from autoopt.artifacts import artifact_size_bytes
from autoopt.cache import StageCache
from autoopt.measure import predict, teacher_outputs
from autoopt.recipe import Recipe
from autoopt.resolve import baseline_recipe, make_step
from autoopt.workloads import load_workload

REPO = Path(__file__).resolve().parent.parent
#: The train split only feeds the student; fixed, so that the stage cache (keyed by the
#: workload's version, which covers its data) serves every run.
OPTIONS = {"eval_size": 600, "calibration_size": 256, "seq_len": 128, "train_size": 4000}
BASELINE = "PyTorch fp32 eager (baseline)"
STANDARD = "OpenVINO + NNCF int8 (defaults, transformer)"


def recipe(backend: str, backend_config=None, precision="fp32", quantization=None, kd=None):
    return Recipe(
        precision=make_step(f"precision.{precision}"),
        backend=make_step(f"backend.{backend}", backend_config),
        quantization=make_step(*quantization) if quantization else None,
        distillation=make_step("distillation.kd", kd) if kd else None,
    )


def candidates(student_steps: int) -> list[tuple[str, Recipe]]:
    nncf = ("quantization.nncf_int8", {})
    static = {"static_shapes": True}
    ort_int8 = (
        "quantization.dynamic_int8",
        {"per_channel": True, "op_types": ["Gemm", "MatMul"]},
    )
    rows = [
        (BASELINE, baseline_recipe()),
        ("OpenVINO f32", recipe("openvino")),
        ("OpenVINO f32, static shapes", recipe("openvino", static)),
        ("OpenVINO bf16", recipe("openvino", precision="bf16")),
        (STANDARD, recipe("openvino", quantization=nncf)),
        ("OpenVINO + NNCF int8, static shapes", recipe("openvino", static, quantization=nncf)),
        ("OpenVINO + NNCF int8, bf16", recipe("openvino", precision="bf16", quantization=nncf)),
        (
            "ONNX Runtime dynamic int8, per channel (autoopt's path)",
            recipe("onnxruntime", {"flush_denormals": True}, quantization=ort_int8),
        ),
    ]
    if student_steps:
        kd = {
            "layers": 3,
            "steps": student_steps,
            "lr": 0.001,
            "alpha": 0.9,
            "batch_size": 32,
            "feature_weight": 1.0,
        }
        rows += [
            ("student (3 layers): PyTorch fp32 eager", recipe("torch_eager", kd=kd)),
            ("student (3 layers): OpenVINO f32", recipe("openvino", kd=kd)),
            (
                "student (3 layers): OpenVINO + NNCF int8",
                recipe("openvino", quantization=nncf, kd=kd),
            ),
        ]
    return rows


def what_ran(b: Built) -> str:
    info = b.runner.describe() if b.runner else {}
    if info.get("backend") == "openvino":
        fc = {k.split(":")[1]: n for k, n in info["op_counts"].items() if k.startswith("FullyC")}
        int8 = fc.get("u8", 0) + fc.get("i8", 0)
        return f"{info['inference_precision']}; FullyConnected: {int8} of {sum(fc.values())} int8"
    if info.get("backend") == "onnxruntime":
        ops = info["op_counts"]
        return f"{ops.get('MatMulInteger', 0)} MatMulInteger, {ops.get('MatMul', 0)} MatMul"
    return info.get("dtype", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40, help="rounds at 128 tokens")
    parser.add_argument("--runs", type=int, default=5, help="timed calls per round at 128")
    parser.add_argument("--natural-rounds", type=int, default=10)
    parser.add_argument("--sentences", type=int, default=100, help="natural-length inputs")
    parser.add_argument("--student-steps", type=int, default=20)
    args = parser.parse_args()
    started = dt.datetime.now()
    workload = load_workload("minilm", OPTIONS)
    cache = StageCache(REPO / "results/cache/openvino-bench")
    built: list[Built] = []
    with tempfile.TemporaryDirectory(prefix="bench-openvino-") as tmp:
        for label, r in candidates(args.student_steps):
            b = build_and_compile(label, r, workload, cache, Path(tmp))
            print(f"{label}: {b.refused or f'built in {b.build_s:.0f} s {b.built_stages}'}")
            built.append(b)
        ready = [b for b in built if b.runner is not None]

        # Fidelity on the whole evaluation split (batches of 64, padded to 128).
        reference = teacher_outputs(workload)
        scores = {
            b.label: workload.metric(predict(b.runner, workload), workload.evaluation, reference)
            for b in ready
        }
        sizes = {b.label: artifact_size_bytes(b.artifact, Path(tmp)) / 2**20 for b in ready}

    load_before = os.getloadavg()[0]
    full = workload.latency_inputs(1)
    at_128 = alternate(
        {b.label: [b.runner.timed(full)] for b in ready}, rounds=args.rounds, runs=args.runs
    )
    sentences = natural_inputs(workload, args.sentences)
    dynamic = [b for b in ready if not b.recipe.backend.params.get("static_shapes")]
    at_natural = alternate(
        {b.label: [b.runner.timed(x) for x in sentences] for b in dynamic},
        rounds=args.natural_rounds,
        runs=1,
        warmup=1,
    )
    load_after = os.getloadavg()[0]
    report(args, workload, built, scores, sizes, at_128, at_natural, sentences, started)
    print(f"load average {load_before:.1f} → {load_after:.1f}")


def report(args, workload, built, scores, sizes, at_128, at_natural, sentences, started) -> None:
    import statistics

    import nncf
    import onnxruntime
    import openvino
    import torch

    hw = hardware.current()
    lengths = [x[0].shape[1] for x in sentences]
    base = BASELINE

    def cell(times: dict[str, list[float]], label: str, ref: str) -> tuple[str, str, str]:
        if label not in times:
            return "-", "-", "-"
        ms = statistics.median(times[label])
        return (
            f"{ms:.2f}",
            f"{paired_speedup(times[base], times[label]):.2f}x",
            f"{paired_speedup(times[ref], times[label]):.2f}" if ref in times else "-",
        )

    lines = [
        "# OpenVINO on all-MiniLM-L6-v2",
        "",
        f"Run {started:%Y-%m-%d %H:%M} by `experiments/bench_openvino.py` on {hw.cpu_model} "
        f"({hw.logical_cores} logical cores, shared with other jobs; CPU flags: "
        f"{', '.join(hw.cpu_flags)}), Python {platform.python_version()}, torch "
        f"{torch.__version__}, OpenVINO {openvino.__version__.split('-')[0]}, NNCF "
        f"{nncf.__version__}, ONNX Runtime {onnxruntime.__version__}. Every candidate was "
        "built by autoopt's pipeline, runs at 1 thread, batch 1, and was timed in one process "
        f"in short alternating rounds: {args.rounds} at 128 tokens (each candidate in turn: "
        f"one untimed call, then the median of {args.runs}), {args.natural_rounds} at natural "
        "lengths (each candidate in turn: every sentence once). ms is the median over rounds; "
        "a speedup is the median over rounds of the ratio to the baseline timed in the same "
        "round, and `vs NNCF` the same ratio against OpenVINO + NNCF int8, the standard recipe "
        "(above 1: faster than it).",
        "",
        "- **128 tokens**: every input is 128 real tokens (evaluation sentences joined and cut "
        "at 128, no padding).",
        f"- **natural lengths**: the first {len(sentences)} evaluation sentences one at a time "
        f"at their own length ({min(lengths)}–{max(lengths)} tokens, mean "
        f"{statistics.fmean(lengths):.1f}); ms is the mean per sentence. Static-shape variants "
        "are left out (each length would compile anew).",
        "- **fidelity**: mean cosine to the fp32 teacher's embeddings on the 600 evaluation "
        "sentences (min: the worst sentence).",
        "",
        "| candidate | 128 tok ms | speedup | vs NNCF | natural ms | speedup | vs NNCF | "
        "fidelity | min | size MB | what ran |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for b in built:
        if b.runner is None:
            lines.append(f"| {b.label} | refused: {b.refused} | | | | | | | | | |")
            continue
        s = scores[b.label]
        ref = (
            STANDARD
            if not b.label.startswith("student")
            else ("student (3 layers): OpenVINO + NNCF int8")
        )
        a = cell(at_128, b.label, ref)
        n = cell(at_natural, b.label, ref)
        lines.append(
            f"| {b.label} | {a[0]} | {a[1]} | {a[2]} | {n[0]} | {n[1]} | {n[2]} | "
            f"{s['fidelity']:.4f} | {s['fidelity_min']:.4f} | {sizes[b.label]:.1f} | "
            f"{what_ran(b)} |"
        )
    students = [b for b in built if b.label.startswith("student") and b.runner is not None]
    if students:
        trained = max(b.stage_seconds.get("distillation.kd", 0.0) for b in students)
        lines += [
            "",
            f"The student rows are a 3-layer student distilled for {args.student_steps} steps "
            f"(its distillation stage took {trained / 60:.1f} min to build on this shared host), "
            "`vs NNCF` against the student with NNCF int8: its latency is the architecture's, "
            "its fidelity only that of a short training (the sweep's students train 3000 "
            "steps).",
        ]
    out = REPO / "results/openvino/benchmark.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
