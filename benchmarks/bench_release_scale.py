"""fetch, index and DVC's bookkeeping at the release's scale, on tiny files.

Writes a folder shaped like the MODEST release (100 backgrounds, 100 foregrounds, N scenes of
three images each; every image an 8-pixel JPEG) outside the repository, as a user's local copy
would be, then times: packing it into the stored zip (fetch, local source), indexing the zip
(each image's header checked), and `dvc add` / `dvc status` of the zip in a fresh DVC
repository. (DVC on the folder itself, the form we did not choose, took 37.6 s to add and 5.3 s
for status at 120,000 files: ../shared/notes.)

    PYTHONPATH=src .venv/bin/python benchmarks/bench_release_scale.py --scenes 400000
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from depthseg.core.params import IndexParams, LimitsParams
from depthseg.data import layout
from depthseg.data.archive import pack_folder
from depthseg.data.indexing import build_index, write_index


def _tiny_jpeg() -> bytes:
    """An 8 x 8 grey JPEG (about 300 bytes): small, and an image by its header, which the
    index checks."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, "JPEG")
    return buffer.getvalue()


TINY = _tiny_jpeg()


def write_release(root: Path, scenes: int) -> int:
    """A release-shaped folder of ``scenes`` scenes; returns the number of files."""
    for folder in layout.FOLDERS:
        (root / folder).mkdir(parents=True)
    lines, boxes = [], []
    per_background = max(1, scenes // 100)
    for index in range(scenes):
        bg = layout.bg_name(index // per_background + 1)
        fg = layout.fg_name(index // 40 % 100 + 1)
        scene = layout.scene_name(bg, fg, index % 40 + 1)
        for member in (
            layout.scene_member(scene),
            layout.mask_member(f"{scene}_mask"),
            layout.depth_member(f"{scene}_depth_map"),
        ):
            (root / member).write_bytes(TINY)
        lines.append(f"{bg}\t{scene}\t{scene}_mask\t{scene}_depth_map\n")
        boxes.append(f"{scene}.jpeg\t1\t2\t3\t4\n")
    for number in range(1, 101):
        (root / layout.bg_member(layout.bg_name(number))).write_bytes(TINY)
        (root / layout.fg_member(layout.fg_name(number))).write_bytes(TINY)
        (root / layout.fg_mask_member(layout.fg_name(number))).write_bytes(TINY)
    (root / layout.FILE_MAP).write_text("".join(lines))
    (root / layout.BBOX_FILE).write_text("".join(boxes))
    return 3 * scenes + 300 + 2


def timed(label: str, action) -> object:
    started = time.perf_counter()
    result = action()
    print(f"{label:<44} {time.perf_counter() - started:8.1f} s", flush=True)
    return result


def dvc(repo: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=400_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        repo = Path(temp) / "repo"
        repo.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        dvc(repo, "init", "-q")
        release = Path(temp) / "release"
        files = timed(f"write {args.scenes:,} scenes of tiny files", lambda: write_release(
            release, args.scenes
        ))  # fmt: skip
        print(f"({files:,} files)")
        archive = repo / "modest.zip"
        limits = LimitsParams()
        timed(
            "fetch: pack the folder into the stored zip",
            lambda: pack_folder(release, archive, limits),
        )
        table, _ = timed(
            "index: build the scene table", lambda: build_index(archive, IndexParams(), limits)
        )
        timed("index: write the parquet", lambda: write_index(table, repo / "i.parquet", archive))
        timed("dvc add of the zip", lambda: dvc(repo, "add", "modest.zip"))
        timed("dvc status", lambda: dvc(repo, "status"))


if __name__ == "__main__":
    main()
