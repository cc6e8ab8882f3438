"""A throwaway PostgreSQL server for the tests: Debian's binaries, a fresh cluster in a tmp dir.

The server is ours alone: its own data directory, its own Unix-socket directory and a free
loopback port picked by the OS. A cluster that ``apt-get install postgresql`` may have created
and started (Debian's ``15/main`` on port 5432, socket in /var/run/postgresql) is neither used
nor touched, so whether apt started one does not matter.

When the binaries are missing they are installed with apt (root only). Without root the tests
skip, except under ``CI=true``, where a missing server fails the run instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
APT_TIMEOUT_S = 900


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding both initdb and pg_ctl."""
    found = [
        p
        for p in Path("/").glob(PG_BIN_GLOB.lstrip("/"))
        if (p / "initdb").is_file() and (p / "pg_ctl").is_file()
    ]

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in p.parent.name.split(".") if x.isdigit())

    return max(found, key=version, default=None)


def _run(
    cmd: list[str], *, timeout: float = 120, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        pytest.fail(
            f"`{' '.join(cmd)}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return result


def ensure_installed() -> Path:
    """Debian's PostgreSQL binaries, installed with apt when missing (or skip / fail)."""
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    if os.geteuid() != 0:
        why = f"PostgreSQL is not installed (no {PG_BIN_GLOB}/initdb) and we are not root"
        if _ci():
            pytest.fail(f"{why}; CI=true, so the PostgreSQL tests may not skip", pytrace=False)
        pytest.skip(f"{why}: run `apt-get install -y postgresql` to enable these tests")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    _run(["apt-get", *lock, "update"], timeout=APT_TIMEOUT_S, env=env)
    _run(
        ["apt-get", *lock, "install", "-y", "--no-install-recommends", "postgresql"],
        timeout=APT_TIMEOUT_S,
        env=env,
    )
    bindir = find_bindir()
    if bindir is None:
        pytest.fail(
            f"`apt-get install -y postgresql` succeeded but left no {PG_BIN_GLOB}/initdb",
            pytrace=False,
        )
    return bindir


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    bindir: Path
    base: Path  # owned by the server's user: data/, the socket and server.log
    port: int
    as_user: list[str]  # the command prefix that runs as the cluster's owner

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, database: str = "autoopt") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database (no Optuna tables yet); returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def pg_ctl(
        self, *args: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return _run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args],
            timeout=timeout,
            env=_clean_env(),
            check=check,
        )

    def log_tail(self, n: int = 4000) -> str:
        try:
            return (self.base / "server.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _clean_env() -> dict[str, str]:
    """Our environment without PG* variables that could point the tools at another server."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a fresh cluster on a free loopback port; stop it and delete it afterwards."""
    bindir = ensure_installed()
    root = os.geteuid() == 0
    # As root, under /tmp (not $TMPDIR, which may be private to root): the server's user must
    # be able to reach its data directory.
    base = Path(tempfile.mkdtemp(prefix="autoopt-pg-", dir="/tmp" if root else None))
    as_user: list[str] = []
    if root:  # initdb and postgres refuse to run as root
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(bindir, base, 0, as_user)
    started = False
    try:
        _run(
            [
                *as_user,
                str(bindir / "initdb"),
                "-D",
                str(server.data),
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            env=_clean_env(),
        )
        for _attempt in range(3):  # the port may be taken between choosing it and binding it
            server.port = _free_port()
            options = (
                f"-p {server.port} -h 127.0.0.1 -k {base} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off"
            )
            # -l: the server must not inherit our captured stdout, or waiting on it never ends.
            result = server.pg_ctl(
                "-o",
                options,
                "-l",
                str(base / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
                check=False,
            )
            if result.returncode == 0:
                started = True
                break
            time.sleep(0.5)
        if not started:
            pytest.fail(
                f"PostgreSQL did not start:\n{result.stdout}\n{result.stderr}\n"
                f"{server.log_tail()}",
                pytrace=False,
            )
        server.create_database("autoopt")
        yield server
    finally:
        if started:
            server.pg_ctl("stop", "-m", "fast", "-w", check=False)
        shutil.rmtree(base, ignore_errors=True)
