"""Input speed: scenes per second the training loader delivers, and memory per loader worker.

The training split is read as training reads it (EpochSampler keys, params.yaml's augmentation,
uint8 batches of 16), with no model: in the main process (0 workers) and with 1, 2 and N worker
processes, at 64, 96 and 160 px. Then, for an index of 400,000 rows (the release's size, made by
repeating this one), the private memory of each of two workers after 100 batches: what forked
workers copy of the index as they read it.

    dvc repro index && .venv/bin/python benchmarks/bench_input.py
    .venv/bin/python benchmarks/bench_input.py --modest ../shared/modest-mini
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
from torch.utils.data import DataLoader

from depthseg.core.params import IndexParams, load_params
from depthseg.core.paths import INDEX_FILE
from depthseg.data.archive import pack_folder
from depthseg.data.dataset import SceneDataset, collate_scenes
from depthseg.data.indexing import build_index, read_index
from depthseg.data.sampling import EpochSampler
from depthseg.data.transforms import build_augmentation

BATCH = 16
RELEASE_ROWS = 400_000


def loader(dataset: SceneDataset, size: int, scenes: int, workers: int) -> DataLoader:
    sampler = EpochSampler(len(dataset), size, shuffle=True, scenes_per_epoch=scenes)
    return DataLoader(
        dataset, BATCH, sampler=sampler, num_workers=workers, collate_fn=collate_scenes,
        persistent_workers=workers > 0,
    )  # fmt: skip


def scenes_per_second(dataset: SceneDataset, size: int, scenes: int, workers: int) -> float:
    batches = loader(dataset, size, scenes, workers)
    for _ in batches:  # workers started, backgrounds decoded: as from a training's second epoch
        pass
    started = time.perf_counter()
    count = sum(len(batch["bg"]) for batch in batches)
    return count / (time.perf_counter() - started)


def worker_memory(dataset: SceneDataset, batches: int) -> list[tuple[float, float]]:
    """(private MB, proportional MB) of each of two workers after ``batches`` batches."""
    iterator = iter(loader(dataset, 96, len(dataset), workers=2))
    for _ in range(batches):
        next(iterator)
    workers = psutil.Process().children()
    return [
        (info.uss / 2**20, info.pss / 2**20)
        for info in (worker.memory_full_info() for worker in workers)
    ]


def modest_table(folder: Path, scratch: Path) -> tuple[pd.DataFrame, Path]:
    archive = scratch / "modest.zip"
    pack_folder(folder, archive)
    table, _ = build_index(archive, IndexParams())
    return table, archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=INDEX_FILE, help="an index after dvc repro")
    parser.add_argument("--modest", type=Path, help="a MODEST-layout folder to read instead")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 160])
    parser.add_argument("--scenes", type=int, default=1600, help="scenes read per measurement")
    parser.add_argument(
        "--augment", action=argparse.BooleanOptionalAction, default=True,
        help="apply params.yaml's augmentation (default: yes)",
    )  # fmt: skip
    args = parser.parse_args()
    params = load_params()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as scratch:
        if args.modest:
            table, archive = modest_table(args.modest, Path(scratch))
        else:
            table, archive = read_index(args.index)
            table = table[table["split"] == "train"]
        augmentation = build_augmentation(params.train.augment) if args.augment else None
        print(f"{platform.processor() or platform.machine()}, {cores} cores; {len(table)} "
              f"scenes from {archive}; augmentation {'on' if augmentation else 'off'}")  # fmt: skip
        print("| size | workers | scenes/s |\n|---|---|---|")
        for size in args.sizes:
            for workers in sorted({0, 1, 2, cores}):
                dataset = SceneDataset(table, archive, size, augmentation)
                rate = scenes_per_second(dataset, size, args.scenes, workers)
                print(f"| {size} | {workers} | {rate:.0f} |", flush=True)
        repeats = -(-RELEASE_ROWS // len(table))
        release = pd.concat([table] * repeats, ignore_index=True).iloc[:RELEASE_ROWS]
        dataset = SceneDataset(release, archive, 96, augmentation)
        for worker, (private, proportional) in enumerate(worker_memory(dataset, 100)):
            print(f"worker {worker} at {len(release):,} rows after 100 batches: "
                  f"{private:.0f} MB private, {proportional:.0f} MB proportional")  # fmt: skip


if __name__ == "__main__":
    main()
