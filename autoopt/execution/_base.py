"""The executor interface: how the controller's loop gets trials built and measured.

Lifecycle, driven by the loop (:mod:`autoopt.search.controller`)::

    submit(task, timeout_s)   a trial starts: build, then measure, on the target's hardware
    poll(timeout_s)           the trials that ended since the last poll (measured, failed,
                              refused, or cancelled at their own limit), waiting at most
                              ``timeout_s`` for the first
    cancel_all(reason)        stop every trial in flight (time budget, Ctrl-C): what each had
                              reached, so the loop can record and re-queue them
    call(fn, *args)           one task on the target's hardware with its measurement slot
                              (the host self-test)
    close()                   nothing more will be submitted

The in-flight bookkeeping belongs to the executor: the two phases of a trial, retries of a
trial whose worker died (never of a candidate that raised), each trial's time limit. The loop
sees only :class:`Finished` results, so another executor (a local process pool, Ray Tune's
schedulers) can be written against this interface without touching the loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

Phase = Literal["build", "measure"]
T = TypeVar("T")


@dataclass(frozen=True)
class TrialTask:
    """Everything a worker needs to build and measure one candidate (picklable, no objects)."""

    trial_number: int
    recipe: dict[str, Any]
    workload: str
    workload_options: dict[str, Any]
    cache_dir: str
    latency: dict[str, Any]
    verify: dict[str, Any]
    plugins: list[str] = field(default_factory=list)
    seed: int = 0
    sys_path: list[str] = field(default_factory=list)
    build_threads: int = 1
    #: The target's device: where models train, run and are timed.
    device: str = "cpu"
    #: The floor below which a first slice of the evaluation split stops the measurement
    #: early (None: measure in full; always for the baseline).
    accuracy_floor: float | None = None
    #: The share of its training steps each training stage gets in this build (a rung,
    #: :mod:`autoopt.search.rungs`), and every rung's share: where training checkpoints go.
    fidelity: float = 1.0
    rungs: tuple[float, ...] = ()


@dataclass(frozen=True)
class SelfTestTask:
    """The host self-test of a space's paths, run on the target (picklable, no objects)."""

    workload: str
    workload_options: dict[str, Any]
    space: dict[str, Any]
    latency: dict[str, Any]
    verify: dict[str, Any]
    plugins: list[str] = field(default_factory=list)
    sys_path: list[str] = field(default_factory=list)
    device: str = "cpu"


@dataclass(frozen=True)
class Failure:
    """Why a candidate did not finish: its own error (the trial fails, or is refused when it
    could not run here) or the infrastructure's (a worker lost too often, a time limit)."""

    stage: str
    reason: str
    rejected: bool = False
    #: For a candidate stopped on its first evaluation slice: that slice's figures
    #: (:class:`autoopt.screening.SliceVerdict`).
    below_floor: dict[str, Any] | None = None
    #: The candidate's own error (raised while building or measuring it): the same recipe
    #: fails again. False for the infrastructure's (a worker lost, a time limit, a cancel).
    own: bool = False


@dataclass(frozen=True)
class Finished:
    """A trial that left the executor: built and measured, or stopped with a failure."""

    number: int
    phase: Phase
    #: The build's result (its stage events, cache key, node, seconds), when it got that far.
    built: dict[str, Any] | None = None
    #: The measurement's result (metrics, runner, hardware, node, seconds).
    measured: dict[str, Any] | None = None
    failure: Failure | None = None
    #: Retries after a lost worker.
    attempts: int = 0

    @property
    def stages(self) -> list[dict[str, Any]]:
        return list((self.built or {}).get("events", []))


class Executor(ABC):
    @abstractmethod
    def submit(self, task: TrialTask, timeout_s: float | None) -> None:
        """Start building and measuring a trial; ``timeout_s`` limits each of its phases
        (None: no limit)."""

    @abstractmethod
    def poll(self, timeout_s: float) -> list[Finished]:
        """Trials that ended; waits at most ``timeout_s`` for one."""

    @abstractmethod
    def cancel_all(self, reason: str) -> list[Finished]:
        """Stop every trial in flight; each comes back failed with ``reason``."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """How many trials are being built or measured."""

    @abstractmethod
    def call(self, fn: Callable[..., T], *args: Any, timeout_s: float) -> T:
        """Run ``fn(*args)`` once on the target's hardware, holding its measurement slot (the
        host self-test runs so), and return what it returns; waits at most ``timeout_s``."""

    def close(self) -> None:  # noqa: B027 - optional hook: most executors hold nothing
        """Release what the executor holds."""
