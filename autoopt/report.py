"""What a sweep writes to ``results/<study>/``: trials.csv, pareto.csv and pareto.png."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autoopt.study.records import StudyRecord, TrialRecord


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
    """The metric against p50 latency: every measured candidate once (repeats are the trial
    they repeat), the feasible front labelled with its trial numbers, the floor, the baseline.

    The metric axis shows the feasible band and a margin below it
    (:meth:`StudyRecord.accuracy_view`): trials further down are marked on the lower edge and
    named in a note, so one collapsed trial does not squash every other point into the top.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A Figure on its own Agg canvas, not pyplot: the process's matplotlib backend is untouched.
    fig = Figure(figsize=(9.5, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    view = study.accuracy_view()
    hidden = {t.number for t in view.below} if view else set()
    _plot_points(ax, study, hidden)
    if view is not None:
        _plot_view(ax, view)
    _plot_axes(ax, study)
    # Outside the axes: inside, it would cover the trials marked on the lower edge.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)


def _x(ts: list[TrialRecord]) -> list[float]:
    return [t.metrics["latency_p50_ms"] for t in ts]


def _y(ts: list[TrialRecord]) -> list[float]:
    return [t.metrics["accuracy"] for t in ts]


def _plot_points(ax: Any, study: StudyRecord, hidden: set[int]) -> None:
    """Infeasible, feasible and front trials (the front labelled), the baseline and the floor."""
    shown = [t for t in study.measured() if t.number not in hidden]
    feasible = [t for t in shown if t.feasible and not t.is_baseline and not t.on_front]
    infeasible = [t for t in shown if not t.feasible]
    front = [t for t in study.front() if t.number not in hidden]
    if infeasible:
        ax.scatter(_x(infeasible), _y(infeasible), marker="x", c="#999999", label="infeasible")
    if feasible:
        ax.scatter(_x(feasible), _y(feasible), c="#4c72b0", alpha=0.7, label="feasible")
    if front:
        # With more than two objectives the front is not a line in this plane: draw points.
        style = "-o" if len(study.objectives) <= 2 else "o"
        label = "Pareto front" + (f" ({', '.join(study.objectives)})" if style == "o" else "")
        ax.plot(_x(front), _y(front), style, c="#dd8452", ms=8, label=label, zorder=3)
        for t in front:
            ax.annotate(
                f"#{t.number}",
                (t.metrics["latency_p50_ms"], t.metrics["accuracy"]),
                xytext=(5, 5),
                textcoords="offset points",
                fontsize=8,
                color="#8c4a1c",
                zorder=5,
            )
    base = study.baseline
    if base is not None:
        ax.scatter(
            _x([base]), _y([base]), marker="*", s=220, c="#c44e52", label="baseline", zorder=4
        )
        floor = study.accuracy_floor
        if floor is not None:
            label = f"{study.metric_name} floor ({floor:.4g})"
            ax.axhline(floor, ls="--", c="#c44e52", lw=1, label=label)


def _plot_view(ax: Any, view: Any) -> None:
    """The metric axis zoomed to the view; trials below it marked on its lower edge."""
    pad = max((view.high - view.low) * 0.06, 0.002)
    ax.set_ylim(view.low - pad, view.high + pad)
    if not view.below:
        return
    # On the lower edge at their latency, so where they are in speed still shows.
    ax.scatter(
        _x(view.below),
        [view.low - pad] * len(view.below),
        marker="v",
        c="#999999",
        clip_on=False,
        zorder=4,
        label=f"below {view.low:.3g}\n(on the edge, not to scale)",
    )
    lowest = view.below[0]
    ax.text(
        0.01,
        0.035,
        f"{len(view.below)} trial(s) below {view.low:.3g}, marked on the lower edge; "
        f"lowest: #{lowest.number} at {lowest.metrics['accuracy']:.3g}",
        transform=ax.transAxes,
        fontsize=7.5,
        color="#555555",
    )


def _plot_axes(ax: Any, study: StudyRecord) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    # Plain milliseconds (0.01, 0.02, 0.05) rather than powers of ten.
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("p50 latency (ms, log scale)")
    ax.set_ylabel(study.metric_name)
    failed = sum(t.state == "FAIL" for t in study.trials)
    rejected = sum(t.status == "rejected" for t in study.trials)
    repeats = sum(t.is_repeat for t in study.trials)
    measured = len(study.measured())
    title = f"{study.name}: {measured} measured, {failed} failed, {rejected} rejected"
    ax.set_title(title + (f", {repeats} repeats" if repeats else ""), fontsize=10)
    ax.grid(alpha=0.3)
