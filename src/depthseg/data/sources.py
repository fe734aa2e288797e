"""Where the dataset comes from: the built-in generator, a local copy, or Kaggle.

Every source ends as the same stored zip in the release layout (see ``archive``), so the index and
the dataset have a single code path whatever the origin.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from tqdm import tqdm

from depthseg import synthetic
from depthseg.core.errors import DepthsegError
from depthseg.core.params import DataParams, LimitsParams
from depthseg.data import archive

KAGGLE_HELP = (
    "Kaggle needs an API token: create one at https://www.kaggle.com/settings (API section) and "
    "save it as ~/.kaggle/kaggle.json (or ~/.kaggle/access_token, or set KAGGLE_USERNAME and "
    "KAGGLE_KEY)"
)


class FetchError(DepthsegError, RuntimeError):
    """The dataset could not be obtained; the message says what failed and how to fix it."""


def _progress(description: str, total: int | None = None) -> tqdm:
    return tqdm(total=total, desc=description, unit=" files", disable=None, leave=False)


def write_synthetic(params: DataParams, dest: Path, workers: int) -> None:
    spec = synthetic.SceneSpec(**params.synthetic.model_dump())
    total = spec.backgrounds * spec.foregrounds * spec.placements
    with archive.atomic_zip(dest) as packed, _progress("generating scenes", total) as bar:
        synthetic.generate(
            spec,
            lambda name, data: archive.add_member(packed, name, data),
            workers=workers,
            progress=bar.update,
        )


def pack_local(path: Path, dest: Path, limits: LimitsParams) -> None:
    if path.is_dir():
        with _progress(f"packing {path}") as bar:
            archive.pack_folder(path, dest, limits, bar.update)
        return
    if path.is_file() and zipfile.is_zipfile(path):
        with _progress(f"repacking {path}") as bar:
            archive.repack_zip(path, dest, limits, bar.update)
        return
    what = "is neither a folder nor a zip archive" if path.exists() else "does not exist"
    raise FetchError(
        f"data.path {str(path)!r} {what}: point it at a folder or .zip in the MODEST layout"
    )


def kaggle_download(dataset: str, directory: Path) -> Path:
    """Download ``dataset`` with the official Kaggle client; the network boundary of fetch."""
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    try:
        api.authenticate()
    except SystemExit:  # the client exits the process when it finds no credentials
        raise FetchError(f"no Kaggle credentials found. {KAGGLE_HELP}") from None
    api.dataset_download_files(dataset, path=str(directory), quiet=False)
    return directory / f"{dataset.rsplit('/', 1)[-1]}.zip"


def download(dataset: str, directory: Path) -> Path:
    """The release's zip under ``directory``, downloaded unless a complete copy is there."""
    target = directory / f"{dataset.rsplit('/', 1)[-1]}.zip"
    if target.is_file() and zipfile.is_zipfile(target):
        print(f"using the earlier download {target}")
        return target
    partial = directory / ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    by_hand = (
        f"Or download the archive by hand from https://www.kaggle.com/datasets/{dataset} and run "
        "`dvc exp run -S data.source=local -S data.path=PATH/TO/archive.zip`."
    )
    try:
        downloaded = kaggle_download(dataset, partial)
    except FetchError as error:
        raise FetchError(f"{error}. {by_hand}") from None
    except Exception as error:  # the client raises many kinds: network, HTTP, auth
        raise FetchError(
            f"downloading {dataset} from Kaggle failed: {type(error).__name__}: {error}. "
            f"Check the network and your credentials ({KAGGLE_HELP}). {by_hand}"
        ) from None
    if not zipfile.is_zipfile(downloaded):
        raise FetchError(
            f"the Kaggle download {downloaded} is not a complete zip archive. {by_hand}"
        )
    os.replace(downloaded, target)
    shutil.rmtree(partial, ignore_errors=True)
    return target


def fetch(
    params: DataParams, limits: LimitsParams, dest: Path, download_dir: Path, workers: int = 1
) -> None:
    """Write the dataset of ``params`` to the stored zip ``dest``; a local or downloaded one is
    checked against ``limits`` before anything is written."""
    if params.source == "synthetic":
        write_synthetic(params, dest, workers)
    elif params.source == "local":
        assert params.path is not None  # the schema requires it for this source
        pack_local(Path(params.path).expanduser(), dest, limits)
    else:
        pack_local(download(params.kaggle_dataset, download_dir), dest, limits)
