"""Benchmark helpers: build recipes through the stage cache, and time candidates against each
other in one process, in alternating rounds, so that a speedup is a ratio taken under the same
load (this machine is shared: a median taken minutes apart can move by 14%)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autoopt import hardware, plugins
from autoopt.artifacts import Artifact, load_artifact
from autoopt.cache import StageCache
from autoopt.errors import CandidateRejected
from autoopt.pipeline import build
from autoopt.plugins import Runner
from autoopt.recipe import Recipe
from autoopt.resolve import make_step
from autoopt.workloads import Workload


@dataclass
class Built:
    label: str
    recipe: Recipe
    artifact: Artifact | None = None
    runner: Runner | None = None
    refused: str = ""
    build_s: float = 0.0
    built_stages: list[str] = field(default_factory=list)
    #: Seconds each stage took to build: now, or when the stage cache's entry was made.
    stage_seconds: dict[str, float] = field(default_factory=dict)


def build_and_compile(
    label: str,
    recipe: Recipe,
    workload: Workload,
    cache: StageCache,
    workdir: Path,
    threads: int = 1,
    build_threads: int = 2,
) -> Built:
    """The recipe's artifact (through the cache) compiled for its backend; a recipe this host
    refuses comes back with the reason instead."""
    import torch

    torch.set_num_threads(build_threads)
    start = time.perf_counter()
    try:
        result = build(recipe, workload, cache, hardware.current(), workdir)
    except CandidateRejected as e:
        return Built(label, recipe, refused=str(e))
    finally:
        torch.set_num_threads(threads)
    artifact = load_artifact(result.path, result.kind)  # type: ignore[arg-type]
    backend = plugins.get_backend(recipe.backend.key)()
    runner = backend.compile(artifact, recipe.backend.config, threads)
    return Built(
        label,
        recipe,
        artifact,
        runner,
        build_s=time.perf_counter() - start,
        built_stages=[e.stage for e in result.events if not e.hit],
        stage_seconds={e.stage: e.saved_seconds if e.hit else e.seconds for e in result.events},
    )


def natural_inputs(workload: Workload, n: int) -> list[tuple[np.ndarray, ...]]:
    """The first ``n`` evaluation samples one by one (batch 1), each cut to its own length by
    the workload's ``trim_batch`` (a sentence at its own length, as sentence-transformers runs
    it), or as they are when the workload has none."""
    import torch

    out = []
    for inputs, _ in workload.evaluation.take(n).batches(1):
        if workload.trim_batch is not None:
            tensors = tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in inputs)
            inputs = tuple(t.numpy() for t in workload.trim_batch(tensors))
        out.append(tuple(inputs))
    return out


def alternate(
    calls: dict[str, Sequence[Callable[[], Any]]],
    rounds: int,
    runs: int,
    warmup: int = 3,
) -> dict[str, list[float]]:
    """Milliseconds per call of each candidate, one value per round.

    Rounds are short, so that the candidates of one round see the same load: in each round
    every candidate runs in turn (the order reversed every other round, so drift hits both
    ends alike), one untimed call first (its caches were the previous candidate's), then
    each of its callables ``runs`` times; the median per callable is kept and averaged over
    its callables (one callable: the latency shape; many: one per sentence).
    """
    for fns in calls.values():
        for fn in fns:
            for _ in range(warmup):
                fn()
    out: dict[str, list[float]] = {label: [] for label in calls}
    labels = list(calls)
    for r in range(rounds):
        for label in labels if r % 2 == 0 else reversed(labels):
            fns = calls[label]
            fns[0]()
            medians = []
            for fn in fns:
                samples = []
                for _ in range(runs):
                    start = time.perf_counter_ns()
                    fn()
                    samples.append(time.perf_counter_ns() - start)
                medians.append(statistics.median(samples))
            out[label].append(statistics.fmean(medians) / 1e6)
    return out


def paired_speedup(baseline: list[float], candidate: list[float]) -> float:
    """The median over rounds of baseline / candidate, each ratio taken within one round."""
    return statistics.median(b / c for b, c in zip(baseline, candidate, strict=True))


def recipe(backend: str, quantization=None, backend_config=None, distillation=None) -> Recipe:
    """An fp32 recipe on ``backend.<backend>``; ``quantization`` is ``(key, config)``,
    ``distillation`` a ``distillation.kd`` config."""
    return Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step(f"backend.{backend}", backend_config),
        quantization=make_step(*quantization) if quantization else None,
        distillation=make_step("distillation.kd", distillation) if distillation else None,
    )


def grouped_table(
    built: dict[str, Built], groups: dict[str, str], width: int, row: Callable[[str, Built], str]
) -> list[str]:
    """A report table's body of ``width`` columns: ``row`` for each built candidate, its
    refusal for the others, an empty row between groups."""
    lines: list[str] = []
    group = None
    for label, b in built.items():
        if groups[label] != group and group is not None:
            lines.append("|" + " |" * width)
        group = groups[label]
        if b.runner is None:
            lines.append(f"| {label} | refused: {b.refused} |" + " |" * (width - 2))
        else:
            lines.append(row(label, b))
    return lines
