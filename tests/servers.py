"""Real server processes for tests: a free port, `mlflow server` and `mlflow models serve`,
waiting until one answers, and the memory a process tree has used at most."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests


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


def mlflow_server(folder: Path, port: int, env: dict[str, str]) -> subprocess.Popen:
    """A real `mlflow server` on ``port`` with its store in ``folder``; waits until it answers."""
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination", str(folder / "artifacts"),
        ],
        cwd=folder, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert wait_for(f"http://127.0.0.1:{port}/health", server).ok
    return server


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
