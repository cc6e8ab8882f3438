"""What a sweep writes to ``results/<study>/``: trials.csv, pareto.csv and pareto.png."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoopt.study.records import StudyRecord


def write_results(study: StudyRecord, results_dir: str | Path) -> Path:
    out = Path(results_dir) / study.name
    out.mkdir(parents=True, exist_ok=True)
    frame = study.frame(labelled=True)
    frame.to_csv(out / "trials.csv", index=False)
    if len(frame):
        front = frame[frame["pareto"]].sort_values("latency_p50_ms")
    else:
        front = frame
    front.to_csv(out / "pareto.csv", index=False)
    plot_pareto(study, out / "pareto.png")
    return out


def plot_pareto(study: StudyRecord, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A Figure on its own Agg canvas, not pyplot: the process's matplotlib backend is untouched.
    fig = Figure(figsize=(7.5, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    done = [t for t in study.trials if t.state == "COMPLETE" and t.metrics]
    feasible = [t for t in done if t.feasible and not t.is_baseline]
    infeasible = [t for t in done if not t.feasible]
    front = study.front()
    x = lambda ts: [t.metrics["latency_p50_ms"] for t in ts]  # noqa: E731
    y = lambda ts: [t.metrics["accuracy"] for t in ts]  # noqa: E731
    if infeasible:
        ax.scatter(x(infeasible), y(infeasible), marker="x", c="#999999", label="infeasible")
    if feasible:
        ax.scatter(x(feasible), y(feasible), c="#4c72b0", alpha=0.7, label="feasible")
    if front:
        # With more than two objectives the front is not a line in this plane: draw points.
        style = "-o" if len(study.objectives) <= 2 else "o"
        label = "Pareto front" + (f" ({', '.join(study.objectives)})" if style == "o" else "")
        ax.plot(x(front), y(front), style, c="#dd8452", ms=8, label=label, zorder=3)
    base = study.baseline
    if base is not None:
        ax.scatter(
            x([base]), y([base]), marker="*", s=220, c="#c44e52", label="baseline", zorder=4
        )
        floor = study.accuracy_floor
        if floor is not None:
            label = f"{study.metric_name} floor ({floor:.4g})"
            ax.axhline(floor, ls="--", c="#c44e52", lw=1, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency (ms, log scale)")
    ax.set_ylabel(study.metric_name)
    failed = sum(t.state == "FAIL" for t in study.trials)
    rejected = sum(t.status == "rejected" for t in study.trials)
    ax.set_title(f"{study.name}: {len(done)} complete, {failed} failed, {rejected} rejected")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
