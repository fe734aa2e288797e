"""The backlog of calls a training could not log: replayed once, whatever went wrong before."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from depthseg.tracking import outage


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return MlflowClient()


def new_run(client: MlflowClient) -> str:
    experiment = client.get_experiment_by_name("Default")
    return client.create_run(experiment.experiment_id).info.run_id


def metrics_entry(run_id: str, step: int) -> dict:
    return {"run_id": run_id, "kind": "metrics", "metrics": {"val_loss": 1.0 / step},
            "step": step, "timestamp": 1_000 + step}  # fmt: skip


def write_backlog(path: Path, entries: list[dict], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries) + tail)
    return path


def steps(client: MlflowClient, run_id: str) -> list[int]:
    return sorted(point.step for point in client.get_metric_history(run_id, "val_loss"))


def test_a_last_line_cut_short_is_skipped_with_a_warning(
    client: MlflowClient, tmp_path: Path, capsys
) -> None:
    run_id = new_run(client)
    entries = [metrics_entry(run_id, 1), metrics_entry(run_id, 2)]
    backlog = write_backlog(tmp_path / "backlog.jsonl", entries, tail='{"run_id": "ab')
    assert outage.replay(backlog) == 2
    assert "line 3 was cut short while written; skipped" in capsys.readouterr().out
    assert steps(client, run_id) == [1, 2]
    assert not backlog.exists()


def test_a_broken_line_before_others_stops_the_replay_naming_it(
    client: MlflowClient, tmp_path: Path
) -> None:
    run_id = new_run(client)
    lines = [json.dumps(metrics_entry(run_id, 1)), "not json", json.dumps(metrics_entry(run_id, 2))]
    backlog = tmp_path / "backlog.jsonl"
    backlog.write_text("\n".join(lines) + "\n")
    with pytest.raises(outage.BacklogError, match=r"backlog\.jsonl line 2 is not a backlog entry"):
        outage.replay(backlog)
    assert steps(client, run_id) == [] and backlog.exists()


def test_a_replay_that_fails_half_way_goes_on_from_there_the_next_time(
    client: MlflowClient, tmp_path: Path
) -> None:
    run_id = new_run(client)
    missing = "0" * 32  # a run the store does not have: the third call fails
    entries = [metrics_entry(run_id, 1), metrics_entry(run_id, 2), metrics_entry(missing, 3),
               metrics_entry(run_id, 4)]  # fmt: skip
    backlog = write_backlog(tmp_path / "backlog.jsonl", entries)
    with pytest.raises(mlflow.exceptions.MlflowException):
        outage.replay(backlog)
    marker = tmp_path / "backlog.done.json"
    assert json.loads(marker.read_text()) == {"entries": 2}
    assert steps(client, run_id) == [1, 2]
    entries[2]["run_id"] = run_id  # the cause fixed
    write_backlog(backlog, entries)
    assert outage.replay(backlog) == 2  # the last two only
    assert steps(client, run_id) == [1, 2, 3, 4]
    assert not backlog.exists() and not marker.exists()


def test_an_image_kept_for_later_is_written_whole(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    kept = Path(outage.Backlog(tmp_path / "backlog.jsonl").keep_image(image, "val_predictions", 3))
    assert kept.name == "backlog-val_predictions-3.png"
    np.testing.assert_array_equal(np.asarray(Image.open(kept)), image)
    assert [path.name for path in tmp_path.iterdir()] == [kept.name]
