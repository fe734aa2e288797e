"""Input speed: scenes per second the training loader delivers, and memory per loader worker.

The training split is read through the real Trainer's own loader (EpochSampler keys, params.yaml's
augmentation, uint8 batches of 16), with no training step: in the main process (0 workers) and
with 1, 2 and N worker processes, at 64, 96 and 160 px. Then, for an index of 400,000 rows (the
release's size, made by repeating this one), the private memory of each of two workers after 100
batches: what forked workers copy of the index as they read it.

    dvc repro index && .venv/bin/python benchmarks/bench_input.py
    .venv/bin/python benchmarks/bench_input.py --modest ../shared/modest-mini
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
from torch.utils.data import DataLoader

from depthseg.core.params import IndexParams, load_params
from depthseg.core.paths import INDEX_FILE
from depthseg.data.archive import pack_folder
from depthseg.data.indexing import build_index, read_index
from depthseg.engine.assembly import build_run
from depthseg.engine.loop import Trainer

RELEASE_ROWS = 400_000


def training_loader(
    table: pd.DataFrame,
    archive: Path,
    folder: Path,
    size: int,
    scenes: int,
    workers: int,
    augment: bool,
) -> DataLoader:
    """The loader a training with these settings reads (built by the real Trainer)."""
    params = load_params(overrides=[
        f"train.workers={workers}", f"train.scenes_per_epoch={scenes}", "train.resume=false",
        f"train.image_sizes=[{size}]", "train.batch_size=16",
        *([] if augment else ["train.augment.photometric=false", "train.augment.geometric=false"]),
    ])  # fmt: skip
    return Trainer(build_run(params, table, archive, folder)).train_batches(1, size)


def scenes_per_second(batches: DataLoader, rounds: int) -> float:
    """The median over ``rounds`` passes, after one that starts the workers and decodes the
    backgrounds (as from a training's second epoch)."""
    for _ in batches:
        pass
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        count = sum(len(batch["bg"]) for batch in batches)
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def worker_memory(batches: DataLoader, count: int) -> list[tuple[float, float]]:
    """(private MB, proportional MB) of each worker after ``count`` batches."""
    iterator = iter(batches)
    for _ in range(count):
        next(iterator)
    workers = psutil.Process().children()
    return [
        (info.uss / 2**20, info.pss / 2**20)
        for info in (worker.memory_full_info() for worker in workers)
    ]


def modest_table(folder: Path, scratch: Path) -> tuple[pd.DataFrame, Path]:
    archive = scratch / "modest.zip"
    limits = load_params().limits
    pack_folder(folder, archive, limits)
    table, _ = build_index(archive, IndexParams(), limits)
    return table, archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=INDEX_FILE, help="an index after dvc repro")
    parser.add_argument("--modest", type=Path, help="a MODEST-layout folder to read instead")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 160])
    parser.add_argument("--scenes", type=int, default=1600, help="scenes read per pass")
    parser.add_argument("--rounds", type=int, default=3, help="passes measured; the median counts")
    parser.add_argument(
        "--augment", action=argparse.BooleanOptionalAction, default=True,
        help="apply params.yaml's augmentation (default: yes)",
    )  # fmt: skip
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if args.modest:
            table, archive = modest_table(args.modest, folder)
        else:
            table, archive = read_index(args.index)
        scenes = int((table["split"] == "train").sum())
        print(f"{platform.processor() or platform.machine()}, {cores} cores; {scenes} training "
              f"scenes from {archive}; augmentation {'on' if args.augment else 'off'}")  # fmt: skip
        print("| size | workers | scenes/s |\n|---|---|---|")
        for size in args.sizes:
            for workers in sorted({0, 1, 2, cores}):
                batches = training_loader(
                    table, archive, folder / "checkpoints", size, args.scenes, workers, args.augment
                )
                rate = scenes_per_second(batches, args.rounds)
                print(f"| {size} | {workers} | {rate:.0f} |", flush=True)
        repeats = -(-RELEASE_ROWS // len(table))
        release = pd.concat([table] * repeats, ignore_index=True).iloc[:RELEASE_ROWS]
        batches = training_loader(
            release, archive, folder / "checkpoints", 96, RELEASE_ROWS, 2, args.augment
        )
        for worker, (private, proportional) in enumerate(worker_memory(batches, 100)):
            print(f"worker {worker} at {len(release):,} rows after 100 batches: "
                  f"{private:.0f} MB private, {proportional:.0f} MB proportional")  # fmt: skip


if __name__ == "__main__":
    main()
