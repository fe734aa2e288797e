"""Input speed: scenes per second from the archive to the network's input, and memory per worker.

The training split is read through the real Trainer's own loader (EpochSampler keys, uint8
batches of 16) and made into the network's input by its own ``ComputeSetup.inputs``, with
params.yaml's augmentation (which runs there, on the batch), and no training step: with the
loader in the main process (0 workers) and with 1, 2 and N worker processes, at 64, 96 and 160 px;
the main process keeps the cores the workers leave it. Each setting reads the same epoch again: the
first pass starts the workers and decodes every scene (storing it in ``train.decoded_cache``), the
ones measured after it read what a training's later epochs read; both are printed.
Two more tables give each side's share alone: a worker's on one thread (reading, decoding, the
photometric change and collation of the same batches, in this process), the most one loader
worker can deliver, and the main process's on all cores (conversion and augmentation of batches
already read). Then, for an index of 400,000 rows (the release's size, made by repeating this
one), the private memory of each of two workers after 100 batches: what forked workers copy of
the index as they read it.

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
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import pandas as pd
import psutil
import torch
from torch.utils.data import DataLoader

from depthseg.core.params import IndexParams
from depthseg.core.params_file import load_params
from depthseg.core.paths import INDEX_FILE
from depthseg.data.archive import pack_folder
from depthseg.data.dataset import collate_scenes
from depthseg.data.indexing import build_index, read_index
from depthseg.engine.assembly import build_run
from depthseg.engine.loop import Trainer

RELEASE_ROWS = 400_000
#: OpenCV's threads in a fresh process; a Trainer with workers leaves this one with one.
OPENCV_THREADS = cv2.getNumThreads()


def training_trainer(
    table: pd.DataFrame,
    archive: Path,
    folder: Path,
    size: int,
    scenes: int,
    workers: int,
    augment: bool,
    overrides: tuple[str, ...] = (),
) -> Trainer:
    """The real Trainer of a training with these settings (and params ``overrides``), at
    ``size`` only, with OpenCV's threads as a training process starts with."""
    cv2.setNumThreads(OPENCV_THREADS)
    params = load_params(overrides=[
        f"train.workers={workers}", f"train.scenes_per_epoch={scenes}", "train.resume=false",
        f"train.image_sizes=[{size}]", "train.batch_size=16",
        *([] if augment else ["train.augment.photometric=false", "train.augment.geometric=false"]),
        *overrides,
    ])  # fmt: skip
    return Trainer(build_run(params, table, archive, folder))


def network_inputs(trainer: Trainer, batches: Iterable[dict[str, Any]]) -> int:
    """Scenes made into the network's input, as a training step does; how many there were."""
    count = 0
    for batch in batches:
        bg, *_ = trainer.setup.inputs(batch, trainer.parts.geometric)
        count += len(bg)
    return count


def worker_work(trainer: Trainer, size: int) -> int:
    """The batches of epoch 1 read as a loader worker reads them, here; how many scenes."""
    split = trainer.parts.train
    split.sampler.set_epoch(1, size)
    keys = list(split.sampler)
    batch_size = split.loader.batch_size or 1
    for start in range(0, len(keys), batch_size):
        collate_scenes([split.scenes[key] for key in keys[start : start + batch_size]])
    return len(keys)


def scenes_per_second(passes: Callable[[], int], rounds: int) -> tuple[float, float]:
    """The median over ``rounds`` passes, after a first one that starts the workers and decodes
    the scenes (as from a training's second epoch), and that first pass's own rate."""
    rates = []
    for _ in range(1 + rounds):
        started = time.perf_counter()
        count = passes()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates[1:]), rates[0]


def worker_memory(batches: DataLoader, count: int) -> list[tuple[float, float]]:
    """(private MB, proportional MB) of each worker after ``count`` batches."""
    earlier = set(psutil.Process().children())  # the other loaders' persistent workers
    iterator = iter(batches)
    for _ in range(count):
        next(iterator)
    workers = [child for child in psutil.Process().children() if child not in earlier]
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
    parser.add_argument(
        "--decoded-cache", action=argparse.BooleanOptionalAction, default=True,
        help="keep decoded scenes for later epochs, train.decoded_cache (default: yes)",
    )  # fmt: skip
    args = parser.parse_args()
    overrides = (f"train.decoded_cache={str(args.decoded_cache).lower()}",)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if args.modest:
            table, archive = modest_table(args.modest, folder)
        else:
            table, archive = read_index(args.index)
        scenes = int((table["split"] == "train").sum())
        print(f"{platform.processor() or platform.machine()}, {cores} cores; {scenes} training "
              f"scenes from {archive}; augmentation {'on' if args.augment else 'off'}; "
              f"decoded cache {'on' if args.decoded_cache else 'off'}")  # fmt: skip
        header = "| size | workers | scenes/s | first pass, scenes/s |\n|---|---|---|---|"
        print(header)
        worker_shares, main_shares = {}, {}
        for size in args.sizes:
            for workers in sorted({0, 1, 2, cores}):
                # The workers' cores are theirs: the main process's threads would spin-wait on
                # them between its operations (a GPU's main process computes elsewhere).
                torch.set_num_threads(max(1, cores - workers))
                trainer = training_trainer(
                    table, archive, folder / "checkpoints", size, args.scenes, workers,
                    args.augment, overrides,
                )  # fmt: skip
                batches = trainer.train_batches(1, size)
                rates = scenes_per_second(partial(network_inputs, trainer, batches), args.rounds)
                print(f"| {size} | {workers} | {rates[0]:.0f} | {rates[1]:.0f} |", flush=True)
            torch.set_num_threads(1)
            alone = training_trainer(
                table, archive, folder / "checkpoints", size, args.scenes, 0, args.augment,
                overrides,
            )  # fmt: skip
            worker_shares[size] = scenes_per_second(partial(worker_work, alone, size), args.rounds)
            torch.set_num_threads(cores)
            read = list(trainer.train_batches(1, size))
            main_shares[size] = scenes_per_second(
                partial(network_inputs, trainer, read), args.rounds
            )
        for title, shares in (
            ("A worker's share alone (reading, decoding or the decoded cache, photometric change, "
             "collation; one thread):", worker_shares),
            (f"The main process's share alone (conversion and augmentation of batches read; "
             f"{cores} threads):", main_shares),
        ):  # fmt: skip
            print(f"\n{title}\n| size | scenes/s | first pass, scenes/s |\n|---|---|---|")
            for size, (rate, first) in shares.items():
                print(f"| {size} | {rate:.0f} | {first:.0f} |")
        repeats = -(-RELEASE_ROWS // len(table))
        release = pd.concat([table] * repeats, ignore_index=True).iloc[:RELEASE_ROWS]
        batches = training_trainer(
            release, archive, folder / "checkpoints", 96, RELEASE_ROWS, 2, args.augment, overrides
        ).train_batches(1, 96)
        for worker, (private, proportional) in enumerate(worker_memory(batches, 100)):
            print(f"worker {worker} at {len(release):,} rows after 100 batches: "
                  f"{private:.0f} MB private, {proportional:.0f} MB proportional")  # fmt: skip


if __name__ == "__main__":
    main()
