"""Faults with real processes and files: `kill -9` in the middle of a stage, then `dvc repro`.

Each case states what must happen and checks that nothing is lost: the next `dvc repro` finishes
the pipeline, training continues from its last checkpoint in the same MLflow run and ends with
the weights of a run never stopped, and no temporary file is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from repro_project import clone_project, project_env, run
from servers import free_port, mlflow_server

pytestmark = pytest.mark.slow

LONGER = {"epochs": 6, "image_sizes": [64], "scheduler": {"name": "step"}}


def project_with(pipeline, folder: Path, **train: object) -> tuple[Path, dict[str, str]]:
    project, env = pipeline
    copy = clone_project(project, folder)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["train"].update(train)
    (copy / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.rmtree(copy / "models/checkpoints")  # the fixture's run: not this test's
    return copy, {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{copy / 'faults.db'}"}


def kill_when(condition, command: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Start ``command`` in its own process group; SIGKILL the group once ``condition()``."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not condition():
        assert process.poll() is None, "the stage ended before the kill"
        assert time.monotonic() < deadline, "the condition never came"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def checkpointed_epoch(project: Path) -> int:
    path = project / "models/checkpoints/last.pt"
    try:
        return torch.load(path, weights_only=True)["epoch"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return 0


def leftovers(project: Path) -> list[Path]:
    return [
        path
        for folder in ("data", "models", "results")
        for path in (project / folder).rglob("*.partial")
    ]


def test_kill_9_in_training_then_dvc_repro_continues_to_the_same_weights(
    pipeline, tmp_path: Path
) -> None:
    project, env = project_with(pipeline, tmp_path / "killed", **LONGER)
    # The clone's checkpoints are of the 2-epoch fixture run: a finished run, not resumed.
    kill_when(lambda: 2 <= checkpointed_epoch(project) < 6, ["dvc", "repro"], project, env)
    killed_at = checkpointed_epoch(project)
    run_id = (project / "models/checkpoints/mlflow_run_id.txt").read_text().strip()
    printed = run(["dvc", "repro"], project, env).stdout
    assert f"after epoch {killed_at}" in printed  # resumed, not started again
    history = pd.read_csv(project / "results/train/history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    card = json.loads((project / "models/model.json").read_text())
    assert card["run_id"] == run_id  # the killed run, continued
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    record = client.get_run(card["run_id"])
    assert record.info.status == "FINISHED"
    steps = [point.step for point in client.get_metric_history(card["run_id"], "val_loss")]
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]  # every epoch once, none lost
    assert len(client.search_runs([record.info.experiment_id])) == 1
    assert not leftovers(project)

    whole, whole_env = project_with(pipeline, tmp_path / "whole", **LONGER)
    run(["dvc", "repro"], whole, whole_env)
    expected = torch.load(whole / "models/model.pt", weights_only=True)
    got = torch.load(project / "models/model.pt", weights_only=True)
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    metrics = [
        json.loads((p / "results/evaluate/metrics.json").read_text()) for p in (whole, project)
    ]
    assert metrics[0]["depth_rmse"] == metrics[1]["depth_rmse"]


def test_kill_9_in_fetch_then_dvc_repro_finishes_and_leaves_no_partial_archive(
    pipeline, tmp_path: Path
) -> None:
    project, env = project_with(pipeline, tmp_path / "fetch")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["synthetic"]["backgrounds"] = 40  # a new dataset: fetch runs again
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    raw = project / "data/raw"
    kill_when(lambda: any(raw.glob(".modest.zip.*.partial")), ["dvc", "repro"], project, env)
    assert list(raw.glob(".modest.zip.*.partial"))  # what a kill leaves
    run(["dvc", "repro"], project, env)
    summary = json.loads((project / "results/index/summary.json").read_text())
    assert summary["backgrounds"] == 40
    assert not leftovers(project)
    assert json.loads(run(["dvc", "status", "--json"], project, env).stdout) == {}


def stage_running(project: Path, script: str):
    """A condition: a process of ``script`` runs in ``project``."""

    def running() -> bool:
        found = subprocess.run(["pgrep", "-f", f"python src/{script}"], capture_output=True)
        return any(
            os.path.realpath(f"/proc/{pid}/cwd") == str(project.resolve())
            for pid in found.stdout.decode().split()
            if os.path.exists(f"/proc/{pid}/cwd")
        )

    return running


@pytest.mark.parametrize(
    ("stage", "change"),
    [("index", ("index", "split", "seed", 1)), ("evaluate", ("evaluate", "batch_size", 5))],
)
def test_kill_9_in_index_or_evaluate_then_dvc_repro_finishes(
    pipeline, tmp_path: Path, stage: str, change: tuple
) -> None:
    project, env = project_with(pipeline, tmp_path / stage)
    if stage == "evaluate":
        # Training does not run again, and evaluate adds to its MLflow run: in the copy of the
        # store the fixture trained in, not in a new one.
        env = project_env(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    section, *keys, value = change
    node = params[section]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value  # a param of this stage: it runs again
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    kill_when(stage_running(project, f"{stage}.py"), ["dvc", "repro"], project, env)
    run(["dvc", "repro"], project, env)
    assert json.loads(run(["dvc", "status", "--json"], project, env).stdout) == {}
    assert len(list((project / "results/evaluate/predictions").glob("*.png"))) == 3
    assert not leftovers(project)


def test_a_tracking_server_that_dies_mid_training_costs_nothing(pipeline, tmp_path: Path) -> None:
    project, env = project_with(pipeline, tmp_path / "project", epochs=4, image_sizes=[64])
    port = free_port()
    env = {**env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
    server = mlflow_server(tmp_path, port, env)
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    training = subprocess.Popen(
        [sys.executable, "src/train.py"], cwd=project, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def first_epoch_logged() -> bool:
        runs = client.search_runs(experiment_ids=["1"]) if training.poll() is None else []
        return any("val_loss" in run.data.metrics for run in runs)

    deadline = time.monotonic() + 300
    while not first_epoch_logged():
        assert training.poll() is None and time.monotonic() < deadline, training.stdout.read()
        time.sleep(0.5)
    os.killpg(server.pid, signal.SIGKILL)  # the store goes away during epoch 2
    server.wait()
    output = training.communicate(timeout=600)[0]
    assert training.returncode == 0, output
    assert "the MLflow store stopped answering" in output
    assert (project / "models/model.pt").is_file()
    metrics = json.loads((project / "results/train/metrics.json").read_text())
    backlog = project / "models/checkpoints/mlflow_backlog.jsonl"
    kinds = [json.loads(line)["kind"] for line in backlog.read_text().splitlines()]
    assert "metrics" in kinds and kinds[-1] == "end"

    server = mlflow_server(tmp_path, port, env)  # the store is back
    try:
        run([sys.executable, "src/sync_mlflow.py"], project, env)
        record = client.get_run(metrics["mlflow_run_id"])
        assert record.info.status == "FINISHED"
        steps = [point.step for point in client.get_metric_history(record.info.run_id, "val_loss")]
        assert sorted(steps) == [1, 2, 3, 4]
        assert not backlog.exists()
    finally:
        os.killpg(server.pid, signal.SIGKILL)
