"""Which limits training on this machine, input or compute: three timings of the real Trainer.

On the built-in synthetic data, written to a scratch folder: for each image size, (1) the input
alone, from the archive to the network's input on the device, augmentation included (as
bench_input.py): a first pass, which decodes every training scene into the decoded cache, and a
second, which reads what a training's later epochs read; (2) the training step alone, on one
batch already on the device; (3) a whole training epoch, both together. The slower of the second
pass and (2) is the limit; (3) shows how well the two overlap. On a GPU the clock is read after
the device has finished its queued work.

    python benchmarks/gpu/timing.py --device cuda --sizes 96 160 --batch 128
    python benchmarks/gpu/timing.py --device cpu --sizes 64 --batch 8 --scenes 64 --steps 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_input import network_inputs, scenes_per_second, training_trainer

from depthseg.core.params_file import load_params
from depthseg.data.indexing import build_index
from depthseg.data.sources import fetch as fetch_source


def synthetic_release(folder: Path, backgrounds: int, workers: int):
    """The built-in dataset with ``backgrounds`` rooms, indexed: (table, archive)."""
    params = load_params(overrides=[f"data.synthetic.backgrounds={backgrounds}"])
    archive = folder / "modest.zip"
    fetch_source(params.data, params.limits, archive, folder / "download", workers=workers)
    table, _ = build_index(archive, params.index, params.limits, workers)
    return table, archive


def finish_queued_work(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda | cpu (default: cuda)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 160])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1) - 2))
    parser.add_argument("--backgrounds", type=int, default=200, help="rooms of the dataset")
    parser.add_argument("--scenes", type=int, default=12800, help="scenes per timed pass")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed alone")
    args = parser.parse_args()
    overrides = (f"train.device={args.device}", f"train.batch_size={args.batch}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        table, archive = synthetic_release(folder, args.backgrounds, os.cpu_count() or 1)
        print(f"data: {len(table)} scenes in {time.perf_counter() - started:.0f} s")
        print(f"torch {torch.__version__}, {args.workers} loader workers, batch {args.batch}")
        print("| size | input alone, scenes/s | its first pass | step alone, samples/s "
              "| training, samples/s | limit |\n|---|---|---|---|---|---|")  # fmt: skip
        for size in args.sizes:
            trainer = training_trainer(
                table, archive, folder / f"checkpoints{size}", size, args.scenes, args.workers,
                augment=True, overrides=overrides,
            )  # fmt: skip
            device = trainer.setup.device
            batches = trainer.train_batches(1, size)

            def input_pass(batches=batches, trainer=trainer, device=device) -> int:
                count = network_inputs(trainer, batches)
                finish_queued_work(device)
                return count

            input_rate, first_pass_rate = scenes_per_second(input_pass, rounds=1)
            batch = next(iter(batches))
            batch["scenes"] = batch["scenes"].to(device)
            trainer.model.train()
            for _ in range(3):  # warm-up: cuDNN's autotuning
                trainer.step(batch)
            finish_queued_work(device)
            started = time.perf_counter()
            for _ in range(args.steps):
                trainer.step(batch)
            finish_queued_work(device)
            step_rate = len(batch["scenes"]) * args.steps / (time.perf_counter() - started)
            _, training_rate, _ = trainer.train_epoch(1)
            limit = "input" if input_rate < step_rate else "compute"
            print(f"| {size} | {input_rate:.0f} | {first_pass_rate:.0f} | {step_rate:.0f} | "
                  f"{training_rate:.0f} | {limit} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
