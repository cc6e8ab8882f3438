"""Ctrl-C during a sweep: a flag while controllers loop, an interrupt before they do."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from autoopt.search.interrupt import stop_on_sigint


class _Loop:
    """The part of a controller the handler sees."""

    def __init__(self, looping: bool) -> None:
        self.stop_requested = threading.Event()
        self.looping = looping


def _sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # Python runs the handler at the next bytecode of the main thread


def test_sigint_sets_the_stop_flags_of_looping_controllers_without_raising() -> None:
    controllers = [_Loop(looping=True), _Loop(looping=False)]
    with stop_on_sigint(controllers) as seen:
        _sigint()
    assert seen.received
    assert all(c.stop_requested.is_set() for c in controllers)


def test_sigint_before_any_controller_loops_interrupts_at_once() -> None:
    controllers = [_Loop(looping=False)]
    with pytest.raises(KeyboardInterrupt), stop_on_sigint(controllers):
        _sigint()
    assert controllers[0].stop_requested.is_set()


def test_second_sigint_interrupts_even_while_looping() -> None:
    controllers = [_Loop(looping=True)]
    with pytest.raises(KeyboardInterrupt), stop_on_sigint(controllers):
        _sigint()
        _sigint()


def test_previous_sigint_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGINT)
    with stop_on_sigint([_Loop(looping=True)]):
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before
