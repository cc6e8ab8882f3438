"""The experiment schema: what one sweep optimizes, under which constraint and budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from autoopt.config._space import SearchSpace
from autoopt.config._strict import Strict

Objective = Literal[
    "accuracy", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "size_mb", "peak_memory_mb"
]
#: Optuna direction of each objective; "accuracy" is the workload's metric (higher is better).
OBJECTIVE_DIRECTIONS: dict[str, str] = {
    "accuracy": "maximize",
    "latency_p50_ms": "minimize",
    "latency_p90_ms": "minimize",
    "latency_p99_ms": "minimize",
    "size_mb": "minimize",
    "peak_memory_mb": "minimize",
}
DEFAULT_STORAGE = "sqlite:///results/studies.db"


class WorkloadRef(Strict):
    """A bundled workload name (``digits_cnn``) or an entry point ``package.module:function``."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


class AccuracyConstraint(Strict):
    """The accuracy floor: the metric may drop at most ``max_drop`` below the baseline's."""

    max_drop: float = Field(ge=0.0)
    mode: Literal["absolute", "relative"] = "absolute"

    def floor(self, baseline: float) -> float:
        if self.mode == "relative":
            return baseline * (1.0 - self.max_drop)
        return baseline - self.max_drop


class Budget(Strict):
    n_trials: int | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    #: What the trials still running at ``timeout_s`` do. ``cancel`` (the default) ends the
    #: run at its time budget: they are stopped, recorded as failed and queued again for the
    #: next run of the study, which the stage cache lets resume from their finished stages.
    #: ``finish`` lets them complete (Optuna's ``optimize(timeout=...)``), so a run may
    #: overrun by up to ``execution.trial_timeout_s``.
    at_timeout: Literal["cancel", "finish"] = "cancel"

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if self.n_trials is None and self.timeout_s is None:
            raise ValueError("give 'n_trials', 'timeout_s' or both")
        return self


class SamplerConfig(Strict):
    name: Literal["tpe", "nsga2", "random", "grid"] = "tpe"
    seed: int | None = 0
    #: After each trial, pair every trained model (distillation, pruning) on the
    #: accuracy/latency front with the post-training settings (quantization, precision,
    #: backend) of up to this many front members, most accurate first; they run before the
    #: sampler's next proposal. 0 leaves the search to the sampler alone.
    recombine: int = Field(default=0, ge=0, le=100)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


class LatencyConfig(Strict):
    batch_size: int = Field(default=1, ge=1)
    threads: int = Field(default=1, ge=1)
    warmup: int = Field(default=20, ge=0)
    runs: int = Field(default=200, ge=10)
    extra_batch_sizes: list[int] = Field(default_factory=list)
    #: Time each candidate in alternating rounds with the baseline (the teacher on PyTorch
    #: eager) in the same process, and record its speedup as the ratio of their times there:
    #: a ratio measured under one load, whatever the host is doing (see autoopt.pairing).
    paired: bool = True
    #: Rounds the ``runs`` calls of each runner are split into; each round times a block of
    #: ``runs / rounds`` calls of one runner, then of the other, the order alternating. Blocks
    #: of a few calls: finer alternation pairs better, but every switch costs the first call
    #: its caches (see results/paired/benchmark.md). More rounds than ``runs`` alternate call
    #: by call.
    rounds: int = Field(default=20, ge=1)

    @field_validator("extra_batch_sizes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(b < 1 for b in v):
            raise ValueError(f"batch sizes must be >= 1, got {v}")
        return v


class ExecutionConfig(Strict):
    workers: int = Field(default=1, ge=1)
    #: A candidate's build or measurement that runs longer is cancelled (the trial fails).
    trial_timeout_s: float = Field(default=900.0, gt=0)
    #: The baseline's own limit (None: none). Every ratio and the constraint need the
    #: baseline, so a limit sized for candidates must not end the sweep through it.
    baseline_timeout_s: float | None = Field(default=None, gt=0)
    #: Self-test every path the space can produce on the target before any candidate is
    #: built (cached per host): a path that computes wrong results there is refused.
    self_test: bool = True
    self_test_timeout_s: float = Field(default=3600.0, gt=0)
    #: Retries of a trial whose worker process died (not of a candidate that raised).
    max_retries: int = Field(default=1, ge=0)
    #: CPUs each build task holds, and the threads its training uses. Measurement keeps
    #: ``latency.threads``. With one worker on a small host, a build can use every core.
    build_threads: int = Field(default=1, ge=1)


class Target(Strict):
    """A hardware target: what a Ray node must have to build and measure its trials.

    Latency is a property of (candidate, target), so each target gets its own study
    (``<experiment>@<target>`` when an experiment names more than one).
    """

    name: str = Field(default="local", pattern=r"^[A-Za-z0-9_.-]+$")
    #: Where candidates run and are timed (and models train): the host's CPU, or its first
    #: NVIDIA GPU. A ``cuda`` target's tasks also ask Ray for one GPU each.
    device: Literal["cpu", "cuda"] = "cpu"
    #: Ray resources a node must offer, e.g. ``{GPU: 1}`` or ``{xeon_amx: 1}``.
    resources: dict[str, float] = Field(default_factory=dict)
    #: Ray node labels a node must carry (``ray start --labels``), e.g. ``{cpu: sapphire-rapids}``.
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("resources")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if x <= 0}
        if bad:
            raise ValueError(f"resource amounts must be > 0, got {bad}")
        return v

    @property
    def task_resources(self) -> dict[str, float]:
        """What each of its Ray tasks holds: ``resources``, plus one GPU on a ``cuda`` target
        unless ``resources`` names a GPU amount itself."""
        if self.device == "cuda" and "GPU" not in self.resources:
            return {**self.resources, "GPU": 1.0}
        return dict(self.resources)


class VerifyConfig(Strict):
    """A built candidate must run and relate to the teacher on reference inputs before it is
    scored and timed."""

    reference_samples: int = Field(default=64, ge=2)
    #: An extra floor on the top-1 match rate (or mean cosine for embeddings) with the teacher
    #: on the reference inputs, below which a candidate fails verification. 0: none; a
    #: candidate fails only when its outputs are unrelated to the teacher's
    #: (:mod:`autoopt.related`), and an inaccurate one is measured, so the search learns.
    min_agreement: float = Field(default=0.0, ge=0.0, le=1.0)


class SeedCandidate(Strict):
    """A fixed candidate measured first, e.g. a standard recipe to compare the search with.

    ``params`` must give every parameter that is active for it, with values the space allows.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    params: dict[str, Any]


class Experiment(Strict):
    name: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$")
    description: str = ""
    workload: WorkloadRef
    search_space: str | SearchSpace
    objectives: list[Objective] = Field(default_factory=lambda: ["accuracy", "latency_p50_ms"])
    constraint: AccuracyConstraint
    budget: Budget
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    targets: list[Target] = Field(default_factory=lambda: [Target()])
    #: Candidates enqueued right after the baseline when the study is created.
    seed_candidates: list[SeedCandidate] = Field(default_factory=list)
    storage: str = DEFAULT_STORAGE
    cache_dir: str = "results/cache"
    results_dir: str = "results"
    plugins: list[str] = Field(default_factory=list)

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one objective is needed")
        if len(set(v)) != len(v):
            raise ValueError(f"objectives repeat: {v}")
        return v

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[Target]) -> list[Target]:
        if not v:
            raise ValueError("at least one target is needed (omit 'targets' for the local CPU)")
        names = [t.name for t in v]
        if len(set(names)) != len(names):
            raise ValueError(f"target names repeat: {names}")
        return v

    def study_name(self, target: Target) -> str:
        """One study per target; a single target keeps the experiment's own name."""
        return self.name if len(self.targets) == 1 else f"{self.name}@{target.name}"

    @property
    def space(self) -> SearchSpace:
        if not isinstance(self.search_space, SearchSpace):
            raise RuntimeError("search space not resolved; load experiments with load_experiment")
        return self.search_space

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def task_cpus(self) -> int:
        """CPUs a node must offer one task: the larger of a build's and a measurement's."""
        return max(self.execution.build_threads, self.latency.threads)

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVE_DIRECTIONS[o] for o in self.objectives]
