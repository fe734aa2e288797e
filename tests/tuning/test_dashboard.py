"""optuna-dashboard, as the README runs it, serves a study of our storage over HTTP."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import requests
from servers import free_port, wait_for

from depthseg.core.params import parse_params
from depthseg.tuning.storage import open_study


def test_the_dashboard_reads_a_study_of_our_storage(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    params = parse_params({"tune": {"study_name": "dashboard", "objective": "pareto"}})
    study = open_study(params.tune, storage=storage)
    study.optimize(lambda trial: (trial.suggest_float("x", 0, 1), 0.5), n_trials=3)
    executable = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    assert executable, "optuna-dashboard is not installed beside this interpreter"
    port = free_port()
    server = subprocess.Popen(
        [executable, storage, "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        listing = wait_for(f"http://127.0.0.1:{port}/api/studies", server).json()
        [summary] = [s for s in listing["study_summaries"] if s["study_name"] == "dashboard"]
        assert summary["directions"] == ["maximize", "minimize"]
        detail = requests.get(
            f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}", timeout=10
        ).json()
        assert len(detail["trials"]) == 3
        assert all(t["state"] == "Complete" for t in detail["trials"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert optuna.load_study(study_name="dashboard", storage=storage).trials
