"""The MLflow service against a real SQLite store in a temporary folder."""

from __future__ import annotations

import base64
import http.server
import io
import os
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import LIMITS
from mlflow.tracking import MlflowClient
from PIL import Image

from depthseg.core.params import TrackingParams, parse_params
from depthseg.serving.pyfunc import input_example
from depthseg.tracking import service as tracking


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # artifacts land in the temporary folder
    return uri


def test_the_store_is_the_param_then_the_environment_then_mlflow_default(monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri(TrackingParams()) == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking.tracking_uri(TrackingParams()) == "http://tracking:5000"
    explicit = TrackingParams(tracking_uri="sqlite:///other.db")
    assert tracking.tracking_uri(explicit) == "sqlite:///other.db"


def test_an_unreachable_server_is_reported_at_once() -> None:
    started = time.perf_counter()
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    params = TrackingParams(tracking_uri="http://127.0.0.1:9")
    with pytest.raises(tracking.TrackingError, match=r"http://127\.0\.0\.1:9 is unreachable"):
        tracking.connect(params)
    assert time.perf_counter() - started < 15


def test_a_broken_store_is_reported_with_its_uri(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").write_text("this is not sqlite")
    params = TrackingParams(tracking_uri=f"sqlite:///{tmp_path / 'not-a-db'}")
    with pytest.raises(tracking.TrackingError, match="not-a-db"):
        tracking.connect(params)


def test_a_run_records_flat_params_tags_metrics_and_the_model(store: str, saved_model) -> None:
    scene = io.BytesIO()
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(scene, "JPEG")
    example = input_example(scene.getvalue(), scene.getvalue())
    params = parse_params({"model": {"width": 0.125}, "tracking": {"experiment": "unit"}})
    with tracking.start_run(params, tags={"index_hash": "abc"}) as tracked:
        run_id = tracked.id
        tracked.log_metrics({"val_loss": 0.5}, step=1)
        tracked.log_metrics({"val_loss": 0.25}, step=2)
        tracked.log_image(np.zeros((8, 8, 3), np.uint8), key="val_predictions", step=1)
        model_uri = tracking.log_model(*saved_model, example, LIMITS)
    client = MlflowClient(store)
    run = client.get_run(run_id)
    assert run.data.params["model.width"] == "0.125"
    assert run.data.params["train.optimizer.name"] == "sgd"
    assert run.data.tags["index_hash"] == "abc"
    history = client.get_metric_history(run_id, "val_loss")
    assert [(p.step, p.value) for p in history] == [(1, 0.5), (2, 0.25)]
    assert mlflow.get_logged_model(model_uri.split("/")[-1]).source_run_id == run_id
    answer = mlflow.pyfunc.load_model(model_uri).predict(example)
    assert list(answer.columns) == ["mask", "mask_probability", "depth"]


def test_reopening_a_run_that_is_not_in_the_store_says_so(store: str) -> None:
    params = parse_params({})
    with (
        pytest.raises(tracking.TrackingError, match="not in the store"),
        tracking.start_run(params, run_id="0123456789abcdef0123456789abcdef"),
    ):
        pass


class _HealthNeedsAuth(http.server.BaseHTTPRequestHandler):
    """A server whose /health answers only with MLflow's basic-auth credentials."""

    expected = "Basic " + base64.b64encode(b"alice:secret").decode()

    def do_GET(self) -> None:
        ok = self.path == "/health" and self.headers.get("Authorization") == self.expected
        self.send_response(200 if ok else 401)
        self.end_headers()
        self.wfile.write(b"OK" if ok else b"unauthorized")

    def log_message(self, *args: object) -> None:
        pass


def test_the_health_check_sends_mlflows_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HealthNeedsAuth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        with pytest.raises(tracking.TrackingError, match="refused us"):
            tracking.check_server(uri)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "secret")
        tracking.check_server(uri)  # answers 200 with the credentials
    finally:
        server.shutdown()


def test_a_password_in_the_tracking_uri_is_sent_as_mlflows_credentials_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HealthNeedsAuth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:secret@127.0.0.1:{port}")
    try:
        # /health answers with the credentials (taken out of the URI); the store is no MLflow.
        with pytest.raises(tracking.TrackingError) as caught:
            tracking.connect(TrackingParams())
    finally:
        server.shutdown()
    assert "is unreachable" not in str(caught.value)  # the health check passed
    assert os.environ["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{port}"
    assert mlflow.get_tracking_uri() == f"http://127.0.0.1:{port}"
    assert "secret" not in str(caught.value) + "".join(capfd.readouterr())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://bob:S3cretPW@127.0.0.1:9")
    with pytest.raises(tracking.TrackingError) as caught:
        tracking.connect(TrackingParams())
    assert "S3cretPW" not in str(caught.value) and "127.0.0.1:9 is unreachable" in str(caught.value)
