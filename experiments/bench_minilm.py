"""MiniLM benchmark: a time-boxed sweep of experiments/minilm.yaml against the standard recipes.

The baseline (fp32 PyTorch eager) and the standard recipes (ONNX Runtime fp32 with its BERT
fusions; ONNX Runtime dynamic int8, what Optimum and Olive do by default) are measured in the
same run as the search (the experiment's ``seed_candidates``), so every speedup is a ratio
taken on this machine in one run. Writes results/minilm/benchmark.md.

    .venv/bin/python experiments/bench_minilm.py --minutes 58
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
from pathlib import Path

import autoopt
from autoopt.study.records import StudyRecord, TrialRecord
from autoopt.study.schema import STUDY_RUN_PREFIX

REPO = Path(__file__).resolve().parent.parent
GOALS = ((0.99, 3.0), (0.95, 5.0))
#: The experiment's seed candidates that are standard recipes (Optimum's and Olive's defaults);
#: the search's starting points are derived (trials with ``derived``).
STANDARD = ("ort-fp32-fusions", "ort-dynamic-int8")


def families(t: TrialRecord) -> str:
    """The technique families a trial's recipe uses, e.g. ``distillation(3 layers) + int8``."""
    recipe = t.recipe or {}
    parts = []
    kd = recipe.get("distillation")
    if kd:
        parts.append(f"distillation ({student_layers(kd['config'])})")
    if recipe.get("pruning"):
        parts.append("pruning")
    quant = recipe.get("quantization")
    if quant:
        parts.append(quant["key"].split(".")[1])
    precision = (recipe.get("precision") or {}).get("key", "precision.fp32")
    if precision != "precision.fp32":
        parts.append(precision.split(".")[1])
    return " + ".join(parts) or "none (fp32)"


def student_layers(config: dict) -> str:
    """``3 layers``, or the layers kept when the recipe names them: ``layers 0, 2, 5``."""
    if config.get("keep"):
        return "layers " + ", ".join(str(i) for i in config["keep"])
    return f"{config.get('layers')} layers"


def fastest_at(study: StudyRecord, trials: list[TrialRecord], floor: float) -> TrialRecord | None:
    """The fastest of ``trials`` whose fidelity is at least ``floor``."""
    ok = [t for t in trials if t.metrics["fidelity"] >= floor]
    return max(ok, key=lambda t: study.ratios(t)["speedup"], default=None)


def row(study: StudyRecord, t: TrialRecord, label: str) -> str:
    m, r = t.metrics, study.ratios(t)
    return (
        f"| {label} | {t.number} | {m['latency_p50_ms']:.2f} | {r['speedup']:.2f}x | "
        f"{m['fidelity']:.4f} | {m['fidelity_min']:.4f} | {m['fidelity_p5']:.4f} | "
        f"{m['size_mb']:.1f} | `{t.recipe_str}` |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=58.0)
    parser.add_argument("--storage", default="sqlite:///results/minilm/benchmark.db")
    parser.add_argument("--study", default=f"minilm-bench-{dt.date.today():%Y%m%d}")
    parser.add_argument("--report-only", action="store_true", help="Rewrite the report only.")
    args = parser.parse_args()
    (REPO / "results/minilm").mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        # A cold stage cache of its own: every student this sweep uses is trained inside its
        # budget, never taken from an earlier run's cache.
        cache = REPO / "results/cache/minilm-bench" / args.study
        shutil.rmtree(cache, ignore_errors=True)
        experiment = autoopt.validate(REPO / "experiments/minilm.yaml")
        autoopt.run(
            experiment.model_copy(update={"cache_dir": str(cache)}),
            timeout=args.minutes * 60,
            n_trials=10_000,
            storage=args.storage,
            study=args.study,
        )
    report(autoopt.load_study(args.study, args.storage))


def report(study: StudyRecord) -> None:
    base = study.baseline
    assert base is not None, "the baseline did not complete"
    # A repeat carries an earlier trial's measurement: count each candidate once.
    done = [t for t in study.trials if t.state == "COMPLETE" and not t.is_repeat]
    states = study.counts()
    # The run's own record: from before the workload loaded to after the last trial was told.
    runs = [
        v for k, v in study.user_attrs.items() if k.startswith(STUDY_RUN_PREFIX) and v.get("ended")
    ]
    elapsed_min = (
        sum(
            (
                dt.datetime.fromisoformat(r["ended"]) - dt.datetime.fromisoformat(r["started"])
            ).total_seconds()
            for r in runs
        )
        / 60
    )
    minutes = sum(r.get("timeout_s") or 0.0 for r in runs) / 60
    # Trials stopped before their result are the ones a later trial was queued again from.
    requeued = {t.requeued_from for t in study.trials if t.requeued_from is not None}
    cut = [t for t in study.trials if t.number in requeued]
    recombined = sum(t.recombined is not None for t in study.trials)
    hits = [e for t in study.trials for e in t.stages if e["hit"]]
    built = [e for t in study.trials for e in t.stages if not e["hit"]]
    header = (
        "| candidate | trial | p50 ms | speedup | fidelity | min | p5 | size MB | recipe |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    lines = [
        "# all-MiniLM-L6-v2: search against the standard recipes",
        "",
        f"Run {dt.datetime.now():%Y-%m-%d %H:%M} on {base.hardware.get('cpu_model')} "
        f"({base.hardware.get('logical_cores')} cores): batch 1, sequence length 128, 1 thread, "
        f"{base.metrics['latency_runs']:.0f} timed runs per candidate. Sweep budget "
        f"{minutes:.0f} min: {sum(states.get(k, 0) for k in ('COMPLETE', 'FAIL', 'PRUNED'))} "
        f"trials ({states.get('COMPLETE', 0)} complete, "
        f"{states.get('FAIL', 0)} failed, {states.get('PRUNED', 0)} refused) in "
        f"{elapsed_min:.1f} min"
        + (
            f"; {len(cut)} of the failed ({', '.join(f'#{t.number}' for t in cut)}) "
            + ("was" if len(cut) == 1 else "were")
            + " still running at the budget: cancelled, and queued again for a later run. "
            if cut
            else ". "
        )
        + "Speedups are against the baseline measured in the same run; "
        "timings on this shared machine vary up to ±14% run to run. The sweep starts from an "
        f"empty stage cache. {recombined} trials paired a model on the front with another front "
        "member's post-training settings (`sampler.recombine`).",
        "",
        "## Baseline, standard recipes and derived starting points",
        "",
        header,
        row(study, base, "baseline: fp32 PyTorch eager"),
    ]
    for t in done:
        seed = t.seed
        if seed:
            lines.append(row(study, t, f"{'standard' if seed in STANDARD else 'seed'}: {seed}"))
        elif t.derived:
            lines.append(row(study, t, f"derived: {t.derived}"))
    lines += ["", "## The search's feasible Pareto front (fidelity >= 0.99)", "", header]
    for t in study.front():
        lines.append(row(study, t, "front"))
    lines += [
        "",
        "## Goals",
        "",
        "| goal | best found | trial | told at minute | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    first = min((t.started for t in study.trials if t.started), default=None)
    why = []
    for floor, goal in GOALS:
        best = fastest_at(study, done, floor)
        speed = study.ratios(best)["speedup"] if best else 0.0
        verdict = "met" if speed >= goal else f"not met: {speed / goal:.0%} of the goal"
        at = (
            f"{(best.completed - first).total_seconds() / 60:.1f}"
            if best and best.completed and first
            else "-"
        )
        lines.append(
            f"| fidelity ≥ {floor}: ≥ {goal:.0f}x | {speed:.2f}x | "
            f"{best.number if best else '-'} | {at} | {verdict} |"
        )
        if speed >= goal:
            continue
        fast = [t for t in done if study.ratios(t)["speedup"] >= goal]
        if fast:
            top = max(fast, key=lambda t: t.metrics["fidelity"])
            were = "candidate was" if len(fast) == 1 else "candidates were"
            why.append(
                f"- ≥ {goal:.0f}x at fidelity ≥ {floor}: {len(fast)} {were} that fast; "
                f"the most faithful, trial {top.number} ({study.ratios(top)['speedup']:.2f}x, "
                f"`{top.recipe_str}`), has fidelity {top.metrics['fidelity']:.3f}, "
                f"{floor - top.metrics['fidelity']:.3f} short of the floor."
            )
        else:
            why.append(f"- ≥ {goal:.0f}x at fidelity ≥ {floor}: no candidate was that fast.")
    students: dict[str, float] = {}
    for t in done:
        recipe = t.recipe or {}
        if (
            recipe.get("distillation")
            and not recipe.get("pruning")
            and not recipe.get("quantization")
        ):
            layers = student_layers(recipe["distillation"]["config"])
            students[layers] = max(students.get(layers, 0.0), t.metrics["fidelity"])
    if why and students:
        why.append(
            "- The students' own fidelity (their best with no pruning or int8) caps every "
            "candidate built on them: "
            + ", ".join(f"{k}: {v:.3f}" for k, v in sorted(students.items()))
            + "."
        )
    if why:
        lines += ["", "Why not met (what each technique costs is in the table below):", "", *why]
    lines += [
        "",
        "## What each combination of techniques bought",
        "",
        "Best speedup over the baseline among the candidates using exactly these families "
        "(backend and precision aside), at each fidelity floor, and the highest fidelity seen.",
        "",
        "| families | candidates | best at ≥ 0.99 | best at ≥ 0.95 | fastest (its fidelity) |"
        " highest fidelity |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    groups: dict[str, list[TrialRecord]] = {}
    for t in done:
        groups.setdefault(families(t), []).append(t)
    for name, members in sorted(groups.items(), key=lambda kv: (len(kv[0]), kv[0])):
        cells = []
        for floor in (0.99, 0.95):
            top = fastest_at(study, members, floor)
            cells.append(f"{study.ratios(top)['speedup']:.2f}x (#{top.number})" if top else "-")
        fastest_t = max(members, key=lambda t: study.ratios(t)["speedup"])
        lines.append(
            f"| {name} | {len(members)} | {cells[0]} | {cells[1]} | "
            f"{study.ratios(fastest_t)['speedup']:.2f}x ({fastest_t.metrics['fidelity']:.3f}) | "
            f"{max(t.metrics['fidelity'] for t in members):.4f} |"
        )
    stage_s: dict[str, list[float]] = {}
    for e in built:
        stage_s.setdefault(e["stage"], []).append(e["seconds"])
    lines += [
        "",
        "## Where the time went",
        "",
        f"Stage cache: {len(hits)} stage builds reused, saving "
        f"{sum(e['saved_seconds'] for e in hits) / 60:.1f} min of building; {len(built)} built.",
        "",
        "| stage | builds | median s | total min |",
        "| --- | --- | --- | --- |",
    ]
    for stage, secs in sorted(stage_s.items(), key=lambda kv: -sum(kv[1])):
        secs.sort()
        lines.append(
            f"| {stage} | {len(secs)} | {secs[len(secs) // 2]:.0f} | {sum(secs) / 60:.1f} |"
        )
    fastest = sorted(done, key=lambda t: t.metrics["latency_p50_ms"])[:5]
    lines += ["", "## The fastest candidates at any fidelity", "", header]
    lines += [row(study, t, "fast") for t in fastest]
    out = REPO / "results/minilm/benchmark.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
