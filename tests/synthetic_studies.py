"""Synthetic studies written with the controller's attribute names, for tests and benchmarks.

A real sweep takes minutes; the dashboard's edge cases (no trials, all failed, none feasible,
still running, NaN metrics) and its 2,000-trial benchmark need studies in seconds. Each trial
is made with ``optuna.trial.create_trial`` and carries the same user attributes, constraint
and study attributes as one the controller tells (see :mod:`autoopt.search.controller`), so
the dashboard reads it through the same public API as a real one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from typing import Any, Literal

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from autoopt.study import schema as R

Kind = Literal["normal", "empty", "all_failed", "none_feasible", "running", "outliers"]

OBJECTIVES = ["accuracy", "latency_p50_ms"]
MAX_DROP = 0.01
BASE = {"accuracy": 0.985, "latency_p50_ms": 0.080, "size_mb": 0.150, "params": 38282.0}
HARDWARE = {
    "cpu_model": "Synthetic CPU @ 2.0GHz",
    "logical_cores": 2,
    "physical_cores": 2,
    "memory_gb": 23.5,
    "hostname": "synthetic",
    "platform": "Linux-x86_64",
    "python": "3.11",
    "versions": {"torch": "2.13.0+cpu", "onnxruntime": "1.32.0", "optuna": optuna.__version__},
    "cuda_devices": [],
    "load_avg_1m": 0.5,
}
DISTRIBUTIONS = {
    "distillation.method": CategoricalDistribution(["none", "kd"]),
    "distillation.kd.width": CategoricalDistribution([0.25, 0.5, 0.75]),
    "pruning.method": CategoricalDistribution(["none", "unstructured", "structured"]),
    "pruning.structured.amount": FloatDistribution(0.1, 0.7),
    "pruning.unstructured.amount": FloatDistribution(0.2, 0.9),
    "quantization.method": CategoricalDistribution(["none", "dynamic_int8", "static_int8"]),
    "precision.method": CategoricalDistribution(["fp32", "fp16", "bf16"]),
    "backend.method": CategoricalDistribution(["torch_eager", "onnxruntime"]),
}


def create_synthetic_study(
    storage: str | optuna.storages.BaseStorage,
    name: str,
    kind: Kind = "normal",
    *,
    n_trials: int = 40,
    seed: int = 0,
    resources: dict[str, float] | None = None,
) -> optuna.Study:
    """Create study ``name`` holding ``n_trials`` trials of the given edge-case ``kind``.

    ``normal`` mixes feasible, infeasible, rejected and failed candidates (one with a NaN
    metric); ``none_feasible`` has only infeasible candidates besides the baseline;
    ``all_failed`` has every trial, the baseline included, failed; ``running`` ends with two
    trials still RUNNING, as a sweep in flight leaves them. ``outliers`` is ``normal`` plus
    what a real TPE sweep on a small categorical space leaves: a collapsed candidate (trial 3,
    accuracy 0.44), repeats of measured candidates (every fourth trial from 6 on, told the
    measurement of the trial they repeat), a candidate refused by a method's check (trial 2)
    and one timed on a busy host (trial 5, load average 20.6 on 2 cores).
    """
    study = optuna.create_study(
        study_name=name, storage=storage, directions=["maximize", "minimize"]
    )
    set_study_attrs(study, name, resources or {})
    if kind == "empty":
        return study
    rng = random.Random(seed)
    start = dt.datetime.now().replace(microsecond=0) - dt.timedelta(seconds=20 * n_trials)
    trials, seen = [], set[str]()
    for number in range(n_trials - (2 if kind == "running" else 0)):
        when = start + dt.timedelta(seconds=20 * number)
        if kind == "outliers":
            trials.append(_outlier_case(number, rng, trials, when, seen))
        else:
            trials.append(synthetic_trial(number, rng, kind=kind, started=when, seen=seen))
    study.add_trials(trials)
    if kind == "running":
        for _ in range(2):
            add_running_trial(study, rng)
    return study


#: A structured-pruned student that lost most of its accuracy (a collapsed candidate).
COLLAPSED = {
    "distillation.method": "kd",
    "distillation.kd.width": 0.25,
    "pruning.method": "structured",
    "pruning.structured.amount": 0.7,
    "quantization.method": "none",
    "precision.method": "fp32",
    "backend.method": "torch_eager",
}
#: A candidate timed while the host was busy.
BUSY = {
    "distillation.method": "none",
    "pruning.method": "structured",
    "pruning.structured.amount": 0.3,
    "quantization.method": "none",
    "precision.method": "fp32",
    "backend.method": "onnxruntime",
}
#: A combination a method's check refuses on a CPU (ONNX Runtime has no bf16 kernels there).
REFUSED = {
    "distillation.method": "none",
    "pruning.method": "none",
    "quantization.method": "none",
    "precision.method": "bf16",
    "backend.method": "onnxruntime",
}
REFUSED_REASON = (
    "backend.onnxruntime: onnxruntime's CPUExecutionProvider has no bf16 kernels for "
    "Conv/MatMul/Gemm; use fp32/fp16 on onnxruntime or bf16 on a PyTorch backend"
)


def _outlier_case(
    number: int,
    rng: random.Random,
    earlier: list[optuna.trial.FrozenTrial],
    started: dt.datetime,
    seen: set[str],
) -> optuna.trial.FrozenTrial:
    if number == 2:
        return rejected_trial(REFUSED, "check", REFUSED_REASON, started)
    if number == 3:
        trial = synthetic_trial(
            number, rng, started=started, params=COLLAPSED, seen=seen, fail_rate=0
        )
        return _with_metrics(trial, accuracy=0.44)
    if number == 5:
        trial = synthetic_trial(number, rng, started=started, params=BUSY, seen=seen, fail_rate=0)
        trial.user_attrs[R.ATTR_HARDWARE] = {**HARDWARE, "load_avg_1m": 20.6}
        trial.user_attrs.update({"load_avg_1m": 20.6, "cpu_share": 0.4, "host_loaded": 1.0})
        return trial
    # Trials made by create_trial have no number until the study adds them: their position.
    measured = [
        n
        for n, t in enumerate(earlier)
        if t.state == TrialState.COMPLETE and R.ATTR_DUPLICATE_OF not in t.user_attrs
    ]
    if number >= 6 and number % 4 == 2 and measured:
        prior = rng.choice(measured)
        return repeat_trial(earlier[prior], prior, started)
    return synthetic_trial(number, rng, started=started, seen=seen)


def _with_metrics(trial: optuna.trial.FrozenTrial, **changes: float) -> optuna.trial.FrozenTrial:
    """``trial`` with some measured metrics replaced and the derived ones recomputed."""
    attrs = dict(trial.user_attrs)
    measured = {
        k: attrs[k]
        for k in attrs[R.ATTR_METRIC_NAMES]
        if k not in R.METRICS or not R.METRICS[k].derived
    }
    measured.update(changes)
    derived = R.derive(measured, BASE, relative=False)
    attrs.update({**measured, **derived})
    metrics = {**measured, **derived}
    out = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        values=[metrics[o] for o in OBJECTIVES],
        params=trial.params,
        distributions=trial.distributions,
        user_attrs=attrs,
        constraints={R.CONSTRAINT_KEY: metrics["accuracy_drop"] - MAX_DROP},
    )
    out.datetime_start, out.datetime_complete = trial.datetime_start, trial.datetime_complete
    return out


def repeat_trial(
    prior: optuna.trial.FrozenTrial, number: int, started: dt.datetime
) -> optuna.trial.FrozenTrial:
    """A trial told the measurement of ``prior`` (trial ``number``), as the controller tells a
    candidate it has measured already (:meth:`autoopt.study.recorder.TrialRecorder.repeat`)."""
    attrs = {k: v for k, v in prior.user_attrs.items() if k != R.ATTR_BASELINE}
    attrs.update(
        {R.ATTR_DUPLICATE_OF: number, R.ATTR_STAGES: [], "build_s": 0.0, "measure_s": 0.0}
    )
    trial = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        values=prior.values,
        params=prior.params,
        distributions=prior.distributions,
        user_attrs=attrs,
        constraints=prior.constraints,
    )
    trial.datetime_start = started
    trial.datetime_complete = started + dt.timedelta(seconds=0.1)
    return trial


def rejected_trial(
    params: dict[str, Any], stage: str, reason: str, started: dt.datetime
) -> optuna.trial.FrozenTrial:
    """A candidate refused before anything ran, told PRUNED with its reason and recipe."""
    recipe, recipe_str = _recipe(params)
    attrs = {
        R.ATTR_RECIPE: recipe,
        R.ATTR_RECIPE_STR: recipe_str,
        R.ATTR_STATUS: "rejected",
        R.ATTR_FAILURE_STAGE: stage,
        R.ATTR_FAILURE_REASON: reason,
        "controller": "synthetic:1:0",
        "run_id": "synthetic",
        R.ATTR_TARGET: "local",
        "retries": 0,
    }
    trial = optuna.trial.create_trial(
        state=TrialState.PRUNED,
        params=params,
        distributions={k: DISTRIBUTIONS[k] for k in params},
        user_attrs=attrs,
    )
    trial.datetime_start = started
    trial.datetime_complete = started
    return trial


def set_study_attrs(study: optuna.Study, name: str, resources: dict[str, float]) -> None:
    constraint = {"max_drop": MAX_DROP, "mode": "absolute"}
    target = {"name": "gpu" if resources else "local", "resources": resources, "labels": {}}
    study.set_user_attr(R.STUDY_OBJECTIVES, OBJECTIVES)
    study.set_user_attr(R.STUDY_WORKLOAD, "digits_cnn")
    study.set_user_attr(R.STUDY_CONSTRAINT, constraint)
    study.set_user_attr(R.STUDY_TARGET, target)
    study.set_user_attr(R.STUDY_CACHE_DIR, "/tmp/autoopt-synthetic-cache")
    study.set_user_attr(
        R.STUDY_EXPERIMENT,
        {
            "name": name,
            "workload": {"name": "digits_cnn", "options": {}},
            "objectives": OBJECTIVES,
            "constraint": constraint,
            "execution": {"workers": 2, "trial_timeout_s": 300.0, "max_retries": 1},
            "targets": [target],
        },
    )


def _sample(rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for family in ("distillation", "pruning", "quantization", "precision", "backend"):
        key = f"{family}.method"
        params[key] = rng.choice(DISTRIBUTIONS[key].choices)  # type: ignore[attr-defined]
    if params["distillation.method"] == "kd":
        params["distillation.kd.width"] = rng.choice([0.25, 0.5, 0.75])
    if params["pruning.method"] == "structured":
        params["pruning.structured.amount"] = round(rng.uniform(0.1, 0.7), 3)
    elif params["pruning.method"] == "unstructured":
        params["pruning.unstructured.amount"] = round(rng.uniform(0.2, 0.9), 3)
    return params


def _recipe(params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    recipe: dict[str, Any] = {}
    parts = []
    for family in ("distillation", "pruning", "quantization", "precision", "backend"):
        method = params[f"{family}.method"]
        if method == "none":
            recipe[family] = None
            continue
        config = {
            k.rsplit(".", 1)[1]: v
            for k, v in params.items()
            if k.startswith(f"{family}.{method}.")
        }
        recipe[family] = {"key": f"{family}.{method}", "config": config}
        inner = ",".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items()
        )
        parts.append(f"{method}({inner})" if inner else method)
    *steps, backend = parts
    return recipe, f"{' > '.join(steps)} @ {backend}"


def _metrics(params: dict[str, Any], rng: random.Random) -> dict[str, float]:
    acc, lat, size, n = BASE["accuracy"], BASE["latency_p50_ms"], BASE["size_mb"], BASE["params"]
    if params["distillation.method"] == "kd":
        w = params["distillation.kd.width"]
        acc -= (1 - w) * 0.03
        lat *= 0.3 + 0.7 * w
        size *= w * w
        n *= w * w
    if params["pruning.method"] == "structured":
        a = params["pruning.structured.amount"]
        acc -= a * a * 0.12
        lat *= 1 - 0.6 * a
        size *= (1 - a) ** 2
        n *= (1 - a) ** 2
    elif params["pruning.method"] == "unstructured":
        acc -= params["pruning.unstructured.amount"] ** 3 * 0.05
    if params["quantization.method"] != "none":
        acc -= 0.004 if params["quantization.method"] == "dynamic_int8" else 0.002
        lat *= 0.7
        size /= 3.6
    lat *= {"fp32": 1.0, "fp16": 1.6, "bf16": 1.25}[params["precision.method"]]
    size /= {"fp32": 1.0, "fp16": 2.0, "bf16": 2.0}[params["precision.method"]]
    lat *= 0.25 if params["backend.method"] == "onnxruntime" else 1.0
    acc = min(1.0, acc + rng.gauss(0, 0.004))
    lat *= math.exp(rng.gauss(0, 0.08))
    return {
        "accuracy": acc,
        "latency_p50_ms": lat,
        "latency_p90_ms": lat * 1.3,
        "latency_p99_ms": lat * 1.8,
        "latency_mean_ms": lat * 1.1,
        "latency_runs": 200.0,
        "size_mb": size,
        "params": round(n),
        "peak_memory_mb": 400 + 50 * size,
        "teacher_agreement": min(1.0, acc + 0.01),
    }


def _stages(params: dict[str, Any], seen: set[str]) -> list[dict[str, Any]]:
    # Stage keys chain like the cache's (input key, config): a shared prefix is a cache hit.
    out = []
    key = "teacher"
    for family in ("distillation", "pruning", "quantization"):
        method = params[f"{family}.method"]
        if method == "none":
            continue
        config = sorted((k, v) for k, v in params.items() if k.startswith(f"{family}.{method}."))
        key = hashlib.sha1(f"{key}|{family}.{method}|{config}".encode()).hexdigest()[:24]
        hit = key in seen
        seen.add(key)
        seconds = 4.0 if family == "distillation" else 0.8
        out.append(
            {
                "stage": f"{family}.{method}",
                "key": key,
                "hit": hit,
                "seconds": 0.0 if hit else seconds,
                "saved_seconds": seconds if hit else 0.0,
            }
        )
    if params["backend.method"] == "onnxruntime":
        key = hashlib.sha1(f"{key}|export.onnx".encode()).hexdigest()[:24]
        hit = key in seen
        seen.add(key)
        out.append(
            {
                "stage": "export.onnx",
                "key": key,
                "hit": hit,
                "seconds": 0.0 if hit else 0.7,
                "saved_seconds": 0.7 if hit else 0.0,
            }
        )
    return out


def synthetic_trial(
    number: int,
    rng: random.Random,
    *,
    kind: Kind = "normal",
    started: dt.datetime | None = None,
    params: dict[str, Any] | None = None,
    seen: set[str] | None = None,
    fail_rate: float = 0.04,
) -> optuna.trial.FrozenTrial:
    """One finished trial as the controller would tell it (trial 0 is the baseline).

    ``seen`` holds the stage keys built so far in the study, so that later trials record
    cache hits for the stages they share with earlier ones.
    """
    in_study = seen is not None
    seen = set() if seen is None else seen
    base = BASE
    is_baseline = number == 0
    if is_baseline:
        params = {
            "distillation.method": "none",
            "pruning.method": "none",
            "quantization.method": "none",
            "precision.method": "fp32",
            "backend.method": "torch_eager",
        }
    elif params is None:
        params = _sample(rng)
    recipe, recipe_str = _recipe(params)
    attrs: dict[str, Any] = {
        R.ATTR_RECIPE: recipe,
        R.ATTR_RECIPE_STR: recipe_str,
        "controller": "synthetic:1:0",
        "run_id": "synthetic",
        R.ATTR_TARGET: "local",
        "retries": 0,
    }
    if is_baseline:
        attrs[R.ATTR_BASELINE] = True
    started = started or dt.datetime.now()
    failure = None
    if kind == "all_failed":
        failure = (
            "build",
            "WorkloadError: digits_cnn: teacher checkpoint not found; "
            "run `autoopt validate` to retrain it",
        )
    elif (
        not is_baseline
        and params["precision.method"] == "fp16"
        and (params["quantization.method"] != "none")
    ):
        failure = (
            "sample",
            "precision.fp16 cannot follow quantization.*_int8: an int8 "
            "graph has no fp16 kernels; choose fp32 or no quantization",
        )
    elif not is_baseline and rng.random() < fail_rate:
        failure = (
            "verify",
            "outputs unrelated to the teacher's (top-1 agreement 9.4% on 64 reference "
            "inputs, where independent predictions with the same class frequencies agree "
            "10.1% of the time by chance): the build is broken",
        )
    distributions = {k: DISTRIBUTIONS[k] for k in params}
    # A refused candidate builds nothing; any other marks its stages as built (or reused).
    stages = [] if failure and failure[0] == "sample" else _stages(params, seen)
    if failure is not None:
        stage, reason = failure
        attrs.update(
            {
                R.ATTR_STATUS: "rejected" if stage == "sample" else "failed",
                R.ATTR_FAILURE_STAGE: stage,
                R.ATTR_FAILURE_REASON: reason,
                R.ATTR_STAGES: stages,
            }
        )
        # The controller tells a refused candidate PRUNED (not counted against the budget).
        state = TrialState.PRUNED if stage == "sample" else TrialState.FAIL
        trial = optuna.trial.create_trial(
            state=state, params=params, distributions=distributions, user_attrs=attrs
        )
        trial.datetime_start = started
        trial.datetime_complete = started + dt.timedelta(seconds=3)
        return trial
    metrics = _metrics(params, rng)
    if is_baseline:
        metrics.update(base)  # exact round numbers, so ratios in tests are easy to read
    if kind == "none_feasible" and not is_baseline:
        metrics["accuracy"] -= 2 * MAX_DROP + 0.01 * rng.random()  # every candidate too lossy
    if kind == "normal" and number >= 7 and "nan" not in seen:
        seen.add("nan")  # once per study: a metric the tracer could not read
        metrics["peak_memory_mb"] = float("nan")
    speedup = base["latency_p50_ms"] / metrics["latency_p50_ms"]
    # As a paired measurement records them (the controller's speedup is the paired one).
    # Once per study, a trial timed on a busy host; nothing here draws from ``rng``, so the
    # studies' other draws stay as they were.
    loaded = in_study and kind == "normal" and not is_baseline and "loaded" not in seen
    if loaded:
        seen.add("loaded")
    metrics.update(
        {
            "paired_speedup": speedup,
            "paired_speedup_min": speedup * (1.0 if is_baseline else 0.97),
            "paired_speedup_max": speedup * (1.0 if is_baseline else 1.04),
            "paired_speedup_median": speedup * (1.0 if is_baseline else 1.01),
            "baseline_latency_p50_ms": base["latency_p50_ms"] * (1.6 if loaded else 1.0),
            "load_avg_1m": 3.1 if loaded else 0.5,
            "cpu_share": 0.62 if loaded else 0.99,
            "host_loaded": 1.0 if loaded else 0.0,
        }
    )
    metrics.update(R.derive(metrics, base, relative=False))
    attrs.update(metrics)
    attrs.update(
        {
            R.ATTR_METRIC_NAMES: sorted(metrics),
            R.ATTR_STATUS: "complete",
            R.ATTR_STAGES: stages,
            R.ATTR_ARTIFACT: hashlib.sha1(recipe_str.encode()).hexdigest()[:24],
            R.ATTR_RUNNER: {"backend": params["backend.method"], "threads": 1},
            R.ATTR_HARDWARE: HARDWARE,
            R.ATTR_NODE: "synthetic-node-0",
            "build_s": sum(s["seconds"] for s in stages),
            "measure_s": 2.5,
            "build_threads": 1,
        }
    )
    trial = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        values=[metrics[o] for o in OBJECTIVES],
        params=params,
        distributions=distributions,
        user_attrs=attrs,
        constraints={R.CONSTRAINT_KEY: metrics["accuracy_drop"] - MAX_DROP},
    )
    trial.datetime_start = started
    trial.datetime_complete = started + dt.timedelta(seconds=15 + 10 * rng.random())
    return trial


def add_running_trial(study: optuna.Study, rng: random.Random | None = None) -> int:
    """Ask for a trial and leave it RUNNING with its recipe, as a sweep in flight does."""
    params = _sample(rng or random.Random())
    recipe, recipe_str = _recipe(params)
    trial = study.ask({k: DISTRIBUTIONS[k] for k in params})
    trial.set_user_attr(R.ATTR_RECIPE, recipe)
    trial.set_user_attr(R.ATTR_RECIPE_STR, recipe_str)
    trial.set_user_attr("controller", "synthetic:1:0")
    trial.set_user_attr(R.ATTR_TARGET, "local")
    return trial.number


def add_finished_trial(study: optuna.Study, params: dict[str, Any] | None = None) -> int:
    """Append one completed, feasible-looking candidate to a study; returns its number."""
    number = len(study.get_trials(deepcopy=False))
    params = params or {
        "distillation.method": "none",
        "pruning.method": "structured",
        "pruning.structured.amount": 0.2,
        "quantization.method": "none",
        "precision.method": "fp32",
        "backend.method": "onnxruntime",
    }
    trial = synthetic_trial(max(number, 1), random.Random(number), params=params, fail_rate=0)
    study.add_trial(trial)
    return number
