"""A team's shared servers, for real: a DVC remote between two clones, and an MLflow tracking
server on PostgreSQL that holds every run, artifact and registry version."""

from __future__ import annotations

import base64
import json
import os
import signal
import zipfile
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient
from repro_project import clone_project, project_env, run
from servers import free_port, mlflow_server, model_server

pytestmark = pytest.mark.slow


def git_commit_all(project: Path, env: dict[str, str], message: str) -> None:
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", message], project, env)


def test_a_clone_that_pulls_has_nothing_to_reproduce(pipeline, tmp_path: Path) -> None:
    project, env = pipeline
    first = clone_project(project, tmp_path / "first")
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{first / 'tracking.db'}"}
    # The committed results, as after `dvc repro` and a commit (other tests change the copy).
    run(["git", "reset", "-q", "--hard"], first, env)
    run(["dvc", "checkout", "--force"], first, env)
    origin, remote = tmp_path / "origin.git", tmp_path / "dvc-remote"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path, env)
    run(["git", "remote", "add", "origin", str(origin)], first, env)
    run(["dvc", "remote", "add", "-d", "team", str(remote)], first, env)
    git_commit_all(first, env, "a DVC remote for the team")
    run(["git", "push", "-q", "origin", "HEAD:main"], first, env)
    run(["dvc", "push"], first, env)

    second = tmp_path / "second"
    run(["git", "clone", "-q", "-b", "main", str(origin), str(second)], tmp_path, env)
    run(["dvc", "pull"], second, env)
    assert (second / "models/model.pt").read_bytes() == (first / "models/model.pt").read_bytes()
    assert "Data and pipelines are up to date" in run(["dvc", "status"], second, env).stdout
    repro = run(["dvc", "repro"], second, env).stdout
    assert "Running stage" not in repro, repro

    # An experiment of the first clone reaches the second through git and the remote.
    change = ["-S", "evaluate.prediction_images=2"]
    run(["dvc", "exp", "run", "-n", "shared-exp", *change], first, env)
    run(["dvc", "exp", "push", "origin", "shared-exp"], first, env)
    run(["dvc", "exp", "pull", "origin", "shared-exp"], second, env)

    def experiment_metrics(project: Path) -> dict[str, object]:
        shown = json.loads(run(["dvc", "exp", "show", "--json"], project, env).stdout)
        names = {
            revision["name"]: revision["data"]
            for entry in shown
            for experiment in entry.get("experiments") or []
            for revision in experiment["revs"]
        }
        return names["shared-exp"]["metrics"]["results/evaluate/metrics.json"]["data"]

    # What the experiment wrote in the first clone (exp run leaves it in the workspace).
    written = json.loads((first / "results/evaluate/metrics.json").read_text())
    assert experiment_metrics(second) == written and "mask_iou" in written


def test_a_tracking_server_on_postgres_holds_every_run_and_artifact(
    pipeline, postgres, tmp_path: Path
) -> None:
    server_folder = tmp_path / "server"
    server_folder.mkdir()
    port = free_port()
    backend = postgres.create_database("mlflow_team")
    server = mlflow_server(server_folder, port, dict(os.environ), backend=backend)
    try:
        url = f"http://127.0.0.1:{port}"
        # The tiny project with its data and model; a queued experiment (run by DVC's queue, in
        # a copy of the repository) trains, evaluates and registers on the team's server.
        project = clone_project(pipeline[0], tmp_path / "project")
        env = {**project_env(project), "MLFLOW_TRACKING_URI": url}
        run(["git", "reset", "-q", "--hard"], project, env)  # as committed
        local_store = sorted((project / "mlruns").rglob("*"))  # the fixture's own runs
        run(["dvc", "exp", "run", "--queue", "-n", "queued", "-S", "train.seed=1"],
            project, env)  # fmt: skip
        run(["dvc", "exp", "run", "--run-all"], project, env)

        client = MlflowClient(url)
        experiment = client.get_experiment_by_name("depthseg")
        assert experiment.artifact_location.startswith("mlflow-artifacts:")
        queued = client.search_runs(
            [experiment.experiment_id], filter_string="tags.dvc_experiment = 'queued'"
        )
        assert len(queued) == 1, "the queued experiment's run is not on the server"
        run_id = queued[0].info.run_id
        evaluated = [item.path for item in client.list_artifacts(run_id, "evaluate")]
        assert "evaluate/predictions" in evaluated and "evaluate/metrics.json" in evaluated
        champion = client.get_model_version_by_alias("depthseg", "champion")
        assert champion.run_id == run_id  # the server's first model
        stored = list((server_folder / "artifacts").rglob("*"))
        assert any(path.name == "MLmodel" for path in stored)
        assert any(path.suffix == ".png" for path in stored)
        assert sorted((project / "mlruns").rglob("*")) == local_store
        assert not (project / "mlflow.db").exists()

        with zipfile.ZipFile(project / "data/raw/modest.zip") as archive:
            bg = next(name for name in archive.namelist() if name.startswith("bg/"))
            scene = next(name for name in archive.namelist() if name.startswith("bg_fg/"))
            images = [base64.b64encode(archive.read(name)).decode() for name in (bg, scene)]
        with model_server(project, "models:/depthseg@champion", env) as (served, _):
            body = {"dataframe_split": {"columns": ["bg", "bg_fg"], "data": [images]}}
            reply = requests.post(f"{served}/invocations", json=body, timeout=120)
        assert reply.status_code == 200, reply.text
        assert set(reply.json()["predictions"][0]) >= {"mask", "depth"}
        assert sorted((project / "mlruns").rglob("*")) == local_store  # served from the server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
