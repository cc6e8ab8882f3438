"""The one exception tree of autoopt.

::

    AutoOptError
     ├── ConfigError              bad experiment / search-space file or argument (exit code 2)
     ├── WorkloadError            a workload cannot be imported or breaks its contract
     ├── CandidateError           one candidate cannot be built, verified or measured;
     │    │                       the trial fails with the reason, the sweep goes on
     │    ├── CandidateRejected   refused before anything ran (unsupported combination)
     │    └── CandidateBelowFloor a first slice of the evaluation split scored clearly
     │                            below the accuracy floor: stopped before the timing
     ├── BackendUnavailableError  a backend cannot run on this host, with the reason
     ├── StorageError             the study database cannot be opened or has no such study
     └── ExportError              an artifact cannot be exported, verified or loaded
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class AutoOptError(Exception):
    """Base class of every error autoopt raises on purpose."""


class ConfigError(AutoOptError):
    """A configuration file or argument is invalid.

    The message is one line: ``<file>: <field>: <what is wrong>; allowed: <...>``.
    """


class WorkloadError(AutoOptError):
    """A workload cannot be loaded or does not follow the workload contract."""


class CandidateError(AutoOptError):
    """A candidate failed to build, verify or measure. The trial fails; the sweep goes on."""

    def __init__(self, message: str, *, stage: str = "") -> None:
        super().__init__(message)
        self.stage = stage


class CandidateRejected(CandidateError):
    """A candidate was refused before it ran because a technique or backend cannot do it."""


class CandidateBelowFloor(CandidateError):
    """A candidate's score on a first slice of the evaluation split is clearly below the
    accuracy floor (:mod:`autoopt.screening`); ``verdict`` holds the slice's figures."""

    def __init__(self, message: str, verdict: dict[str, object], *, stage: str = "score") -> None:
        super().__init__(message, stage=stage)
        self.verdict = verdict


class BackendUnavailableError(AutoOptError):
    """A backend cannot run on this host; the message says why."""


class StorageError(AutoOptError):
    """The study storage cannot be opened, or the named study does not exist."""


class ExportError(AutoOptError):
    """An artifact cannot be exported, verified or loaded."""


__all__ = [
    "AutoOptError",
    "BackendUnavailableError",
    "CandidateBelowFloor",
    "CandidateError",
    "CandidateRejected",
    "ConfigError",
    "ExportError",
    "StorageError",
    "WorkloadError",
]


@contextlib.contextmanager
def failing_the_candidate(what: str, stage: str) -> Iterator[None]:
    """Whatever a library raises inside fails this candidate only, as ``<what>: <type>: <its
    first line>`` (a CandidateError passes through as it is)."""
    try:
        yield
    except CandidateError:
        raise
    except Exception as e:  # noqa: BLE001 - any library failure fails this candidate only
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CandidateError(f"{what}: {type(e).__name__}: {first}", stage=stage) from e
