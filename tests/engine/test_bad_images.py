"""Bad images met while training: one clear line naming the scene and image, or skipped and
counted; through DataLoader worker processes, on a real zip and the real loop."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import LIMITS

from depthseg.core.params import IndexParams, SplitParams, parse_params
from depthseg.data import layout
from depthseg.data.image_header import ImageError
from depthseg.data.indexing import build_index
from depthseg.engine.assembly import build_run
from depthseg.engine.loop import Trainer

BAD_SCENE = "bg003_fg001_01"


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def bad_png_chunk(data: bytes) -> bytes:
    return data[:40] + b"XXXX" + data[44:]  # a corrupted chunk type


def release_with(make_release, make_zip, tmp_path: Path, member: str, corrupt) -> tuple:
    files = make_release(8, 2, 2, size=64)
    files[member] = corrupt(files[member])
    archive = make_zip(files, tmp_path / "modest.zip")
    split = SplitParams(train=0.5, val=0.25, test=0.25)
    table, _ = build_index(archive, IndexParams(split=split), LIMITS)
    assert table.loc[table["scene"] == BAD_SCENE, "split"].item() == "train"
    return table, archive


def params(**train: object):
    return parse_params(
        {
            "model": {"width": 0.125},
            "train": {
                "epochs": 1,
                "image_sizes": [32],
                "scenes_per_epoch": None,
                "batch_size": 4,
                "workers": 2,
                **train,
            },
        }
    )


def test_a_truncated_jpeg_stops_training_with_one_line_naming_it(
    make_release, make_zip, tmp_path: Path
) -> None:
    member = layout.scene_member(BAD_SCENE)
    table, archive = release_with(make_release, make_zip, tmp_path, member, truncated)
    trainer = Trainer(build_run(params(), table, archive, tmp_path / "checkpoints"))
    with pytest.raises(ImageError) as caught:
        trainer.fit()
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert f"scene {BAD_SCENE}" in message and member in message and "truncated" in message


def test_a_bad_image_is_skipped_and_counted_when_asked(
    make_release, make_zip, tmp_path: Path
) -> None:
    member = layout.scene_member(BAD_SCENE)
    table, archive = release_with(make_release, make_zip, tmp_path, member, truncated)
    trainer = Trainer(
        build_run(params(on_bad_image="skip"), table, archive, tmp_path / "checkpoints")
    )
    (report,) = trainer.fit()
    assert report.skipped_scenes == 1
    assert report.metrics()["skipped_scenes"] == 1


def test_a_png_with_a_bad_chunk_names_its_member(make_release, make_zip, tmp_path: Path) -> None:
    """Pillow raises SyntaxError for it; the member's name must not be lost."""
    from depthseg.data.decoding import decode_image

    png = bad_png_chunk(make_release(1)[layout.fg_member("fg001")])
    with pytest.raises(ImageError, match=r"fg/fg001\.png: cannot decode"):
        decode_image(png, 32, "RGB", "fg/fg001.png")


def test_a_damaged_archive_fails_its_crc_check(make_release, make_zip, tmp_path: Path) -> None:
    member = layout.scene_member(BAD_SCENE)
    table, archive = release_with(make_release, make_zip, tmp_path, member, lambda data: data)
    row = table.loc[table["scene"] == BAD_SCENE].iloc[0]
    raw = bytearray(archive.read_bytes())
    # Flip a byte inside the member's data, after its local header: same size, other CRC.
    raw[int(row["bg_fg_offset"]) + 30 + len(member) + 200] ^= 0xFF
    archive.write_bytes(bytes(raw))
    trainer = Trainer(build_run(params(), table, archive, tmp_path / "checkpoints"))
    with pytest.raises(ImageError, match=rf"scene {BAD_SCENE}: .*{member} fails its CRC-32 check"):
        trainer.fit()
