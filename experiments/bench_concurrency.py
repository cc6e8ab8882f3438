"""Honest timings under concurrency: the same candidate measured alone and while other trials
build on the same node. Writes results/concurrency/benchmark.md.

Builds may share a node with a measurement; measurements never share one (the per-node
``autoopt_measure`` slot). This benchmark shows the measured medians do not depend on it.

    .venv/bin/python experiments/bench_concurrency.py [--repeats 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import ray

from autoopt.config import LatencyConfig, VerifyConfig
from autoopt.execution import (
    MEASURE_SLOT,
    TrialTask,
    build_candidate,
    ensure_ray,
    measure_candidate,
)
from autoopt.resolve import baseline_recipe, make_step

REPO = Path(__file__).resolve().parent.parent


def task(n: int, recipe, cache: Path, runs: int = 1000) -> TrialTask:
    return TrialTask(
        trial_number=n,
        recipe=recipe.to_dict(),
        workload="digits_cnn",
        workload_options={},
        cache_dir=str(cache),
        latency=LatencyConfig(warmup=50, runs=runs, extra_batch_sizes=[64]).model_dump(),
        verify=VerifyConfig().model_dump(),
        seed=n,
        sys_path=[str(REPO), *sys.path],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    ensure_ray(num_cpus=2)
    # The executor's two tasks as it submits them: builds anywhere, measurements in a fresh
    # process holding the node's measurement slot.
    build = ray.remote(build_candidate).options(num_cpus=1)
    measure = ray.remote(max_calls=1)(measure_candidate).options(
        num_cpus=1, resources={MEASURE_SLOT: 1}
    )
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        results = {}
        for b, backend in enumerate(("torch_eager", "onnxruntime")):
            recipe = baseline_recipe()
            if backend != "torch_eager":
                recipe = type(recipe)(
                    precision=recipe.precision, backend=make_step(f"backend.{backend}")
                )
            built = ray.get(build.remote(task(0, recipe, cache)), timeout=300)
            alone, loaded = [], []
            for i in range(args.repeats):
                # Alternate alone / loaded so slow drift of the machine hits both equally.
                alone.append(ray.get(measure.remote(task(0, recipe, cache), built), timeout=300))
                heavy = baseline_recipe()
                heavy = type(heavy)(
                    precision=heavy.precision,
                    backend=heavy.backend,
                    # A distinct config each time: a cache hit would build nothing.
                    distillation=make_step(
                        "distillation.kd", {"width": 0.75, "steps": 1500 + 100 * b + i}
                    ),
                )
                build_ref = build.remote(task(100 + i, heavy, cache))
                loaded.append(ray.get(measure.remote(task(0, recipe, cache), built), timeout=300))
                busy = not ray.wait([build_ref], timeout=0)[0]  # still building when timed
                ray.get(build_ref, timeout=600)
                loaded[-1]["busy"] = busy
            results[backend] = (alone, loaded)
    lines = [
        "# Timings under concurrency (digits_cnn teacher, 1 thread)",
        "",
        f"Each row: the same built candidate measured {args.repeats} times alone and "
        f"{args.repeats} times while a distillation build (1500 steps) runs on the same node, "
        "alternating, in one run on this 2-core machine.",
        "",
        "| backend | median p50 alone (ms) | median p50 while building (ms) | ratio | "
        "build still running during every loaded measurement | load avg (alone → loaded) | "
        "within 5% |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend, (alone, loaded) in results.items():
        la = statistics.mean(r["hardware"]["load_avg_1m"] for r in alone)
        lb = statistics.mean(r["hardware"]["load_avg_1m"] for r in loaded)
        for key, batch in (("latency_p50_ms", 1), ("latency_p50_ms@b64", 64)):
            a = statistics.median(r["metrics"][key] for r in alone)
            b = statistics.median(r["metrics"][key] for r in loaded)
            ratio = b / a
            lines.append(
                f"| {backend}, batch {batch} | {a:.4f} | {b:.4f} | {ratio:.3f} | "
                f"{all(r['busy'] for r in loaded)} | {la:.2f} → {lb:.2f} | "
                f"{'yes' if abs(ratio - 1) <= 0.05 else 'no'} |"
            )
    out = REPO / "results/concurrency/benchmark.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"(host load while benchmarking: {os.getloadavg()})")


if __name__ == "__main__":
    main()
