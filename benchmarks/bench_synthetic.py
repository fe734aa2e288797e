"""Throughput of the synthetic scene generator: scenes per second and megabytes produced.

Generates into memory (the write callback only adds up sizes), so the figure excludes disk I/O:

    PYTHONPATH=src .venv/bin/python benchmarks/bench_synthetic.py --scenes 4000 --workers 2
"""

from __future__ import annotations

import argparse
import time

from depthseg.synthetic import SceneSpec, generate


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=3200, help="about this many scenes")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--foregrounds", type=int, default=10)
    parser.add_argument("--placements", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    per_background = args.foregrounds * args.placements
    spec = SceneSpec(
        backgrounds=max(1, round(args.scenes / per_background)),
        foregrounds=args.foregrounds,
        placements=args.placements,
        image_size=args.image_size,
        seed=args.seed,
    )
    produced = {"files": 0, "bytes": 0}

    def write(name: str, data: bytes) -> None:
        produced["files"] += 1
        produced["bytes"] += len(data)

    start = time.perf_counter()
    scenes = generate(spec, write, workers=args.workers)
    seconds = time.perf_counter() - start
    megabytes = produced["bytes"] / 1e6
    print(
        f"{scenes} scenes ({spec.backgrounds} bg x {spec.foregrounds} fg x {spec.placements}) "
        f"at {spec.image_size} px, {args.workers} worker(s): {seconds:.2f} s, "
        f"{scenes / seconds:.0f} scenes/s, {produced['files']} files, {megabytes:.1f} MB "
        f"({megabytes / seconds:.1f} MB/s)"
    )


if __name__ == "__main__":
    main()
