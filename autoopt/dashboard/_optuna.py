"""Optuna's own dashboard beside ours, on its own port, over a storage that refuses writes.

``optuna-dashboard`` cannot be mounted under a sub-path, so it runs as a child process.
Its UI can delete studies, write notes and tell trials; autoopt's dashboard promises not to
write to the study, so the child gets a storage whose every write raises.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Container, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

import optuna
from optuna.storages import BaseStorage

if TYPE_CHECKING:
    from optuna.study._frozen import FrozenStudy  # not re-exported by optuna.study

log = logging.getLogger(__name__)


class ReadOnlyStorage(BaseStorage):
    """Reads go to ``inner``; writes raise ``StorageInternalError``."""

    def __init__(self, inner: BaseStorage) -> None:
        self._inner = inner

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise optuna.exceptions.StorageInternalError(
            "this Optuna dashboard was started by `autoopt dashboard`, which serves the study "
            "read-only; run `optuna-dashboard URL` yourself to edit it"
        )

    create_new_study = delete_study = _refuse
    set_study_user_attr = set_study_system_attr = _refuse
    create_new_trial = set_trial_param = set_trial_state_values = _refuse
    set_trial_intermediate_value = set_trial_user_attr = set_trial_system_attr = _refuse

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._inner.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._inner.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[optuna.study.StudyDirection]:
        return self._inner.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._inner.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._inner.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._inner.get_all_studies()

    def get_trial(self, trial_id: int) -> optuna.trial.FrozenTrial:
        return self._inner.get_trial(trial_id)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[optuna.trial.TrialState] | None = None,
    ) -> list[optuna.trial.FrozenTrial]:
        return self._inner.get_all_trials(study_id, deepcopy=deepcopy, states=states)

    def get_n_trials(self, study_id: int, state: Any = None) -> int:
        return self._inner.get_n_trials(study_id, state)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._inner.get_trial_id_from_study_id_trial_number(study_id, trial_number)


def serve(storage_url: str, host: str, port: int, parent: int | None = None) -> None:
    """Run Optuna's dashboard in this process until it is killed or ``parent`` exits."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    import optuna_dashboard

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

    class Threaded(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    storage = ReadOnlyStorage(optuna.storages.get_storage(storage_url))
    app = optuna_dashboard.wsgi(storage)
    make_server(host, port, app, server_class=Threaded, handler_class=Quiet).serve_forever()


def _exit_with(parent: int) -> None:
    # uvicorn re-raises SIGTERM after its graceful shutdown, so `autoopt dashboard` can die
    # without running its cleanup; the child then notices it was orphaned and exits too.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


@contextlib.contextmanager
def optuna_dashboard(
    storage_url: str, host: str = "127.0.0.1", port: int = 8081, *, wait_s: float = 20.0
) -> Iterator[str | None]:
    """Run Optuna's dashboard in a child process for the duration of the block.

    Yields its URL, or None if it did not come up within ``wait_s`` (the reason is logged; our
    own dashboard works without it).
    """
    cmd = [
        sys.executable,
        "-m",
        "autoopt.dashboard._optuna",
        storage_url,
        host,
        str(port),
        str(os.getpid()),
    ]
    # stderr goes to a file, not a pipe nobody drains, so a chatty child can never block.
    errors = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errors, text=True)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    try:
        yield url if _wait_up(proc, errors, f"{url}/api/studies", wait_s) else None
    finally:
        errors.close()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_up(proc: subprocess.Popen[str], errors: IO[str], url: str, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            errors.seek(0)
            err = errors.read().strip().splitlines()
            why = err[-1] if err else f"exit code {proc.returncode}"
            log.warning("Optuna's dashboard did not start: %s", why)
            return False
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - our own child, http
                return True
        time.sleep(0.3)
    log.warning("Optuna's dashboard did not answer on %s within %.0fs", url, wait_s)
    return False


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    serve(args[0], args[1], int(args[2]), int(args[3]) if len(args) > 3 else None)


if __name__ == "__main__":
    main()
