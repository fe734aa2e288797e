"""Serving under load: the real `mlflow models serve` of the champion on loopback.

Clients (8 by default) send requests of one to four real scenes (modest-mini), and one request in
every twenty is a bomb (a 140 KB PNG of 12,000 x 12,000 pixels). Prints scenes/s of the good
requests, their p50 and p99 latency, the server's peak memory, how many good requests failed
(must be 0) and how many bombs were not refused with HTTP 400 (must be 0). Then, measured in this
process on the same scenes, where a scene's time goes: decoding, the network, encoding.

    .venv/bin/python benchmarks/bench_serve.py [--project .] [--requests 400] [--clients 8]

Run it in a project where `dvc repro` registered a champion (MLFLOW_TRACKING_URI, if set, names
the store).
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import requests
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hostile_images import png_bomb
from servers import model_server, peak_memory_mb

from depthseg.serving.pyfunc import encoded_outputs, request_images

MODEST_MINI = Path(__file__).resolve().parents[2] / "shared" / "modest-mini"


def scenes(folder: Path) -> list[tuple[bytes, bytes]]:
    pairs = []
    for scene in sorted((folder / "bg_fg").glob("*.jpeg")):
        bg = folder / "bg" / f"{scene.stem.split('_')[0]}.jpeg"
        pairs.append((bg.read_bytes(), scene.read_bytes()))
    return pairs


def body(rows: list[tuple[bytes, bytes]]) -> dict:
    data = [[base64.b64encode(image).decode() for image in row] for row in rows]
    return {"dataframe_split": {"columns": ["bg", "bg_fg"], "data": data}}


def requests_to_send(pairs, count: int, seed: int) -> list[tuple[bool, dict, int]]:
    """(is a bomb, JSON body, scenes) for each request, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    bomb = png_bomb()
    planned = []
    for number in range(count):
        if number % 20 == 19:
            planned.append((True, body([(pairs[0][0], bomb)]), 0))
            continue
        rows = [pairs[i] for i in rng.integers(0, len(pairs), rng.integers(1, 5))]
        planned.append((False, body(rows), len(rows)))
    return planned


def load(url: str, planned, clients: int) -> tuple[float, list[float], int, int]:
    """Wall seconds, good latencies, failed good requests, bombs not refused."""
    session = requests.Session()

    def send(item):
        bomb, payload, _ = item
        started = time.perf_counter()
        reply = session.post(f"{url}/invocations", json=payload, timeout=300)
        return bomb, reply.status_code, time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(send, planned))
    wall = time.perf_counter() - started
    latencies = [seconds for bomb, code, seconds in answers if not bomb and code == 200]
    failed = sum(1 for bomb, code, _ in answers if not bomb and code != 200)
    accepted = sum(1 for bomb, code, _ in answers if bomb and code != 400)
    return wall, latencies, failed, accepted


def breakdown(model_uri: str, pairs, rounds: int) -> dict[str, float]:
    """Milliseconds a scene spends decoding, in the network and encoding, in this process."""
    model = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    table = pd.DataFrame({"bg": [p[0] for p in pairs], "bg_fg": [p[1] for p in pairs]})
    times = {"decode": 0.0, "network": 0.0, "encode": 0.0}
    from depthseg.serving.images import read_rgb

    size = model.predictor.image_size
    for _ in range(rounds):
        started = time.perf_counter()
        images = [
            tuple(read_rgb(data, "image", model.limits, size) for data in row)
            for row in request_images(table, model.limits)
        ]
        decoded = time.perf_counter()
        predictions = list(model.predictor.predict(images))
        predicted = time.perf_counter()
        for prediction in predictions:
            encoded_outputs(prediction)
        encoded = time.perf_counter()
        times["decode"] += decoded - started
        times["network"] += predicted - decoded
        times["encode"] += encoded - predicted
    return {name: 1000 * seconds / (rounds * len(pairs)) for name, seconds in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--model", default="models:/depthseg@champion")
    parser.add_argument("--data", type=Path, default=MODEST_MINI, help="a MODEST-layout folder")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pairs = scenes(args.data)
    if not pairs:
        parser.error(f"--data {args.data}: no scene found (bg_fg/*.jpeg beside bg/)")
    planned = requests_to_send(pairs, args.requests, args.seed)
    env = dict(os.environ)
    if args.workers > 1:
        env["MLFLOW_MODELS_WORKERS"] = str(args.workers)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; {len(pairs)} scenes of "
          f"{args.data}")  # fmt: skip
    with model_server(args.project.resolve(), args.model, env) as (url, group):
        for item in planned[:3]:  # warm-up
            requests.post(f"{url}/invocations", json=item[1], timeout=300)
        idle = peak_memory_mb(group)
        wall, latencies, failed, accepted = load(url, planned, args.clients)
        peak = peak_memory_mb(group)
    good_scenes = sum(count for bomb, _, count in planned if not bomb)
    p50, p99 = (statistics.quantiles(latencies, n=100)[q - 1] * 1000 for q in (50, 99))
    print(
        "| clients | requests | scenes/s | p50 ms | p99 ms | server peak MB (idle) "
        "| good requests failed | bombs not refused |\n|---|---|---|---|---|---|---|---|\n"
        f"| {args.clients} | {len(planned)} | {good_scenes / wall:.1f} | {p50:.0f} | {p99:.0f} "
        f"| {peak:.0f} ({idle:.0f}) | {failed} | {accepted} |"
    )
    os.chdir(args.project)
    if os.environ.get("MLFLOW_TRACKING_URI") is None:
        mlflow.set_tracking_uri("sqlite:///mlflow.db")
    parts = breakdown(args.model, pairs[:4], rounds=5)
    total = sum(parts.values())
    print("\nOne scene in this process (4-scene requests):\n| part | ms | share |\n|---|---|---|")
    for name, ms in parts.items():
        print(f"| {name} | {ms:.1f} | {ms / total:.0%} |")
    print(f"| all | {total:.1f} | 100% |")
    sys.exit(1 if failed or accepted else 0)


if __name__ == "__main__":
    main()
