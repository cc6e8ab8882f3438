"""Building a candidate: check every step, then run the stages through the stage cache.

Stage order: teacher → distillation → pruning (+ recovery) → [export to the backend's kind
(ONNX, OpenVINO IR), when it serves one, right before the first technique that can work on
that kind] → quantization → precision. Compiling for the backend and measuring happen later,
in :mod:`autoopt.measure`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoopt import plugins
from autoopt.artifacts import Artifact, TorchArtifact
from autoopt.cache import CacheEntry, StageCache, code_version, stage_key
from autoopt.errors import AutoOptError, CandidateError, CandidateRejected
from autoopt.onnx_export import OnnxExportConfig, export_onnx
from autoopt.plugins import Context, MethodConfig, Technique

if TYPE_CHECKING:
    from autoopt.hardware import Hardware
    from autoopt.recipe import Recipe
    from autoopt.workloads import Workload

log = logging.getLogger(__name__)
EXPORT_STAGE = "export.onnx"


@dataclass(frozen=True)
class StageEvent:
    """One stage of one build: built now, or reused from the cache (and how long that saved)."""

    stage: str
    key: str
    hit: bool
    seconds: float
    saved_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "key": self.key,
            "hit": self.hit,
            "seconds": round(self.seconds, 3),
            "saved_seconds": round(self.saved_seconds, 3),
        }


@dataclass(frozen=True)
class BuildResult:
    key: str
    path: Path
    kind: str
    events: list[StageEvent] = field(default_factory=list)

    @property
    def hits(self) -> int:
        return sum(e.hit for e in self.events)

    @property
    def saved_seconds(self) -> float:
        return sum(e.saved_seconds for e in self.events)


def make_context(
    recipe: Recipe,
    workload: Workload,
    hardware: Hardware,
    *,
    workdir: Path = Path("."),
    seed: int = 0,
    device: str = "cpu",
) -> Context:
    """What the recipe's steps read while they check or build, on ``device``."""
    return Context(
        workload,
        recipe,
        hardware,
        workdir,
        seed,
        device,
        backend_kind=plugins.get_backend(recipe.backend.key).artifact_kind,
    )


def check_recipe(recipe: Recipe, ctx: Context) -> None:
    """Refuse the candidate before anything runs if a step or the backend cannot do it here."""
    if ctx.device == "cuda" and not ctx.hardware.cuda_devices:
        raise CandidateRejected(
            "the target's device is cuda, but PyTorch sees no CUDA device on this host "
            f"({ctx.hardware.cpu_model}, torch {ctx.hardware.versions.get('torch', '?')})",
            stage="check",
        )
    backend_cls = plugins.get_backend(recipe.backend.key)
    reason = backend_cls.unavailable_reason()
    if reason:
        raise CandidateRejected(f"{recipe.backend.key}: {reason}", stage="check")
    reason = backend_cls().check(recipe.backend.config, ctx)
    if reason:
        raise CandidateRejected(f"{recipe.backend.key}: {reason}", stage="check")
    for step in recipe.techniques():
        technique = plugins.get_technique(step.key)()
        accepts = technique.accepts
        if ctx.backend_kind not in accepts and "torch" not in accepts:
            raise CandidateRejected(
                f"{step.key}: works on {'/'.join(accepts)} models, but {recipe.backend.key} "
                f"serves {ctx.backend_kind}",
                stage="check",
            )
        reason = technique.check(step.config, ctx)
        if reason:
            raise CandidateRejected(f"{step.key}: {reason}", stage="check")


def build(
    recipe: Recipe,
    workload: Workload,
    cache: StageCache,
    hardware: Hardware,
    workdir: Path,
    seed: int = 0,
    device: str = "cpu",
) -> BuildResult:
    """Build ``recipe``'s artifact, reusing every stage the cache already holds. Training
    stages run on ``device``; every cached artifact is stored on the CPU."""
    ctx = make_context(recipe, workload, hardware, workdir=workdir, seed=seed, device=device)
    check_recipe(recipe, ctx)
    stages = _Stages.from_teacher(cache, workload)
    # What the backend serves, when that is not the PyTorch module every model starts as.
    target = ctx.backend_kind if ctx.backend_kind != "torch" else None
    for step in recipe.techniques():
        cls = plugins.get_technique(step.key)
        technique, config = cls(), step.config
        if (
            target is not None
            and target in technique.accepts
            and stages.kind != target
            and not technique.needs_torch(config)
        ):
            _export(stages, target, workload, workdir)
        stages.run(step.key, step.params, code_version(cls), _applying(technique, config, ctx))
    if target is not None and stages.kind != target:
        _export(stages, target, workload, workdir)
    return BuildResult(
        key=stages.key, path=stages.entry.path, kind=stages.kind, events=stages.events
    )


def _applying(
    technique: Technique[Any], config: MethodConfig, ctx: Context
) -> Callable[[Artifact], Artifact]:
    return lambda artifact: technique.apply(artifact, config, ctx)


class _Stages:
    """A build's walk through the stage cache: the last stage's key and entry, its artifact
    (loaded only when a stage has to be built on it), and what every stage cost or saved."""

    def __init__(self, cache: StageCache, key: str, entry: CacheEntry) -> None:
        self.cache, self.key, self.entry = cache, key, entry
        self.artifact: Artifact | None = None
        self.events: list[StageEvent] = []

    @classmethod
    def from_teacher(cls, cache: StageCache, workload: Workload) -> _Stages:
        config = {"version": workload.version, "model_code": workload.model_code}
        key = stage_key("", f"teacher:{workload.name}", config, "")
        entry = cache.lookup(key) or cache.publish(
            key, TorchArtifact(workload.model), {"stage": "teacher", "seconds": 0.0}
        )
        return cls(cache, key, entry)

    @property
    def kind(self) -> str:
        return str(self.entry.meta["kind"])

    def run(
        self, name: str, config: dict[str, Any], code: str, fn: Callable[[Any], Artifact]
    ) -> None:
        """Stage ``name`` on the current artifact: from the cache, or built (once, if several
        builders want it at the same time) and published."""
        next_key = stage_key(self.key, name, config, code)
        hit = self.cache.lookup(next_key)
        if hit is None:
            with self.cache.building(next_key):
                hit = self.cache.lookup(next_key)  # published by a builder we waited for
                if hit is None:
                    self._build(name, config, next_key, fn)
                    return
        saved = float(hit.meta.get("seconds", 0.0))
        self.events.append(StageEvent(name, next_key, True, 0.0, saved))
        self.key, self.entry, self.artifact = next_key, hit, None

    def _build(
        self, name: str, config: dict[str, Any], next_key: str, fn: Callable[[Any], Artifact]
    ) -> None:
        if self.artifact is None:
            self.artifact = self.entry.load()
        start = time.perf_counter()
        try:
            produced = fn(self.artifact)
        except AutoOptError:
            raise
        except Exception as e:  # noqa: BLE001 - a technique crash fails this candidate only
            raise CandidateError(f"{name} failed: {type(e).__name__}: {e}", stage=name) from e
        seconds = time.perf_counter() - start
        if produced is self.artifact:  # identity stage (e.g. fp32): nothing new to cache
            return
        self.entry = self.cache.publish(
            next_key,
            produced,
            {"stage": name, "config": config, "parent": self.key, "seconds": seconds},
        )
        self.events.append(StageEvent(name, next_key, False, seconds))
        self.key, self.artifact = next_key, produced


def _export(stages: _Stages, kind: str, workload: Workload, workdir: Path) -> None:
    if kind == "openvino":
        from autoopt import openvino_export

        stages.run(
            openvino_export.STAGE,
            openvino_export.stage_config(),
            code_version(openvino_export.export_openvino),
            lambda a: openvino_export.export_openvino(
                a, workload, workdir / "exported-openvino" / "model.xml"
            ),
        )
        return
    config = OnnxExportConfig()
    stages.run(
        EXPORT_STAGE,
        config.model_dump(),
        code_version(export_onnx),
        lambda a: export_onnx(a, workload, workdir / "exported.onnx", config.opset),
    )
