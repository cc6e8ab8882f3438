"""Running the self-test: every path of a space on the probe, against the fp32 probe.

Ray-free and in-process, so a caller can wrap :func:`run_selftest` in a Ray task pinned to
the node it tests. Each path is checked like a candidate (``check_recipe``: a refusal is
recorded, not run), built by the normal pipeline from the probe workload, compiled by its
backend, run at every batch size the probe was caught at, compared with the fp32 probe and
timed against fp32 eager in alternating rounds. Results are cached per host and context
(:mod:`._store`); a path whose result is cached is neither built nor run.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from autoopt import hardware, plugins
from autoopt.cache import StageCache, code_version
from autoopt.errors import CandidateRejected
from autoopt.pipeline import build, check_recipe, make_context
from autoopt.selftest import _block, _paths, _probe, _verdict
from autoopt.selftest._host import HostInfo, current_host
from autoopt.selftest._result import BatchResult, PathResult, Status
from autoopt.selftest._store import ResultStore, digest
from autoopt.workloads import cosine_similarity

if TYPE_CHECKING:
    from autoopt.artifacts import ArtifactKind
    from autoopt.config import LatencyConfig, SearchSpace, VerifyConfig
    from autoopt.plugins import Runner
    from autoopt.recipe import Recipe
    from autoopt.workloads import Workload

log = logging.getLogger(__name__)
#: Paired timing: rounds of (fp32 eager, path) at the latency batch size, runs per round.
TIMING_ROUNDS = 3
TIMING_RUNS = 10
TIMING_WARMUP = 3


def run_selftest(
    workload: Workload,
    space: SearchSpace,
    latency_config: LatencyConfig,
    verify_config: VerifyConfig,
    device: str = "cpu",
    refresh: bool = False,
    *,
    on_result: Callable[[PathResult], None] | None = None,
) -> list[PathResult]:
    """Self-test every path of ``space`` on a probe cut from ``workload``'s teacher.

    Args:
        workload: the experiment's workload; its teacher gives the probe.
        space: the search space whose paths are tested (:func:`enumerate_paths`).
        latency_config: the batch sizes (the probe is caught at each) and threads.
        verify_config: ``reference_samples``, the batch verification runs at.
        device: "cpu" or "cuda", as the experiment's target.
        refresh: run every path again, ignoring (and then replacing) cached results.
        on_result: called with each path's result as soon as it is known.

    Returns:
        One result per path, baseline first, in :func:`enumerate_paths`'s order.
    """
    paths = _paths.enumerate_paths(space)
    host = current_host(device)
    sizes = _probe.probe_batch_sizes(latency_config, verify_config, len(workload.evaluation))
    store = ResultStore(_context(host, workload, sizes, latency_config.threads))
    cached = {} if refresh else store.load()
    session: _Session | None = None
    results: list[PathResult] = []
    with tempfile.TemporaryDirectory(prefix="autoopt-selftest-") as scratch:
        for recipe in paths:
            key = _entry_key(recipe)
            if key in cached:
                result = replace(cached[key], cached=True)
            else:
                refusal = _refusal(recipe, workload, device)
                if refusal is not None:
                    result = _result(recipe, "refused", refusal, host)
                else:
                    if session is None:
                        session = _Session.open(
                            workload, sizes, latency_config, host, device, scratch
                        )
                    result = session.run(recipe)
                store.save([(key, result)])
            log.info("self-test %s: %s %s", result.label, result.status, result.reason)
            if on_result is not None:
                on_result(result)
            results.append(result)
    return results


def _context(
    host: HostInfo, workload: Workload, sizes: Sequence[int], threads: int
) -> dict[str, Any]:
    """What every cached result of one file shares (see :mod:`._store`)."""
    return {
        "host": host.fingerprint(),
        "probe": _probe.probe_identity(workload, sizes),
        "threads": threads,
        "selftest_code": [
            code_version(m) for m in (_block, _paths, _probe, _verdict, sys.modules[__name__])
        ],
    }


def _entry_key(recipe: Recipe) -> str:
    """The path's key plus the code of its methods: editing a backend re-tests its paths."""
    steps = [s for s in (recipe.backend, recipe.precision, recipe.quantization) if s is not None]
    return digest(
        {
            "path": _paths.path_key(recipe),
            "code": {s.key: code_version(plugins.get(s.key)) for s in steps},
        }
    )


def _refusal(recipe: Recipe, workload: Workload, device: str) -> str | None:
    """The reason ``check_recipe`` refuses the path on this host, checked as a candidate of
    the real workload would be, or None."""
    ctx = make_context(recipe, workload, hardware.current(), device=device)
    try:
        check_recipe(recipe, ctx)
    except CandidateRejected as e:
        return str(e)
    return None


def _result(
    recipe: Recipe, status: Status, reason: str, host: HostInfo, **measured: Any
) -> PathResult:
    """The record of one path: its identity and thresholds, with what was measured."""
    cls = _verdict.precision_class(recipe)
    threshold = _verdict.THRESHOLDS[cls]
    return PathResult(
        key=_paths.path_key(recipe),
        label=_paths.describe_path(recipe),
        recipe=recipe.to_dict(),
        status=status,
        reason=reason,
        precision_class=cls,
        threshold_mean=threshold.mean,
        threshold_min=threshold.min,
        host=host.describe(),
        versions=dict(host.versions),
        **measured,
    )


@dataclass
class _Session:
    """The probes and their fp32 eager runners, made on first use for the paths not cached:
    the block probe, and the whole model for a path the block cannot be built for."""

    workload: Workload
    sizes: Sequence[int]
    latency: LatencyConfig
    host: HostInfo
    device: str
    scratch: Path
    #: The probes' stages are throwaway: a private stage cache, never the experiment's.
    cache: StageCache
    #: Per ``whole``: the probe and its fp32 eager runner, or why it cannot be built.
    probes: dict[bool, tuple[_probe.Probe, Runner] | str] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        workload: Workload,
        sizes: Sequence[int],
        latency: LatencyConfig,
        host: HostInfo,
        device: str,
        scratch: str,
    ) -> _Session:
        root = Path(scratch)
        return cls(workload, sizes, latency, host, device, root, StageCache(root / "stages"))

    def _probe(self, whole: bool) -> tuple[_probe.Probe, Runner] | str:
        if whole not in self.probes:
            from autoopt.artifacts import TorchArtifact
            from autoopt.backends.torch_eager import TorchEagerBackend

            try:
                probe = _probe.build_probe(self.workload, self.sizes, whole=whole)
            except Exception as e:  # noqa: BLE001 - a probe that cannot be cut is a finding
                self.probes[whole] = f"the probe cannot be cut: {_first_line(e)}"
            else:
                log.info("self-test probe: %s", probe.describe())
                baseline = TorchEagerBackend().compile(
                    TorchArtifact(probe.workload.model),
                    TorchEagerBackend.Config(),
                    self.latency.threads,
                    self.device,
                )
                self.probes[whole] = (probe, baseline)
        return self.probes[whole]

    def run(self, recipe: Recipe) -> PathResult:
        """The path on the block probe; where it cannot be built or run there, on the whole
        model (a BERT fusion needs the model's attention-mask subgraph, for example)."""
        first = self._run_on(recipe, whole=False)
        block = self.probes.get(False)
        if first.status != "inconclusive" or (isinstance(block, tuple) and not block[0].block):
            return first
        second = self._run_on(recipe, whole=True)
        if second.status == "inconclusive":
            return replace(first, reason=f"{first.reason}; on the whole model: {second.reason}")
        where = first.probe or "the blocks"
        note = f"ran on the whole model: on {where}, {first.reason}"
        return replace(second, notes=(note, *second.notes))

    def _run_on(self, recipe: Recipe, whole: bool) -> PathResult:
        import torch

        from autoopt.artifacts import load_artifact

        got = self._probe(whole)
        if isinstance(got, str):
            return _result(recipe, "inconclusive", got, self.host)
        probe, baseline = got
        # Dynamo keeps compiled code per code object, and every probe shares its forward:
        # without a reset, later paths would hit its recompile limit and silently run eager.
        torch._dynamo.reset()
        start = time.perf_counter()
        extra = {"probe": probe.label}
        stage = "build"
        try:
            with tempfile.TemporaryDirectory(dir=self.scratch) as workdir:
                built = build(
                    recipe, probe.workload, self.cache, hardware.current(), Path(workdir),
                    device=self.device,
                )  # fmt: skip
                stage = "compile"
                artifact = load_artifact(built.path, cast("ArtifactKind", built.kind))
                backend = plugins.get_backend(recipe.backend.key)()
                runner = backend.compile(
                    artifact, recipe.backend.config, self.latency.threads, self.device
                )
                stage = "run"
                with _worst_autotune_choice(recipe):
                    outputs, mutated = _outputs(runner, probe)
                    batches = tuple(_compare(outputs, probe))
                speedup = _speedup(runner, baseline, probe, self.latency.batch_size)
        except CandidateRejected as e:
            return _result(recipe, "refused", str(e), self.host, **extra)
        except Exception as e:  # noqa: BLE001 - whatever stops the probe says nothing of numerics
            return _result(
                recipe,
                "inconclusive",
                f"{stage} failed on the probe: {type(e).__name__}: {_first_line(e)}",
                self.host,
                seconds=time.perf_counter() - start,
                **extra,
            )
        finally:
            # ONNX Runtime's flush_denormals sets FTZ/DAZ on this thread, where it would speed
            # up every later path's denormals: back to a fresh process's state.
            torch.set_flush_denormal(False)
        return _judged(
            recipe,
            batches,
            self.host,
            speedup=speedup,
            seconds=time.perf_counter() - start,
            mutated=mutated,
            **extra,
        )


def _judged(
    recipe: Recipe,
    batches: tuple[BatchResult, ...],
    host: HostInfo,
    *,
    speedup: float | None,
    seconds: float,
    mutated: bool,
    **extra: Any,
) -> PathResult:
    """The path's verdict from its comparison with the fp32 probe at every batch size."""
    threshold = _verdict.THRESHOLDS[_verdict.precision_class(recipe)]
    status, reason = _verdict.judge(batches, threshold)
    notes = (
        (
            "it wrote into its input arrays (harmless here: each call got a copy; a caller "
            "reusing its buffers would see them change)",
        )
        if mutated
        else ()
    )
    return _result(
        recipe,
        status,
        reason,
        host,
        mean_cosine=min(b.mean_cosine for b in batches),
        min_cosine=min(b.min_cosine for b in batches),
        nonfinite=sum(b.nonfinite for b in batches),
        batches=batches,
        speedup=speedup,
        seconds=seconds,
        notes=notes,
        **extra,
    )


@contextlib.contextmanager
def _worst_autotune_choice(recipe: Recipe) -> Iterator[None]:
    """Under max-autotune, Inductor picks each GEMM's kernel by timing it, so a sweep may get
    a kernel this run did not: the probe compiles with the C++ GEMM template wherever it
    applies (where torch 2.13's known failure lives) rather than trust one timing draw."""
    config = recipe.backend.config
    mode = str(getattr(config, "mode", ""))
    if recipe.backend.key != "backend.torch_compile" or not mode.startswith("max-autotune"):
        yield
        return
    from torch._inductor import config as inductor_config

    with inductor_config.patch({"max_autotune_gemm_backends": "CPP"}):
        yield


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _outputs(runner: Runner, probe: _probe.Probe) -> tuple[np.ndarray, bool]:
    """The path's outputs on the probe's evaluation rows, each group at its batch size, and
    whether the path wrote into the arrays it was given."""
    split = probe.workload.evaluation
    outs = []
    mutated = False
    for group in probe.groups:
        for start in range(group.start, group.stop, group.batch_size):
            given = [x[start : start + group.batch_size] for x in split.inputs]
            # Copies: a compiled graph may write into its inputs (PT2E int8 under Inductor's
            # freezing overwrote a BertLayer's hidden_states here), which would change what
            # every later path is fed.
            batch = [np.array(x) for x in given]
            outs.append(np.asarray(runner.run(batch)))
            mutated |= any(a.tobytes() != x.tobytes() for a, x in zip(batch, given, strict=True))
    out = np.concatenate(outs)
    if out.shape != probe.reference.shape:
        raise ValueError(
            f"output shape {out.shape} differs from the fp32 probe's {probe.reference.shape}"
        )
    return out, mutated


def _compare(outputs: np.ndarray, probe: _probe.Probe) -> list[BatchResult]:
    results = []
    for group in probe.groups:
        out = outputs[group.start : group.stop]
        ref = probe.reference[group.start : group.stop]
        finite = np.isfinite(out)
        cos = cosine_similarity(ref, np.where(finite, out, 0.0))
        results.append(
            BatchResult(
                batch_size=group.batch_size,
                shapes=probe.shapes(group.batch_size),
                samples=len(out),
                mean_cosine=float(np.mean(cos)),
                min_cosine=float(np.min(cos)),
                nonfinite=int(np.size(out) - np.count_nonzero(finite)),
            )
        )
    return results


def _speedup(
    runner: Runner, baseline: Runner, probe: _probe.Probe, batch_size: int
) -> float | None:
    """fp32 eager's median latency over the path's, in alternating rounds so that both see
    the same load; None if the path cannot be timed (the ratio is information only)."""
    from autoopt.measure import time_callable

    inputs = probe.workload.example_inputs(batch_size)
    try:
        candidate, reference = runner.timed(inputs), baseline.timed(inputs)
        ratios = []
        for _ in range(TIMING_ROUNDS):
            base = time_callable(reference, TIMING_WARMUP, TIMING_RUNS).p50_ms
            mine = time_callable(candidate, TIMING_WARMUP, TIMING_RUNS).p50_ms
            ratios.append(base / mine)
    except Exception as e:  # noqa: BLE001 - a path that runs but cannot be timed still has numbers
        log.warning("self-test: timing failed: %s: %s", type(e).__name__, e)
        return None
    return float(np.median(ratios))
