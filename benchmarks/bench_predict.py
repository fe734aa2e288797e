"""Prediction speed: scenes per second through the served DSResNet, as predict.py runs it.

For scene images of 224 px (the release's size) and of 96 px, with the network at the size its
weights were kept at (64 and 96 px), plain and mirror averaged (`model.mirror_average`: two
views per scene), batch 16, on this machine's CPU (or CUDA with --device). Decoding and PNG
writing are left out: this is the model's own rate.

    .venv/bin/python benchmarks/bench_predict.py [--device cpu] [--batches 8]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from depthseg.models.dsresnet import DSResNet
from depthseg.models.mirror_averaged import MirrorAveraged
from depthseg.serving.images import ScaledImage
from depthseg.serving.predictor import Predictor, served_network


def scenes_per_second(predictor: Predictor, size: int, batch: int, batches: int) -> float:
    rng = np.random.default_rng(0)
    pairs = [
        tuple(
            ScaledImage(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), size, size)
            for _ in range(2)
        )
        for _ in range(batch)
    ]
    for _ in predictor.predict(pairs, batch):  # warm-up
        pass
    started = time.perf_counter()
    for _ in range(batches):
        for _ in predictor.predict(pairs, batch):
            pass
    return batch * batches / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch_size}, fp32")  # fmt: skip
    print("| network size | mirror averaged | scene size | scenes/s |\n|---|---|---|---|")
    for network_size in (64, 96):
        for mirrored in (False, True):
            network = MirrorAveraged(DSResNet(1.0)) if mirrored else DSResNet(1.0)
            predictor = Predictor(served_network(network, network_size), args.device)
            for scene_size in (224, 96):
                rate = scenes_per_second(predictor, scene_size, args.batch_size, args.batches)
                answer = "yes" if mirrored else "no"
                print(f"| {network_size} | {answer} | {scene_size} | {rate:.1f} |", flush=True)


if __name__ == "__main__":
    main()
