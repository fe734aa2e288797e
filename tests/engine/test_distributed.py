"""DDP through the real torchrun: two CPU processes on gloo, against one process."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from repro_project import clone_project, project_env, run

from depthseg.core.params import parse_params
from depthseg.data.decoded_cache import CACHE_PREFIX
from depthseg.engine.callbacks import EpochReport
from depthseg.engine.checkpoints import Checkpoints, Progress, Trainables
from depthseg.engine.compute import TrainingError
from depthseg.engine.distributed import ProcessGroup, run_in_processes, torchrun_command
from depthseg.engine.recipe import LRSchedule

#: One process with the global batch of two processes of 8 each.
GLOBAL_BATCH = 16
#: How far apart (relative) the two may end. Not bit for bit: each process normalises its own
#: half batch (BatchNorm), and the mask's Dice loss is not a mean of per-scene terms. Measured:
#: 0.004% (train loss) to 0.4% (val RMSE) apart.
RELATIVE_TOLERANCE = 0.02


def test_the_environment_torchrun_sets_describes_the_group(monkeypatch) -> None:
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    group = ProcessGroup.from_env()
    assert (group.rank, group.world_size, group.distributed, group.is_main) == (3, 4, True, False)
    assert group.device(torch.device("cuda")) == torch.device("cuda", 1)
    assert group.device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.delenv("WORLD_SIZE")
    assert not ProcessGroup.from_env().distributed


def test_several_processes_start_under_torchrun_on_this_machine() -> None:
    command = torchrun_command(4, "src/train.py", ["-S", "train.epochs=2"])
    assert command[1:] == [
        "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4",
        "src/train.py", "-S", "train.epochs=2",
    ]  # fmt: skip


#: Run by torchrun in each process: sums totals over the group, writes what this rank got.
SUM_SCRIPT = """
import json, sys
from depthseg.engine.distributed import process_group

with process_group("cpu") as group:
    summed = group.summed(1.5 * (group.rank + 1), group.rank, 7)
open(f"{sys.argv[1]}/rank{group.rank}.json", "w").write(json.dumps(summed))
"""


def test_totals_are_summed_over_the_processes_and_kept_in_one(tmp_path: Path) -> None:
    assert ProcessGroup().summed(1.5, 2, 7) == [1.5, 2.0, 7.0]
    script = tmp_path / "sum.py"
    script.write_text(SUM_SCRIPT)
    assert run_in_processes(2, str(script), [str(tmp_path)]) == 0
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == [4.5, 1.0, 14.0]


#: Run by torchrun in each process: the run's decoded cache; rank 1 stores a scene.
CACHE_SCRIPT = """
import json, sys
import numpy as np
from depthseg.core.params import parse_params
from depthseg.data.decoded_cache import StoredScene
from depthseg.engine.assembly import decoded_cache
from depthseg.engine.distributed import process_group

config = parse_params({"train": {"epochs": 2, "image_sizes": [32]}}).train
with process_group("cpu") as group:
    cache = decoded_cache("train", 4, config, group)
    if group.rank == 1:
        label = np.ones((32, 32), np.uint8)
        cache.put(3, 32, StoredScene(np.full((32, 32, 3), 7, np.uint8), label, label))
    group.barrier()
    stored = cache.get(3, 32)
    seen = {"folder": str(cache.folder), "value": int(stored.bg_fg[0, 0, 0])}
    group.barrier()  # rank 0 removes the folder as it ends
open(f"{sys.argv[1]}/rank{group.rank}.json", "w").write(json.dumps(seen))
"""


def test_the_processes_on_a_machine_share_one_decoded_cache(tmp_path: Path, monkeypatch) -> None:
    (temporary := tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    script = tmp_path / "cache.py"
    script.write_text(CACHE_SCRIPT)
    assert run_in_processes(2, str(script), [str(tmp_path)]) == 0
    seen = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert seen[0] == seen[1] and seen[0]["value"] == 7  # rank 0 read what rank 1 stored
    assert Path(seen[0]["folder"]).parent == temporary
    assert not list(temporary.glob(f"{CACHE_PREFIX}*"))  # gone with the run


def test_a_checkpoint_of_another_number_of_processes_is_not_resumed(tmp_path: Path) -> None:
    params = parse_params({})
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainables = Trainables(
        model, optimizer, LRSchedule(optimizer, params.train, 4), torch.amp.GradScaler("cpu")
    )
    report = EpochReport(1, 64, 0.1, 1.0, 1.0, {}, 10.0, 1.0)
    two = Checkpoints(tmp_path, params, "data", processes=2)
    two.save(trainables, Progress([report], None), kept=False)
    one = Checkpoints(tmp_path, params, "data", processes=1)
    with pytest.raises(TrainingError, match=r"run\.processes"):
        one.resumable(torch.device("cpu"), True)
    assert two.resumable(torch.device("cpu"), True)["epoch"] == 1


def _runs(project: Path) -> list[str]:
    client = MlflowClient(f"sqlite:///{project / 'tracking.db'}")
    experiment = client.get_experiment_by_name("depthseg")
    return [run.info.run_id for run in client.search_runs([experiment.experiment_id])]


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(pipeline, tmp_path: Path):
    """Through the params, as `dvc exp run -S train.processes=2` would start it."""
    project, _ = pipeline
    results = {}
    for name, processes in [("ddp", 2), ("single", 1)]:
        copy = clone_project(project, tmp_path / name)
        runs_before = _runs(copy)
        # train.processes: 2 starts train.py again under torchrun, two processes on gloo.
        command = ["python", "src/train.py", "-S", f"train.processes={processes}"]
        command += ["-S", f"train.batch_size={GLOBAL_BATCH // processes}"]
        env = project_env(copy) | {"OMP_NUM_THREADS": "1"}
        output = run([*command, "-S", "train.resume=false"], copy, env)
        # Rank 0 alone reports and writes: one line per epoch, one new MLflow run.
        assert output.stdout.count("epoch 2/2 at 64 px") == 1, output.stdout
        new_runs = set(_runs(copy)) - set(runs_before)
        assert len(new_runs) == 1
        metrics = json.loads((copy / "results/train/metrics.json").read_text())
        assert metrics["mlflow_run_id"] in new_runs
        history = pd.read_csv(copy / "results/train/history.csv")
        assert history["epoch"].tolist() == [1, 2]
        assert (copy / "models/model.pt").is_file()
        results[name] = metrics["final"]
    # Soft IoU: after two epochs of this tiny model, the thresholded IoU is still 0 in both.
    for key in ("val_mask_soft_iou", "val_depth_rmse", "train_loss", "val_loss"):
        expected = pytest.approx(results["single"][key], rel=RELATIVE_TOLERANCE)
        assert results["ddp"][key] == expected, key
