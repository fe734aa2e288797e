"""Real server processes for tests: a free port, PostgreSQL, `mlflow server` and
`mlflow models serve`, waiting until one answers, and the memory a process tree has used at most."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

#: Where Debian and Ubuntu install PostgreSQL 15's server programs.
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 120) -> requests.Response:
    """The first answer of ``url``, polled while ``process`` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.communicate()[1] if process.stderr else ""
            raise AssertionError(f"the server exited ({process.returncode}): {output}")
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {timeout} s")


def mlflow_server(
    folder: Path, port: int, env: dict[str, str], backend: str | None = None
) -> subprocess.Popen:
    """A real `mlflow server` on ``port`` with its artifacts in ``folder`` and its store there
    too, or at ``backend``; waits until it answers. One worker process: a test sends a request
    or two at a time, and each of the default four takes seconds of CPU to start (on AMD, 2
    cores: ready in 11-15 s against 18-21 s)."""
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"), "server", "--workers", "1",
            "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", backend or f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination", str(folder / "artifacts"),
        ],
        cwd=folder, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert wait_for(f"http://127.0.0.1:{port}/health", server).ok
    return server


@dataclass
class Postgres:
    """A PostgreSQL server of our own: user ``postgres`` with ``password`` over TCP on
    127.0.0.1:``port``, its cluster in ``folder``."""

    folder: Path
    port: int
    password: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def pg_ctl(self, *args: str) -> None:
        _as_postgres(
            [str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-w", "-t", "60",
             "-l", str(self.folder / "server.log"), *args]
        )  # fmt: skip

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port}"
        options += f" -c unix_socket_directories={self.folder}"
        self.pg_ctl("-o", options, "start")

    def restart(self) -> None:
        """Stop at once (connections cut, as a crash or a failover would), then start."""
        self.pg_ctl("-m", "immediate", "stop")
        self.start()


def _as_postgres(command: list[str]) -> None:
    """Run a PostgreSQL program as the ``postgres`` user (the server refuses to run as root)."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}"


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """initdb and start a cluster in a new folder that ``postgres`` owns (pytest's temporary
    folders are root's alone); stop it and remove the folder at the end."""
    folder = Path(tempfile.mkdtemp(prefix="depthseg-postgres-"))
    server = Postgres(folder, free_port(), secrets.token_hex(8))
    try:
        password_file = folder / "password"
        password_file.write_text(server.password)
        if os.geteuid() == 0:
            for path in (folder, password_file):
                shutil.chown(path, "postgres", "postgres")
        _as_postgres(
            [str(POSTGRES_BIN / "initdb"), "-D", str(folder / "data"), "-U", "postgres",
             f"--pwfile={password_file}", "--auth-local=trust", "--auth-host=scram-sha-256",
             "--no-sync"]
        )  # fmt: skip
        server.start()
        yield server
    finally:
        with contextlib.suppress(AssertionError):
            server.pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def model_server(project: Path, model: str, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """`mlflow models serve` of ``model`` run from ``project`` (this interpreter's tools first on
    PATH, as MLflow starts uvicorn by name); yields (base URL, its process group)."""
    port = free_port()
    tools = str(Path(sys.executable).parent)
    env = {**env, "PATH": f"{tools}{os.pathsep}{env.get('PATH', '')}"}
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [f"{tools}/mlflow", "models", "serve", "-m", model, "--env-manager", "local",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=project, env=env, start_new_session=True, stdout=log, stderr=log,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_for(f"{url}/ping", server, timeout=180)
            except AssertionError as error:
                log.seek(0)
                raise AssertionError(f"{error}\n{log.read()[-3000:]}") from None
            yield url, server.pid
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def peak_memory_mb(group: int) -> float:
    """The largest peak resident memory (VmHWM) among the processes of process group
    ``group``: the process that holds the model, for a server."""
    peaks = [0.0]
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or os.getpgid(int(entry.name)) != group:
                continue
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)
