"""Training speed of one optimizer step: eager fp32 against the default compute settings.

Each variant is the real Trainer (params.yaml with its train.precision, channels_last and
compile changed) stepping on one real batch of 16 from the index, at 64 and 96 px. Variants take
turns, several rounds each, so that a change in the machine's load hits all of them alike; the
median round is printed, with its speed-up over eager fp32 in the contiguous layout and its
arithmetic rate (FLOPs of one step, counted by PyTorch's FlopCounterMode) as a share of this
machine's measured peak: a matrix product large enough to reach it, in fp32 and, where the
machine computes it natively, in bf16 (elsewhere bf16 is emulated, far slower than fp32, and left
out). The row params.yaml's defaults amount to here is marked. On a GPU (`--device cuda`) the
clock is read only after the device has finished its queued work, and fp16 with its GradScaler
is timed too.

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
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from depthseg.core.params import TrainParams
from depthseg.core.params_file import load_params
from depthseg.core.paths import INDEX_FILE
from depthseg.data.indexing import read_index
from depthseg.engine.assembly import build_run
from depthseg.engine.compute import autocast_dtype, select_device
from depthseg.engine.loop import Trainer

#: An autocast dtype (None: plain fp32) -> the name of ``train.precision`` that asks for it.
PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Variant:
    """One way to compute the training step: what the train params say."""

    precision: str  # fp32 | bf16 | fp16
    channels_last: bool
    compile: bool = False

    @property
    def name(self) -> str:
        arithmetic = {"fp32": "fp32", "bf16": "bf16 autocast",
                      "fp16": "fp16 autocast + GradScaler"}[self.precision]  # fmt: skip
        layout = "channels_last" if self.channels_last else "contiguous"
        return f"{arithmetic}, {layout}" + (", torch.compile" if self.compile else "")

    @property
    def overrides(self) -> list[str]:
        return [f"train.precision={self.precision}", f"train.channels_last={self.channels_last}",
                f"train.compile={self.compile}"]  # fmt: skip


#: The reference the others are compared with.
EAGER_FP32 = Variant("fp32", channels_last=False)
DEFAULT_MARK = " (default here)"


def chosen_variants(device: torch.device, train: TrainParams, compiled: bool) -> dict[str, Variant]:
    """Name -> variant, the reference first: fp32 in both layouts, then each reduced precision
    that ``device`` computes natively (bf16 where ``autocast_dtype`` would choose it, fp16 with
    its GradScaler on CUDA), then, when ``compiled``, ``train``'s own variant compiled. The
    variant ``train`` amounts to on ``device`` is always there, its name marked '(default here)'.

    Emulated bf16 is left out: on a CPU without it a 2048 x 2048 bf16 product ran at 0.3 GFLOP/s
    against fp32's 130 (AMD EPYC without AVX-512, 2026-12-07), so a step would take minutes.
    """
    native = autocast_dtype(device, "auto")
    default = Variant(PRECISION_NAMES[autocast_dtype(device, train.precision)],
                      train.channels_last, train.compile)  # fmt: skip
    variants = [EAGER_FP32, Variant("fp32", channels_last=True)]
    if native is torch.bfloat16:
        variants.append(Variant("bf16", channels_last=True))
    if device.type == "cuda":
        variants.append(Variant("fp16", channels_last=True))
    if default not in variants:
        variants.append(default)
    if compiled and not default.compile:
        variants.append(replace(default, compile=True))
    return {
        variant.name + (DEFAULT_MARK if variant == default else ""): variant for variant in variants
    }


def make_trainer(
    variant: Variant, size: int, batch_size: int, device: str, folder: Path
) -> tuple[Trainer, dict]:
    params = load_params(overrides=[
        *variant.overrides, f"train.image_sizes=[{size}]", f"train.batch_size={batch_size}",
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
    on_gpu = args.device == "cuda"
    device = select_device(args.device)
    variants = chosen_variants(device, load_params().train, compiled=not args.no_compile)
    if args.profile:
        default = next(variant for name, variant in variants.items() if name.endswith(DEFAULT_MARK))
        with tempfile.TemporaryDirectory() as scratch:
            for size in args.sizes:
                print(f"{size} px, batch {args.batch}:")
                backward_by_map_size(
                    *make_trainer(default, size, args.batch, args.device, Path(scratch))
                )
        return
    machine = torch.cuda.get_device_name() if on_gpu else platform.processor() or platform.machine()
    side = 8192 if on_gpu else 2048
    # A bf16 peak only where a variant computes in bf16 (natively, see chosen_variants).
    dtypes = {"fp32": torch.float32}
    if any(variant.precision == "bf16" for variant in variants.values()):
        dtypes = {"bf16": torch.bfloat16, **dtypes}
    peaks = {name: matmul_peak(dtype, args.device, side) for name, dtype in dtypes.items()}
    measured = ", ".join(f"{name} {peak:.0f} GFLOP/s" for name, peak in peaks.items())
    left_out = "" if "bf16" in peaks else " (no native bf16 here: its variants are left out)"
    print(f"{machine}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch}, SGD step with the joint loss; peak of a {side}x{side} matrix "
          f"product: {measured}{left_out}")  # fmt: skip
    shares = [f"of {name} peak" for name in peaks]
    print(f"| size | variant | samples/s | vs eager fp32 | GFLOP/s | {' | '.join(shares)} |")
    print("|---|---|---|---|---|" + "---|" * len(shares))
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            ready = {
                name: make_trainer(
                    variant, size, args.batch, args.device, Path(scratch) / f"variant{number}"
                )
                for number, (name, variant) in enumerate(variants.items())
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
                of_peaks = " | ".join(f"{gflops / peak:.0%}" for peak in peaks.values())
                print(f"| {size} | {name} | {rate:.1f} | {rate / reference:.2f}x | {gflops:.1f} "
                      f"| {of_peaks} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
