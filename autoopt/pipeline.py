"""Building a candidate: check every step, then run the stages through the stage cache.

Stage order: teacher → distillation → pruning (+ recovery) → [export to the backend's kind
(ONNX, OpenVINO IR), when it serves one, right before the first technique that can work on
that kind] → quantization → precision. Compiling for the backend and measuring happen later,
in :mod:`autoopt.measure`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoopt import registry
from autoopt.artifacts import Artifact, TorchArtifact
from autoopt.cache import StageCache, code_version, stage_key
from autoopt.errors import AutoOptError, CandidateError, CandidateRejected
from autoopt.onnx_export import OnnxExportConfig, export_onnx
from autoopt.techniques._base import Context, Technique

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


def check_recipe(recipe: Recipe, ctx: Context) -> None:
    """Refuse the candidate before anything runs if a step or the backend cannot do it here."""
    if ctx.device == "cuda" and not ctx.hardware.cuda_devices:
        raise CandidateRejected(
            "the target's device is cuda, but PyTorch sees no CUDA device on this host "
            f"({ctx.hardware.cpu_model}, torch {ctx.hardware.versions.get('torch', '?')})",
            stage="check",
        )
    backend_cls = registry.get(recipe.backend.key)
    reason = backend_cls.unavailable_reason()  # type: ignore[union-attr]
    if reason:
        raise CandidateRejected(f"{recipe.backend.key}: {reason}", stage="check")
    backend = backend_cls()
    reason = backend.check(recipe.backend.parsed(), ctx)  # type: ignore[union-attr, call-arg]
    if reason:
        raise CandidateRejected(f"{recipe.backend.key}: {reason}", stage="check")
    for step in recipe.techniques():
        technique = registry.get(step.key)()
        accepts = technique.accepts  # type: ignore[union-attr]
        if ctx.backend_kind not in accepts and "torch" not in accepts:
            raise CandidateRejected(
                f"{step.key}: works on {'/'.join(accepts)} models, but {recipe.backend.key} "
                f"serves {ctx.backend_kind}",
                stage="check",
            )
        reason = technique.check(step.parsed(), ctx)  # type: ignore[union-attr, call-arg]
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
    ctx = Context(
        workload=workload,
        recipe=recipe,
        hardware=hardware,
        workdir=workdir,
        seed=seed,
        device=device,
    )
    check_recipe(recipe, ctx)
    events: list[StageEvent] = []

    key = stage_key("", f"teacher:{workload.name}", {"version": workload.version}, "")
    entry = cache.lookup(key) or cache.publish(
        key, TorchArtifact(workload.model), {"stage": "teacher", "seconds": 0.0}
    )
    artifact: Artifact | None = None  # loaded lazily: a cache hit further on skips it

    def current() -> Artifact:
        nonlocal artifact
        if artifact is None:
            artifact = entry.load()
        return artifact

    def run_stage(name: str, config: dict[str, Any], code: str, fn: Any) -> None:
        nonlocal key, entry, artifact
        next_key = stage_key(key, name, config, code)
        hit = cache.lookup(next_key)
        if hit is None:
            with cache.building(next_key):
                hit = cache.lookup(next_key)  # published by a builder we waited for
                if hit is None:
                    build_stage(name, config, next_key, fn)
                    return
        saved = float(hit.meta.get("seconds", 0.0))
        events.append(StageEvent(name, next_key, True, 0.0, saved))
        key, entry, artifact = next_key, hit, None

    def build_stage(name: str, config: dict[str, Any], next_key: str, fn: Any) -> None:
        nonlocal key, entry, artifact
        start = time.perf_counter()
        try:
            produced = fn(current())
        except AutoOptError:
            raise
        except Exception as e:  # noqa: BLE001 - a technique crash fails this candidate only
            raise CandidateError(f"{name} failed: {type(e).__name__}: {e}", stage=name) from e
        seconds = time.perf_counter() - start
        if produced is artifact:  # identity stage (e.g. fp32): nothing new to cache
            return
        entry = cache.publish(
            next_key,
            produced,
            {"stage": name, "config": config, "parent": key, "seconds": seconds},
        )
        events.append(StageEvent(name, next_key, False, seconds))
        key, artifact = next_key, produced

    # What the backend serves, when that is not the PyTorch module every model starts as.
    target = ctx.backend_kind if ctx.backend_kind != "torch" else None
    for step in recipe.techniques():
        cls = registry.get(step.key)
        technique = cls()
        assert isinstance(technique, Technique)  # noqa: S101 - recipe.techniques() holds no backend
        config = step.parsed()
        if (
            target is not None
            and target in technique.accepts
            and _kind(entry) != target  # type: ignore[union-attr]
            and not technique.needs_torch(config)
        ):
            _export(run_stage, target, workload, workdir)
        run_stage(
            step.key,
            step.params,
            code_version(cls),
            lambda a, t=technique, c=config: t.apply(a, c, ctx),
        )
    if target is not None and _kind(entry) != target:
        _export(run_stage, target, workload, workdir)
    return BuildResult(key=key, path=entry.path, kind=_kind(entry), events=events)


def _kind(entry: Any) -> str:
    return str(entry.meta["kind"])


def _export(run_stage: Any, kind: str, workload: Workload, workdir: Path) -> None:
    if kind == "openvino":
        from autoopt import openvino_export

        run_stage(
            openvino_export.STAGE,
            openvino_export.stage_config(),
            code_version(openvino_export.export_openvino),
            lambda a: openvino_export.export_openvino(
                a, workload, workdir / "exported-openvino" / "model.xml"
            ),
        )
        return
    config = OnnxExportConfig()
    run_stage(
        EXPORT_STAGE,
        config.model_dump(),
        code_version(export_onnx),
        lambda a: export_onnx(a, workload, workdir / "exported.onnx", config.opset),
    )
