"""Real server processes for tests: a free port, `mlflow server`, waiting until one answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
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
