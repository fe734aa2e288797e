"""fetch from every source; only the Kaggle client (the network) is replaced, by a function
that writes a real zip as the Kaggle archive has it: the layout under one top folder."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import LIMITS

from depthseg.core.params import DataParams, IndexParams
from depthseg.data import layout, sources
from depthseg.data.archive import MemberReader, read_members
from depthseg.data.indexing import build_index
from depthseg.data.sources import KAGGLE_HELP, FetchError, fetch

Files = dict[str, bytes]
DATASET = "shanwizard/modest-museum-dataset"
KAGGLE_TOP = "modest_museum_dataset/"
MANUAL_ROUTE = "data.source=local"


def _archive_contents(path: Path) -> Files:
    reader = MemberReader(path)
    members = read_members(path)
    assert {member.method for member in members.values()} == {zipfile.ZIP_STORED}
    return {name: reader.read(m.header_offset, m.size) for name, m in members.items()}


def _local(path: Path) -> DataParams:
    return DataParams(source="local", path=str(path))


class FakeKaggle:
    """Stands in for sources.kaggle_download; counts calls, then writes, fails or breaks."""

    def __init__(
        self, files: Files, failure: Exception | None = None, broken: bool = False
    ) -> None:
        self.files = files
        self.failure = failure
        self.broken = broken
        self.calls: list[tuple[str, Path]] = []

    def __call__(self, dataset: str, directory: Path) -> Path:
        self.calls.append((dataset, directory))
        if self.failure is not None:
            raise self.failure
        target = directory / f"{dataset.rsplit('/', 1)[-1]}.zip"
        if self.broken:
            target.write_bytes(b"PK\x03\x04 cut off by a dropped connection")
            return target
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in self.files.items():
                archive.writestr(KAGGLE_TOP + name, data)
        return target


@pytest.fixture
def fake_kaggle(
    modest_mini_files: Files, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., FakeKaggle]:
    def install(failure: Exception | None = None, broken: bool = False) -> FakeKaggle:
        fake = FakeKaggle(modest_mini_files, failure, broken)
        monkeypatch.setattr(sources, "kaggle_download", fake)
        return fake

    return install


def _fetch_kaggle(tmp_path: Path) -> Path:
    dest = tmp_path / "raw" / "modest.zip"
    fetch(DataParams(source="kaggle", kaggle_dataset=DATASET), LIMITS, dest, tmp_path / "download")
    return dest


def test_local_folder(modest_mini: Path, modest_mini_files: Files, tmp_path: Path) -> None:
    dest = tmp_path / "raw" / "modest.zip"
    fetch(_local(modest_mini), LIMITS, dest, tmp_path / "download")
    assert _archive_contents(dest) == modest_mini_files


@pytest.mark.parametrize("top", ["", "MODEST/"], ids=["root", "top-folder"])
def test_local_zip(
    modest_mini_files: Files, make_zip: Callable[..., Path], tmp_path: Path, top: str
) -> None:
    source = make_zip(
        modest_mini_files, tmp_path / "copy.zip", top=top, compression=zipfile.ZIP_DEFLATED
    )
    dest = tmp_path / "raw" / "modest.zip"
    fetch(_local(source), LIMITS, dest, tmp_path / "download")
    assert _archive_contents(dest) == modest_mini_files


def test_local_path_with_a_home_prefix(
    modest_mini_files: Files,
    make_folder: Callable[[Files, Path], Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    make_folder(modest_mini_files, tmp_path / "home" / "modest")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    dest = tmp_path / "raw" / "modest.zip"
    fetch(_local(Path("~/modest")), LIMITS, dest, tmp_path / "download")
    assert set(read_members(dest)) == set(modest_mini_files)


@pytest.mark.parametrize(
    ("content", "what"), [(None, "does not exist"), (b"not a zip", "neither a folder nor a zip")]
)
def test_local_path_that_cannot_be_used(tmp_path: Path, content: bytes | None, what: str) -> None:
    path = tmp_path / "modest.zip"
    if content is not None:
        path.write_bytes(content)
    dest = tmp_path / "raw" / "modest.zip"
    with pytest.raises(FetchError, match=what) as caught:
        fetch(_local(path), LIMITS, dest, tmp_path / "download")
    assert str(path) in str(caught.value)
    assert not dest.exists()


def test_kaggle_downloads_once_and_packs(
    fake_kaggle: Callable[..., FakeKaggle], modest_mini_files: Files, tmp_path: Path
) -> None:
    fake = fake_kaggle()
    dest = _fetch_kaggle(tmp_path)
    assert [dataset for dataset, _ in fake.calls] == [DATASET]
    assert _archive_contents(dest) == modest_mini_files
    table, problems = build_index(dest, IndexParams(), LIMITS)
    assert len(table) == 12
    assert not problems

    dest.unlink()
    _fetch_kaggle(tmp_path)
    assert len(fake.calls) == 1, "a complete earlier download must be reused"
    assert _archive_contents(dest) == modest_mini_files


def test_kaggle_fetches_again_after_an_incomplete_download(
    fake_kaggle: Callable[..., FakeKaggle], modest_mini_files: Files, tmp_path: Path
) -> None:
    earlier = tmp_path / "download" / f"{DATASET.rsplit('/', 1)[-1]}.zip"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"PK\x03\x04 half of a download")
    fake = fake_kaggle()
    dest = _fetch_kaggle(tmp_path)
    assert len(fake.calls) == 1
    assert _archive_contents(dest) == modest_mini_files
    assert zipfile.is_zipfile(earlier)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        pytest.param(
            ConnectionError("Connection reset by peer"),
            ["downloading", DATASET, "failed", "ConnectionError", "Connection reset by peer"],
            id="network",
        ),
        pytest.param(
            FetchError(f"no Kaggle credentials found. {KAGGLE_HELP}"),
            ["no Kaggle credentials", "kaggle.json"],
            id="credentials",
        ),
    ],
)
def test_kaggle_failure_says_what_failed_and_the_manual_route(
    fake_kaggle: Callable[..., FakeKaggle],
    tmp_path: Path,
    failure: Exception,
    expected: list[str],
) -> None:
    fake_kaggle(failure=failure)
    with pytest.raises(FetchError) as caught:
        _fetch_kaggle(tmp_path)
    message = str(caught.value)
    for fragment in [*expected, MANUAL_ROUTE, f"https://www.kaggle.com/datasets/{DATASET}"]:
        assert fragment in message
    assert not (tmp_path / "raw" / "modest.zip").exists()


def test_kaggle_download_that_is_no_zip(
    fake_kaggle: Callable[..., FakeKaggle], tmp_path: Path
) -> None:
    fake_kaggle(broken=True)
    with pytest.raises(FetchError, match="not a complete zip archive") as caught:
        _fetch_kaggle(tmp_path)
    assert MANUAL_ROUTE in str(caught.value)
    target = tmp_path / "download" / f"{DATASET.rsplit('/', 1)[-1]}.zip"
    assert not target.exists(), "a broken download must not pass for a complete one"


def test_synthetic_source(tmp_path: Path) -> None:
    synthetic = pytest.importorskip("depthseg.synthetic")
    if not hasattr(synthetic, "generate"):
        pytest.skip("depthseg.synthetic has no generate() yet")
    params = DataParams.model_validate(
        {
            "source": "synthetic",
            "synthetic": {"backgrounds": 2, "foregrounds": 2, "placements": 2, "image_size": 32},
        }
    )
    dest = tmp_path / "raw" / "modest.zip"
    fetch(params, LIMITS, dest, tmp_path / "download", workers=1)
    contents = _archive_contents(dest)
    lines = contents[layout.FILE_MAP].decode().splitlines()
    assert len(lines) == 2 * 2 * 2
    assert len({line.split("\t")[1] for line in lines}) == len(lines)
    table, problems = build_index(dest, IndexParams(), LIMITS)
    assert len(table) == len(lines)
    assert not problems
