"""Standard starting points, derived from the space, the model and the host.

A user with a new model has no list of known-good recipes to seed a sweep with, and a sampler
needs a dozen trials before it models anything. So, right after the baseline (and any seed
candidates the experiment lists), autoopt measures the recipes a practitioner would try first,
written down from what the space declares and what the host can run:

* ``teacher@<backend>``: the fp32 teacher on each backend the space has besides eager
  (ONNX Runtime, torch.compile, ...);
* ``<int8 method>@<backend>``: the teacher with each int8 method the space declares, per
  channel where the space allows it (the scale per output channel costs a few percent of
  speed and keeps most of the accuracy), on each backend;
* ``<precision>@<backend>``: the reduced precision this host computes natively (bf16 with
  AVX-512 BF16 or AMX, fp16 with AVX-512 FP16 or AMX-FP16; both on a cuda target), on each
  backend;
* ``student-<depth>``: a student of standard size when the space distils: half the teacher's
  layers (of the space's ``layers`` choices, the nearest to half the teacher's repeated
  blocks) and, when the space also declares ``width``, a half-width one; each with the int8
  setting that ran fastest in the host self-test, so it is measured where it can win.

Where a point leaves a parameter open, kernel settings (the fields a method names in
``kernel_fields``: torch.compile's mode, ONNX Runtime's fusions, the int8 op types) take the
choice whose path passed the host self-test and ran fastest on the probe; every other field
takes its method's default where the space allows it, else the space's first choice;
parameters the space fixes keep their value (a point that needs another value is not made).
A point is dropped, with the reason, when this host refuses every variant of it (the usual
precheck: a method's or backend's ``check``, a path the self-test failed), or when the
self-test timed its path no faster than fp32 eager on the probe (it cannot beat the baseline:
"compile where it helps"; not for students, which win by their size). Points equal to the
baseline or to each other are made once.

Everything here is pure: the caller passes the host's facts and its precheck.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autoopt import plugins
from autoopt.config._space import ParameterSpec, SearchSpace
from autoopt.errors import ConfigError
from autoopt.plugins import NONE_METHOD
from autoopt.resolve import baseline_recipe, recipe_from_params
from autoopt.search.points import expand, nearest, recipe_key
from autoopt.selftest import path_key

if TYPE_CHECKING:
    from autoopt.hardware import Hardware
    from autoopt.recipe import Recipe
    from autoopt.selftest import PathResult

#: Quantization methods that make int8 kernels (the int8 starting points).
INT8_METHODS = ("dynamic_int8", "static_int8", "nncf_int8")
#: A self-test speedup at or below this means the path does not help on this host.
HELPS_ABOVE = 1.0
#: Refusal: the reason the host cannot build a recipe, or "" when it can.
Refusal = Callable[["Recipe"], str]


@dataclass(frozen=True)
class PathVerdict:
    """What the host self-test found for one path."""

    status: str
    #: fp32 eager's time on the probe over the path's (None: not timed).
    speedup: float | None = None


@dataclass(frozen=True)
class HostFacts:
    """What the derivation needs to know of the target."""

    device: str = "cpu"
    native_bf16: bool = False
    native_fp16: bool = False
    #: The self-test's verdict per path key (:func:`autoopt.selftest.path_key`).
    paths: Mapping[str, PathVerdict] = field(default_factory=dict)

    @classmethod
    def of(cls, hardware: Hardware, device: str, results: Iterable[PathResult] = ()) -> HostFacts:
        return cls(
            device=device,
            native_bf16=hardware.native_bf16,
            native_fp16=hardware.native_fp16,
            paths={r.key: PathVerdict(r.status, r.speedup) for r in results},
        )

    def reduced_precisions(self) -> list[str]:
        """The reduced precisions this target computes natively, preferred first."""
        if self.device == "cuda":
            return ["bf16", "fp16"]
        natives = (("bf16", self.native_bf16), ("fp16", self.native_fp16))
        return [p for p, native in natives if native]


@dataclass(frozen=True)
class StartingPoint:
    name: str
    #: Every active parameter, encoded as the sampler stores it (enqueue it as it is).
    params: dict[str, Any]
    recipe: Recipe


@dataclass
class Derivation:
    points: list[StartingPoint] = field(default_factory=list)
    #: (name, why) of the points this host cannot use.
    dropped: list[tuple[str, str]] = field(default_factory=list)

    def names(self) -> list[str]:
        return [p.name for p in self.points]


def teacher_depth(model: Any) -> int | None:
    """How many times the teacher's main block repeats (6 BertLayers for MiniLM), or None
    for a model without a repeated block (the digits CNN)."""
    from autoopt.selftest import find_block

    found = find_block(model)
    if found is None:
        return None
    kind = type(found[1])
    return sum(type(m) is kind for m in model.modules())


def derive(
    space: SearchSpace,
    host: HostFacts,
    *,
    depth: int | None = None,
    refusal: Refusal = lambda _r: "",
) -> Derivation:
    """The starting points of ``space`` on ``host`` (see the module docstring), in the order
    they should run: cheap post-training points first, students (which train) last."""
    out = Derivation()
    seen = {recipe_key(baseline_recipe())}
    backends = space.method_choices("backend")

    def add(
        name: str,
        require: Mapping[str, Any],
        prefer: Mapping[str, Any] | None = None,
        *,
        speed_rule: bool = True,
    ) -> None:
        found = _best(space, host, refusal, require, prefer or {}, speed_rule=speed_rule)
        if isinstance(found, str):
            out.dropped.append((name, found))
            return
        params, recipe = found
        key = recipe_key(recipe)
        if key not in seen:
            seen.add(key)
            out.points.append(StartingPoint(name, params, recipe))

    for backend in backends:
        if backend != "torch_eager":
            add(f"teacher@{backend}", _teacher(backend))
    int8 = [m for m in space.method_choices("quantization") if m in INT8_METHODS]
    for backend in backends:
        for method in int8:
            require = {**_teacher(backend), "quantization.method": method}
            add(f"{method}@{backend}", require, {f"quantization.{method}.per_channel": True})
    for precision in host.reduced_precisions():
        if precision in space.method_choices("precision"):
            for backend in backends:
                add(f"{precision}@{backend}", {**_teacher(backend), "precision.method": precision})
    for name, student in _students(space, depth):
        settings = _fastest_int8(space, host, out.points)
        # A student wins by its size, not its kernels: its path (fp32 eager, where no int8
        # point is left) is not held to the speed rule.
        add(name, {**student, **settings}, speed_rule=False)
    return out


# ---- internals ---------------------------------------------------------------------------


def _teacher(backend: str) -> dict[str, Any]:
    return {
        "distillation.method": NONE_METHOD,
        "pruning.method": NONE_METHOD,
        "quantization.method": NONE_METHOD,
        "precision.method": "fp32",
        "backend.method": backend,
    }


def _kernel_field(name: str, _spec: ParameterSpec) -> bool:
    parts = name.split(".")
    if len(parts) != 3:
        return False
    return parts[2] in plugins.get(f"{parts[0]}.{parts[1]}").kernel_fields


def _best(
    space: SearchSpace,
    host: HostFacts,
    refusal: Refusal,
    require: Mapping[str, Any],
    prefer: Mapping[str, Any],
    *,
    speed_rule: bool = True,
) -> tuple[dict[str, Any], Recipe] | str:
    """The variant of a point (its open kernel settings) the host runs and the self-test
    found fastest, or why there is none; with ``speed_rule``, a variant whose path the
    self-test timed no faster than fp32 eager is dropped."""
    # The point as declared (every open field at its default) first: where the self-test
    # has no figure, it is the one taken.
    variants = expand(space, require, prefer) + expand(space, require, prefer, vary=_kernel_field)
    if not variants:
        return "the space cannot express it (a method or value it needs is not declared)"
    ranked: list[tuple[tuple[int, float, int], dict[str, Any], Recipe]] = []
    reasons: list[str] = []
    for i, params in enumerate(variants):
        try:
            recipe = recipe_from_params(params, space)
        except ConfigError as e:
            reasons.append(str(e))
            continue
        reason = refusal(recipe)
        verdict = host.paths.get(path_key(recipe))
        if not reason and verdict is not None and verdict.status in ("fail", "refused"):
            reason = f"the host self-test found its path {verdict.status}ed"
        if speed_rule and not reason and verdict is not None and verdict.speedup is not None:
            if verdict.speedup <= HELPS_ABOVE:
                reason = (
                    f"the host self-test timed its path at {verdict.speedup:.2f}x fp32 eager "
                    "on the probe: it does not help here"
                )
        if reason:
            reasons.append(reason)
            continue
        # Measured passes first, fastest first; then the untested, in declaration order.
        speed = verdict.speedup if verdict is not None and verdict.speedup is not None else 0.0
        tested = 0 if verdict is not None and verdict.status == "pass" else 1
        ranked.append(((tested, -speed, i), params, recipe))
    if not ranked:
        return reasons[0] if reasons else "no variant of it could be made"
    _, params, recipe = min(ranked, key=lambda r: r[0])
    return params, recipe


def _students(space: SearchSpace, depth: int | None) -> list[tuple[str, dict[str, Any]]]:
    """One or two students of standard size: half the teacher's layers, half its width."""
    out: list[tuple[str, dict[str, Any]]] = []
    for method in space.method_choices("distillation"):
        if method == NONE_METHOD:
            continue
        base = {"distillation.method": method, "pruning.method": NONE_METHOD}
        layers = space.parameters.get(f"distillation.{method}.layers")
        if layers is not None and depth:
            k = nearest(layers, depth / 2)
            if k is not None:
                out.append((f"student-{k}-layers", {**base, f"distillation.{method}.layers": k}))
        width = space.parameters.get(f"distillation.{method}.width")
        if width is not None:
            w = nearest(width, 0.5)
            if w is not None:
                out.append((f"student-width-{w:g}", {**base, f"distillation.{method}.width": w}))
        if not out:  # the space fixes the student's size: take it as declared
            out.append((f"student-{method}", base))
        break  # one distillation method's students: they train for minutes each
    return out


def _fastest_int8(
    space: SearchSpace, host: HostFacts, points: list[StartingPoint]
) -> dict[str, Any]:
    """The post-training settings (quantization, precision, backend) of the int8 point whose
    path ran fastest in the self-test, or fp32 eager. Without figures: a compiled backend
    before eager (eager dispatches each op from Python), static int8 before dynamic
    (calibrated activations spare each call their quantization), then declaration order."""
    int8 = [p for p in points if p.recipe.quantization is not None]
    if not int8:
        return {}

    def rank(p: StartingPoint) -> tuple[float, int, int, int]:
        verdict = host.paths.get(path_key(p.recipe))
        speed = verdict.speedup if verdict is not None and verdict.speedup is not None else 0.0
        compiled = int(p.recipe.backend.method != "torch_eager")
        static = int(
            p.recipe.quantization is not None and p.recipe.quantization.method == "static_int8"
        )
        return (speed, compiled, static, -int8.index(p))

    best = max(int8, key=rank)
    return {
        k: v
        for k, v in best.params.items()
        if k.split(".", 1)[0] in ("quantization", "precision", "backend")
    }
