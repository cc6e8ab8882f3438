"""Trials as Ray tasks: build anywhere on the target, measure with the node's single slot.

Each trial is two tasks:

* ``build`` (``build_threads`` CPUs, the target's resources): check the recipe and run the
  stages through the shared stage cache; returns the final cache key and the node it ran on.
  Builds are pure, so their worker processes are reused (saves the interpreter start-up).
* ``measure`` (pinned to that node, holding its ``autoopt_measure`` slot), in a fresh worker
  process (``max_calls=1``) so that no thread pool, allocator state or memory high-water mark
  leaks from one candidate into another: compile for the backend, verify against the teacher,
  score, time. Builds may overlap on a node; two measurements never do.

A worker that dies (killed, out of memory, node lost) is retried up to ``max_retries`` times;
a phase that runs past its trial's limit is cancelled and the trial fails with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from autoopt.execution._base import Executor, Failure, Finished, Phase, TrialTask
from autoopt.execution.cluster import MEASURE_SLOT, split_resources
from autoopt.execution.worker import build_candidate, measure_candidate

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Running:
    task: TrialTask
    timeout_s: float | None
    phase: Phase = "build"
    started: float = 0.0
    attempts: int = 0
    built: dict[str, Any] | None = None


class RayExecutor(Executor):
    def __init__(
        self, target: Any, threads: int = 1, build_threads: int = 1, max_retries: int = 1
    ) -> None:
        import ray

        self._target = target
        self._threads = threads
        self._build_threads = build_threads
        self._max_retries = max_retries
        self._build = ray.remote(build_candidate)
        self._measure = ray.remote(max_calls=1)(measure_candidate)
        self._running: dict[Any, _Running] = {}

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def submit(self, task: TrialTask, timeout_s: float | None) -> None:
        self._start(_Running(task, timeout_s))

    def poll(self, timeout_s: float) -> list[Finished]:
        import ray

        done: list[Finished] = []
        if self._running:
            ready, _ = ray.wait(list(self._running), num_returns=1, timeout=timeout_s)
            for ref in ready:
                finished = self._collect(ref, self._running.pop(ref))
                if finished is not None:
                    done.append(finished)
        done.extend(self._expired())
        return done

    def call(self, fn: Callable[..., T], *args: Any, timeout_s: float) -> T:
        import ray

        options = split_resources({**self._target.task_resources, MEASURE_SLOT: 1})
        if self._target.labels:
            options["label_selector"] = dict(self._target.labels)
        task = ray.remote(max_calls=1)(fn).options(
            num_cpus=self._threads, max_retries=0, name=getattr(fn, "__name__", "call"), **options
        )
        ref = task.remote(*args)
        try:
            return ray.get(ref, timeout=timeout_s)  # type: ignore[no-any-return]
        except ray.exceptions.GetTimeoutError:
            _cancel(ref)
            raise

    def cancel_all(self, reason: str) -> list[Finished]:
        out = []
        for ref, run in list(self._running.items()):
            _cancel(ref)
            out.append(self._failed(run, run.phase, reason))
        self._running.clear()
        return out

    # ---- one trial's tasks ---------------------------------------------------------------
    def _start(self, run: _Running) -> None:
        if run.phase == "build" or run.built is None:
            run.phase = "build"
            ref = self._build.options(
                num_cpus=self._build_threads,
                max_retries=0,
                name=f"build-{run.task.trial_number}",
                **self._placement(),
            ).remote(run.task)
        else:
            ref = self._submit_measure(run.task, run.built)
        run.started = time.monotonic()
        self._running[ref] = run

    def _submit_measure(self, task: TrialTask, built: dict[str, Any]) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options = split_resources({**self._target.task_resources, MEASURE_SLOT: 1})
        strategy = NodeAffinitySchedulingStrategy(node_id=built["node_id"], soft=False)
        return self._measure.options(
            num_cpus=self._threads,
            scheduling_strategy=strategy,
            max_retries=0,
            name=f"measure-{task.trial_number}",
            **options,
        ).remote(task, built)

    def _placement(self) -> dict[str, Any]:
        options = split_resources(self._target.task_resources)
        if self._target.labels:
            options["label_selector"] = dict(self._target.labels)
        return options

    def _collect(self, ref: Any, run: _Running) -> Finished | None:
        """The result of a finished task: the trial's end, or None when it goes on (built, so
        now measured; or retried after its worker died)."""
        import ray

        try:
            result = ray.get(ref, timeout=60)
        except (
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.ObjectLostError,
            ray.exceptions.OutOfMemoryError,
        ) as e:
            if run.attempts < self._max_retries:
                run.attempts += 1
                log.warning(
                    "trial %d: worker lost (%s); retrying", run.task.trial_number, type(e).__name__
                )
                self._start(run)
                return None
            reason = f"worker lost {run.attempts + 1} times: {type(e).__name__}: {e}"
            return self._failed(run, run.phase, reason)
        except ray.exceptions.TaskCancelledError:
            return self._failed(run, run.phase, "task cancelled")
        except ray.exceptions.RayError as e:
            return self._failed(run, run.phase, f"{type(e).__name__}: {e}")
        if "error" in result:
            err = result["error"]
            failure = Failure(
                err["stage"],
                err["reason"],
                bool(err["rejected"]),
                err.get("below_floor"),
                own=True,
            )
            return Finished(
                run.task.trial_number, run.phase, run.built, None, failure, run.attempts
            )
        if run.phase == "build":
            run.built, run.phase = result, "measure"
            self._start(run)
            return None
        return Finished(run.task.trial_number, "measure", run.built, result, None, run.attempts)

    def _expired(self) -> list[Finished]:
        now = time.monotonic()
        out = []
        for ref, run in list(self._running.items()):
            if run.timeout_s is not None and now - run.started > run.timeout_s:
                _cancel(ref)
                del self._running[ref]
                reason = (
                    f"{run.phase} exceeded the per-trial timeout of {run.timeout_s:g}s and was "
                    "cancelled"
                )
                out.append(self._failed(run, run.phase, reason))
        return out

    @staticmethod
    def _failed(run: _Running, stage: str, reason: str) -> Finished:
        return Finished(
            run.task.trial_number, run.phase, run.built, None, Failure(stage, reason), run.attempts
        )


def _cancel(ref: Any) -> None:
    import ray

    try:
        ray.cancel(ref, force=True)
    except Exception:  # noqa: BLE001 - already finished or gone
        pass
