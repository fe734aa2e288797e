"""Training speed of one optimizer step: eager fp32 against the default compute settings.

Each variant is the real Trainer (params.yaml with its train.precision, channels_last and
compile changed) stepping on one real batch of 16 from the index, at 64 and 96 px. Variants take
turns, several rounds each, so that a change in the machine's load hits all of them alike; the
median round is printed, with its speed-up over eager fp32 in the contiguous layout and its
arithmetic rate (FLOPs of one step, counted by PyTorch's FlopCounterMode) as a share of this
machine's measured peak: a matrix product large enough to reach it, in bf16 and in fp32. On a GPU
(`--device cuda`) the clock is read only after the device has finished its queued work, and
fp16 with its GradScaler is timed too.

`--profile` instead profiles the default variant and prints, by the size of the feature maps,
how long the convolutions' backward passes take against their share of the arithmetic.

    dvc repro index && .venv/bin/python benchmarks/bench_train_step.py [--no-compile]
    .venv/bin/python benchmarks/bench_train_step.py --profile --sizes 64 96
    .venv/bin/python benchmarks/bench_train_step.py --device cuda --batch 128 --sizes 96 160
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from depthseg.core.params import load_params
from depthseg.core.paths import INDEX_FILE
from depthseg.data.indexing import read_index
from depthseg.engine.assembly import build_run
from depthseg.engine.loop import Trainer

#: The variant params.yaml's defaults amount to (on this CPU: bf16, as precision is auto).
DEFAULT_VARIANT = "bf16 autocast, channels_last (default here)"
#: name -> train param overrides; the first is the reference.
VARIANTS = {
    "eager fp32, contiguous": ["train.precision=fp32", "train.channels_last=false"],
    "fp32, channels_last": ["train.precision=fp32", "train.channels_last=true"],
    DEFAULT_VARIANT: ["train.precision=auto", "train.channels_last=true"],
}
GPU_ONLY = {
    "fp16 autocast + GradScaler, channels_last": [
        "train.precision=fp16", "train.channels_last=true"
    ],
}  # fmt: skip
COMPILED = {
    "bf16, channels_last, torch.compile": [
        "train.precision=auto", "train.channels_last=true", "train.compile=true"
    ],
}  # fmt: skip


def make_trainer(
    overrides: list[str], size: int, batch_size: int, device: str, folder: Path
) -> tuple[Trainer, dict]:
    params = load_params(overrides=[
        *overrides, f"train.image_sizes=[{size}]", f"train.batch_size={batch_size}",
        f"train.device={device}", "train.workers=0", "train.resume=false",
    ])  # fmt: skip
    table, archive = read_index(INDEX_FILE)
    trainer = Trainer(build_run(params, table, archive, folder))
    trainer.model.train()
    batch = next(iter(trainer.train_batches(1, size)))
    for _ in range(3):  # warm-up (and compilation)
        trainer.step(batch)
    return trainer, batch


def matmul_peak(dtype: torch.dtype, device: str, side: int, repeats: int = 5) -> float:
    """GFLOP/s of the best of ``repeats`` side x side matrix products in ``dtype``."""
    a, b = (torch.randn(side, side, device=device).to(dtype) for _ in range(2))
    best = math.inf
    for _ in range(repeats + 1):  # the first warms up
        finish_queued_work(device == "cuda")
        started = time.perf_counter()
        a @ b
        finish_queued_work(device == "cuda")
        best = min(best, time.perf_counter() - started)
    return 2 * side**3 / best / 1e9


def step_flops(trainer: Trainer, batch: dict) -> float:
    """FLOPs of one training step (forward and backward) as PyTorch counts them."""
    with FlopCounterMode(display=False) as counter:
        trainer.step(batch)
    return float(counter.get_total_flops())


def finish_queued_work(on_gpu: bool) -> None:
    """Wait for the GPU: its steps run asynchronously, so the clock alone would time queueing."""
    if on_gpu:
        torch.cuda.synchronize()


def backward_by_map_size(trainer: Trainer, batch: dict, steps: int = 3) -> None:
    """Print the convolutions' backward time and arithmetic, grouped by feature-map size."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiled:
        for _ in range(steps):
            trainer.step(batch)
    seconds: dict[int, float] = {}
    flops: dict[int, float] = {}
    layers: dict[int, int] = {}
    for event in profiled.key_averages(group_by_input_shape=True):
        if event.key != "aten::convolution_backward":
            continue
        grad_output, inputs, weight = event.input_shapes[:3]
        side = inputs[2]
        # Gradients of input and weight: two products the size of the forward one (2 FLOPs each).
        per_call = 4 * inputs[0] * grad_output[2] * grad_output[3] * math.prod(weight)
        seconds[side] = seconds.get(side, 0.0) + event.self_cpu_time_total / 1e6 / steps
        flops[side] = flops.get(side, 0.0) + per_call * event.count / steps
        layers[side] = layers.get(side, 0) + event.count // steps
    total_seconds, total_flops = sum(seconds.values()), sum(flops.values())
    print("| maps | convolutions | backward ms/step | share of time | share of FLOPs | GFLOP/s |")
    print("|---|---|---|---|---|---|")
    for side in sorted(seconds):
        print(f"| {side}x{side} | {layers[side]} | {seconds[side] * 1e3:.1f} | "
              f"{seconds[side] / total_seconds:.0%} | {flops[side] / total_flops:.0%} | "
              f"{flops[side] / seconds[side] / 1e9:.0f} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="steps per round and variant")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (default: cpu)")
    parser.add_argument("--batch", type=int, default=16, help="batch size (default: 16)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="on the CPU: where the default step's backward time goes",
    )
    args = parser.parse_args()
    if args.profile:
        default = VARIANTS[DEFAULT_VARIANT]
        with tempfile.TemporaryDirectory() as scratch:
            for size in args.sizes:
                print(f"{size} px, batch {args.batch}:")
                backward_by_map_size(
                    *make_trainer(default, size, args.batch, args.device, Path(scratch))
                )
        return
    on_gpu = args.device == "cuda"
    variants = VARIANTS | (GPU_ONLY if on_gpu else {}) | ({} if args.no_compile else COMPILED)
    machine = torch.cuda.get_device_name() if on_gpu else platform.processor() or platform.machine()
    side = 8192 if on_gpu else 2048
    peaks = {name: matmul_peak(dtype, args.device, side) for name, dtype in
             (("bf16", torch.bfloat16), ("fp32", torch.float32))}  # fmt: skip
    print(f"{machine}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch}, SGD step with the joint loss; peak of a {side}x{side} matrix "
          f"product: bf16 {peaks['bf16']:.0f} GFLOP/s, "
          f"fp32 {peaks['fp32']:.0f} GFLOP/s")  # fmt: skip
    print("| size | variant | samples/s | vs eager fp32 | GFLOP/s | of bf16 peak | of fp32 peak |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            ready = {
                name: make_trainer(
                    overrides, size, args.batch, args.device, Path(scratch) / f"variant{number}"
                )
                for number, (name, overrides) in enumerate(variants.items())
            }
            rates: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.rounds):
                for name, (trainer, batch) in ready.items():
                    finish_queued_work(on_gpu)
                    started = time.perf_counter()
                    for _ in range(args.steps):
                        trainer.step(batch)
                    finish_queued_work(on_gpu)
                    rates[name].append(args.batch * args.steps / (time.perf_counter() - started))
            reference = statistics.median(next(iter(rates.values())))
            trainer, batch = next(iter(ready.values()))
            flops_per_sample = step_flops(trainer, batch) / args.batch
            for name, values in rates.items():
                rate = statistics.median(values)
                gflops = rate * flops_per_sample / 1e9
                print(f"| {size} | {name} | {rate:.1f} | {rate / reference:.2f}x | {gflops:.1f} "
                      f"| {gflops / peaks['bf16']:.0%} | {gflops / peaks['fp32']:.0%} |",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
