"""Ctrl-C during a sweep: stop the controllers where they can record what was in flight.

A ``KeyboardInterrupt`` raised at an arbitrary bytecode of the controller's loop can land
inside a study write, a Ray call or the event printer, and one that library code swallows is
lost (seen: a sweep that ran to the end and exited 0 after SIGINT). So, while controllers
run, SIGINT only sets their stop flags; each loop checks its flag every iteration, cancels
and records its trials in flight, and returns its summary as ``interrupted``. Before any
controller has reached its loop (the workload is still loading, Ray is starting) nothing is
in flight: SIGINT then interrupts at once, as usual. A second SIGINT always does.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol


class Stoppable(Protocol):
    stop_requested: threading.Event

    @property
    def looping(self) -> bool: ...


class Interrupts:
    """What the handler saw: whether SIGINT arrived while the controllers ran."""

    def __init__(self) -> None:
        self.received = False


@contextlib.contextmanager
def stop_on_sigint(controllers: Sequence[Stoppable]) -> Iterator[Interrupts]:
    seen = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield seen  # signal handlers can only be set from the main thread
        return

    def handler(signum: int, frame: Any) -> None:
        first = not seen.received
        seen.received = True
        for c in controllers:
            c.stop_requested.set()
        if not first or not any(c.looping for c in controllers):
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)
