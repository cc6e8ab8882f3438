"""A sweep's progress on stderr, as the controller's events arrive."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.markup import escape


class RunLog:
    """A sweep's progress on stderr: a line per trial and, on a terminal, a live bar.

    Without a terminal (a file, a pipe) a bar would only be drawn once, at the end: each line
    then carries the count instead. A start-up step that takes a while (a workload training
    its teacher on first use, the host self-test) says what it is doing once it has taken
    longer than :attr:`NOTICE_AFTER_S`; a quick one prints nothing.
    """

    NOTICE_AFTER_S = 5.0

    def __init__(self, console: Console, total: int | None, targets: int, name: str) -> None:
        self.console = console
        self.total = total * targets if total else None
        self.targets = targets
        self.done = 0
        self.progress: Any = None
        self.name = name
        self._timer: threading.Timer | None = None
        self._shown: set[str] = set()

    def __enter__(self) -> RunLog:
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self.progress.start()
            self.bar = self.progress.add_task(f"sweep {self.name}", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        self._cancel()
        if self.progress is not None:
            self.progress.stop()

    # ---- output ---------------------------------------------------------------------------
    def line(self, text: str, *, counted: bool = False) -> None:
        """One line of progress; ``text`` is rich markup with every value already escaped."""
        if counted:
            self.done += 1
            if self.progress is not None:
                self.progress.advance(self.bar)
        if self.progress is None:
            width = len(str(self.total or self.done))
            count = f"{self.done:>{width}}" + (f"/{self.total}" if self.total else "")
            pad = " " * len(count)
            text = f"[{count}] {text}" if counted else f" {pad} {text}"
        self.console.print(text, highlight=False)

    def _later(self, key: str, text: str) -> None:
        """Print ``text`` if the step ``key`` is still going after NOTICE_AFTER_S."""
        self._cancel()

        def show() -> None:
            self._shown.add(key)
            self.line(text)

        self._timer = threading.Timer(self.NOTICE_AFTER_S, show)
        self._timer.daemon = True
        self._timer.start()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
            self._timer = None

    # ---- events ---------------------------------------------------------------------------
    def on_event(self, e: dict[str, Any]) -> None:
        """One of the sweep's events (``e["type"]``), said in words; unknown kinds are not
        the user's business."""
        handler = getattr(self, f"_on_{e['type']}", None)
        if handler is not None:
            tag = f"[{escape(e['target'])}] " if self.targets > 1 else ""
            handler(e, tag)

    def _on_workload(self, e: dict[str, Any], tag: str) -> None:
        name = escape(e["name"])
        if e["phase"] == "loading":
            self._later(
                "workload",
                f"{tag}loading workload '{name}': a workload that trains or downloads its "
                "model does so on first use, which can take a few minutes...",
            )
            return
        self._cancel()
        if "workload" in self._shown:
            self.line(f"{tag}workload '{name}' ready after {e['seconds']:.0f}s")

    def _on_study(self, e: dict[str, Any], tag: str) -> None:
        where = escape(f"'{e['study']}' in {e['storage']}")
        if e["created"]:
            self.line(f"{tag}new study {where}")
        else:
            self.line(
                f"{tag}continuing study {where}: {e['trials']} trials so far "
                f"({e['complete']} complete); this run adds to them "
                "(--study NAME starts a new study)"
            )

    def _on_selftest(self, e: dict[str, Any], tag: str) -> None:
        if e["phase"] == "start":
            self._later(
                "selftest",
                f"{tag}self-testing each of the space's paths on this host before any "
                "candidate is built (the first run on a host and library versions does; "
                "later ones read its results)...",
            )
            return
        self._cancel()
        counts = ", ".join(f"{n} {status}" for status, n in sorted(e["counts"].items()))
        cached = " (cached for this host)" if e["cached"] else ""
        refusing = f"; refusing {escape(', '.join(e['failed']))}" if e["failed"] else ""
        self.line(f"{tag}host self-test of the space's paths: {counts}{cached}{refusing}")

    def _on_complete(self, e: dict[str, Any], tag: str) -> None:
        if e["baseline"]:
            mark = "[bold]baseline[/bold]"
        elif e["feasible"]:
            mark = "[green]feasible[/green]"
        else:
            mark = "[yellow]infeasible[/yellow]"
        self.line(
            f"{tag}trial {e['trial']:>3} {mark} {escape(e['metric'])}={e['accuracy']:.4f} "
            f"p50={e['latency_p50_ms']:.3f}ms x{e['speedup']:.2f}  {escape(e.get('recipe', ''))}",
            counted=True,
        )

    def _on_failed(self, e: dict[str, Any], tag: str) -> None:
        # The whole reason: it is the user's fix ("use fp32 or fp16 on ...").
        kind = e["type"]
        self.line(
            f"{tag}trial {e['trial']:>3} [red]{kind}[/red] "
            f"{escape('[' + e['stage'] + ']')} {escape(e['reason'])}",
            counted=kind == "failed",
        )

    _on_rejected = _on_failed

    def _on_duplicate(self, e: dict[str, Any], tag: str) -> None:
        self.line(
            f"{tag}trial {e['trial']:>3} [cyan]repeat[/cyan] of trial {e['of']}: its "
            f"measurement reused  {escape(e.get('recipe', ''))}",
            counted=True,
        )

    def _on_recombined(self, e: dict[str, Any], tag: str) -> None:
        self.line(
            f"{tag}queued: the model of trial {e['model_from']} with the post-training "
            f"settings of trial {e['settings_from']}"
        )

    def _on_recovered(self, e: dict[str, Any], tag: str) -> None:
        self.line(
            f"{tag}{e['count']} trial(s) left RUNNING by a stopped controller: marked "
            "failed and re-queued"
        )

    def _on_resumed(self, e: dict[str, Any], tag: str) -> None:
        self.line(
            f"{tag}resuming interrupted run {escape(e['run'])}: {e['done']} of "
            f"{e['budget']} trials already done"
        )
