"""GPU benchmark: MiniLM candidates on a cuda target (fp16, bf16, fp8; eager, torch.compile
with and without CUDA graphs; a student and a pruned model trained on the GPU).

Each candidate is built and measured by the functions a sweep's Ray tasks run
(``build_candidate`` here, ``measure_candidate`` in a fresh spawned process, as Ray's
``max_calls=1`` gives each measurement), so the figures are what a sweep on this GPU would
record. Ray itself is not used: the GPU machines this was run on cannot install it. Every
speedup is a ratio to fp32 eager on the same GPU in the same run. Candidates the target
cannot run (int8, ONNX Runtime, TensorRT here) are listed with the reason the check gives.

    python experiments/bench_gpu.py                     # on a host with an NVIDIA GPU
    python experiments/bench_gpu.py --device cpu --workload digits_cnn --only fp32-eager
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from autoopt import hardware
from autoopt.execution import TrialTask, build_candidate, measure_candidate
from autoopt.recipe import Recipe
from autoopt.resolve import make_step

REPO = Path(__file__).resolve().parent.parent
GRAPHS = {"mode": "reduce-overhead"}  # torch.compile with CUDA graphs
KD = {"steps": 2000, "lr": 3e-4, "alpha": 0.9, "batch_size": 32, "feature_weight": 1.0}
PRUNE = {
    "heads": 0.25,
    "ffn": 0.5,
    "recovery_steps": 400,
    "recovery_lr": 1e-4,
    "recovery_batch_size": 32,
    "recovery_feature_weight": 1.0,
}


def recipe(
    precision: str = "fp32",
    backend: str = "torch_eager",
    backend_config: dict[str, Any] | None = None,
    **steps: tuple[str, dict[str, Any]],
) -> Recipe:
    return Recipe(
        precision=make_step(f"precision.{precision}"),
        backend=make_step(f"backend.{backend}", backend_config),
        **{family: make_step(key, config) for family, (key, config) in steps.items()},
    )


def students(workload: str) -> dict[str, Recipe]:
    """How far distillation on the GPU takes layer-dropped students, by layers and steps: what
    a CPU sweep (about 7 minutes per 1000 steps on 2 cores) cannot afford to find out."""
    if workload == "minilm":
        shapes = {f"student{n}": {**KD, "layers": n} for n in (3, 5)}
        steps = (2000, 6000)
    else:  # a smoke run on the small bundled workload: one narrower student
        shapes, steps = {"student": {"width": 0.5}}, (100, 300)
    return {
        f"{name}-{k}-steps": recipe(distillation=("distillation.kd", {**config, "steps": k}))
        for name, config in shapes.items()
        for k in steps
    }


def candidates(workload: str, group: str = "main") -> dict[str, Recipe]:
    """Name → recipe; the first is the baseline every speedup is taken against."""
    if group == "students":
        return {"fp32-eager": recipe(), **students(workload)}
    student = {"distillation": ("distillation.kd", {"layers": 4, **KD})}
    pruned = {"pruning": ("pruning.attention_ffn", PRUNE)}
    if workload != "minilm":  # a smoke run of this script on the small bundled workload
        student = {"distillation": ("distillation.kd", {"width": 0.5, "steps": 200})}
        pruned = {"pruning": ("pruning.structured", {"amount": 0.5, "recovery_steps": 100})}
    return {
        "fp32-eager": recipe(),
        "fp16-eager": recipe("fp16"),
        "bf16-eager": recipe("bf16"),
        "fp8-eager": recipe("fp8"),
        "fp16-compile": recipe("fp16", "torch_compile"),
        "fp16-compile-graphs": recipe("fp16", "torch_compile", GRAPHS),
        "bf16-compile-graphs": recipe("bf16", "torch_compile", GRAPHS),
        "fp8-compile-graphs": recipe("fp8", "torch_compile", GRAPHS),
        "student4-fp16-compile-graphs": recipe("fp16", "torch_compile", GRAPHS, **student),
        "pruned-fp16-compile-graphs": recipe("fp16", "torch_compile", GRAPHS, **pruned),
        # What the check refuses on a cuda target, with its reason.
        "int8-dynamic": recipe(quantization=("quantization.dynamic_int8", {})),
        "ort-fp16": recipe("fp16", "onnxruntime"),
        "tensorrt-fp16": recipe("fp16", "tensorrt"),
    }


def task(number: int, r: Recipe, args: argparse.Namespace) -> TrialTask:
    options = {"eval_size": 600, "train_size": 3200, "calibration_size": 256, "seq_len": 128}
    return TrialTask(
        trial_number=number,
        recipe=r.to_dict(),
        workload=args.workload,
        workload_options=options if args.workload == "minilm" else {},
        cache_dir=str(args.cache),
        latency={
            "batch_size": 1,
            "threads": 1,
            "warmup": 20,
            "runs": 100,
            "extra_batch_sizes": [32],
        },
        verify={"reference_samples": 64, "min_agreement": 0.25},
        sys_path=list(sys.path),
        build_threads=args.build_threads,
        device=args.device,
    )


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    out_json = args.out / f"{stem(args)}.json"
    if out_json.exists() and args.only:
        rows = [r for r in json.loads(out_json.read_text())["rows"] if r["name"] not in args.only]
    spawn = mp.get_context("spawn")
    for i, (name, r) in enumerate(candidates(args.workload, args.group).items()):
        if args.only and name not in args.only:
            continue
        t = task(i, r, args)
        start = time.perf_counter()
        built = build_candidate(t)
        row: dict[str, Any] = {"name": name, "recipe": r.describe()}
        if "error" in built:
            row["error"] = built["error"]
        else:
            row["build_s"] = built["seconds"]
            row["built_stages"] = [e for e in built["events"] if not e["hit"]]
            # A fresh process per measurement, as the sweep's measure task has.
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                measured = pool.submit(measure_candidate, t, built).result(timeout=1800)
            if "error" in measured:
                row["error"] = measured["error"]
            else:
                row.update(
                    metrics=measured["metrics"],
                    runner=measured["runner"],
                    hardware=measured["hardware"],
                )
        row["wall_s"] = time.perf_counter() - start
        rows.append(row)
        print(
            json.dumps({k: v for k, v in row.items() if k != "hardware"}, default=str), flush=True
        )
        write(args, rows)
    return rows


def write(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    hw = asdict(hardware.current())
    order = list(candidates(args.workload, args.group))
    rows = sorted(rows, key=lambda r: order.index(r["name"]) if r["name"] in order else 99)
    (args.out / f"{stem(args)}.json").write_text(
        json.dumps({"hardware": hw, "rows": rows}, indent=1, default=str)
    )
    (args.out / f"{stem(args)}.md").write_text(report(args, rows, hw))


def stem(args: argparse.Namespace) -> str:
    return "benchmark" if args.group == "main" else args.group


def report(args: argparse.Namespace, rows: list[dict[str, Any]], hw: dict[str, Any]) -> str:
    base = next((r for r in rows if r["name"] == "fp32-eager" and "metrics" in r), None)
    gpu = ", ".join(hw.get("cuda_devices") or ()) or "none"
    lines = [
        f"# GPU benchmark{'' if args.group == 'main' else ' (' + args.group + ')'}: "
        f"{args.workload} on a {args.device} target",
        "",
        f"Written by `experiments/bench_gpu.py` on {dt.date.today().isoformat()}. GPU: {gpu}; "
        f"CPU: {hw['cpu_model']} x{hw['logical_cores']}; torch {hw['versions'].get('torch')}.",
        "",
        "Latency p50 at batch 1 (the primary shape) and batch 32 (MiniLM: sequence length 128). "
        "Speedups are ratios to fp32 eager on the same device in this run. Accuracy is the "
        "workload's metric against the fp32 teacher computed on the CPU (MiniLM: fidelity, the "
        "cosine similarity of embeddings over the evaluation split).",
        "",
        "| candidate | recipe | p50 b1 (ms) | speedup b1 | p50 b32 (ms) | speedup b32 "
        "| accuracy (mean / min / p5) | size (MB) | GPU peak (MB) | build (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    refused = []
    for r in rows:
        if "metrics" not in r:
            refused.append(r)
            continue
        m = r["metrics"]
        b1, b32 = m["latency_p50_ms"], m.get("latency_p50_ms@b32", float("nan"))
        s1 = base["metrics"]["latency_p50_ms"] / b1 if base else float("nan")
        s32 = (
            base["metrics"].get("latency_p50_ms@b32", float("nan")) / b32 if base else float("nan")
        )
        fid = "{:.4f} / {:.4f} / {:.4f}".format(
            m["accuracy"],
            m.get("fidelity_min", m["accuracy"]),
            m.get("fidelity_p5", m["accuracy"]),
        )
        lines.append(
            f"| {r['name']} | {r['recipe']} | {b1:.3f} | {s1:.2f}x | {b32:.3f} | {s32:.2f}x "
            f"| {fid} | {m['size_mb']:.1f} | {m.get('gpu_peak_memory_mb', 0):.0f} "
            f"| {r['build_s']:.1f} |"
        )
    trained = [
        (r["name"], e["stage"], e["seconds"])
        for r in rows
        for e in r.get("built_stages", [])
        if e["stage"].startswith(("distillation", "pruning"))
    ]
    if trained:
        lines += ["", f"## Training on the target ({args.device})", ""]
        lines += [f"- {name}: {stage} took {s:.1f} s" for name, stage, s in trained]
    if refused:
        lines += ["", "## Refused or failed on this target", ""]
        lines += [
            f"- {r['name']} ({r['recipe']}): {r['error']['stage']}: {r['error']['reason']}"
            for r in refused
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="minilm")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--out", type=Path, default=REPO / "results" / "gpu")
    p.add_argument("--cache", type=Path, default=REPO / "results" / "cache" / "gpu-bench")
    p.add_argument("--build-threads", type=int, default=8)
    p.add_argument(
        "--group",
        default="main",
        choices=["main", "students"],
        help="main: precisions and backends (benchmark.md); students: distillation by layers "
        "and steps (students.md)",
    )
    p.add_argument("--only", nargs="*", default=[], help="candidate names (default: all)")
    run(p.parse_args())


if __name__ == "__main__":
    main()
