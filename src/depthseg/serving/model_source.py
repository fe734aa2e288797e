"""Where ``predict.py`` and ``export.py`` find a model: a weights file with its card beside it,
or an MLflow model URI (``models:/NAME@ALIAS``, ``runs:/RUN_ID/model``, ``models:/m-...``).

A registry is a trust boundary: ``mlflow.pyfunc.load_model`` runs the code logged with a model,
so whoever can register a version or move an alias could run code here. Instead only the
weights and the card are downloaded, their sizes checked first, and the weights are read as
tensors (``weights_only``); no code from the artifact runs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath

import mlflow
import yaml
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from depthseg.core.params import LimitsParams
from depthseg.core.secrets import redact
from depthseg.data.archive import ArchiveError, read_members
from depthseg.serving.images import ImageInputError
from depthseg.serving.predictor import Predictor, load_network
from depthseg.serving.pyfunc import CARD_ARTIFACT, WEIGHTS_ARTIFACT


def is_model_uri(model: str) -> bool:
    return ":/" in model


def check_weights_file(path: Path, limits: LimitsParams) -> None:
    """Refuse a weights file over ``limits.model_bytes`` or with a compressed member (torch
    writes them stored; a deflated one could inflate past any size while loading)."""
    if refusal := limits.exceeded("model_bytes", path.stat().st_size, str(path)):
        raise ImageInputError(refusal)
    try:
        members = read_members(path)
    except ArchiveError:
        raise ImageInputError(f"{path}: not a PyTorch weights file (torch.save's zip)") from None
    compressed = [name for name, member in members.items() if member.method != 0]
    if compressed:
        raise ImageInputError(
            f"{path}: {compressed[0]} is compressed inside the file; torch.save writes none: "
            "this is not a weights file depthseg wrote"
        )


def _artifact_path(value: object, key: str, uri: str) -> str:
    path = PurePosixPath(str(value))
    if not str(value) or path.is_absolute() or ".." in path.parts:
        raise ImageInputError(f"{uri}: its MLmodel names {key} at {value!r}, outside the model")
    return str(path)


def _download(
    store: ArtifactRepository, uri: str, path: str, folder: Path, key: str, limits: LimitsParams
) -> Path:
    """The file ``path`` of the model ``uri`` in ``folder``, its listed size checked first."""
    parent = str(PurePosixPath(path).parent)
    listed = {info.path: info for info in store.list_artifacts(None if parent == "." else parent)}
    info = listed.get(path)
    if info is None or info.is_dir:
        raise ImageInputError(f"{uri}: has no file {path}; it is not a depthseg image model")
    what = f"{uri}/{path}"
    if info.file_size is None:
        raise ImageInputError(f"{what}: the store does not say its size; refusing to download")
    if refusal := limits.exceeded(key, info.file_size, what):
        raise ImageInputError(refusal)
    local = Path(store.download_artifacts(path, dst_path=str(folder)))
    if refusal := limits.exceeded(key, local.stat().st_size, what):
        raise ImageInputError(refusal)
    return local


def download_weights(uri: str, folder: Path, limits: LimitsParams) -> tuple[Path, Path]:
    """(weights, card) of the MLflow image model ``uri``, downloaded to ``folder``."""
    try:
        store = get_artifact_repository(uri)
        description = yaml.safe_load(
            _download(store, uri, "MLmodel", folder, "text_bytes", limits).read_text()
        )
        named = description["flavors"]["python_function"]["artifacts"]
        weights, card = (
            _download(
                store, uri, _artifact_path(named[key]["path"], key, uri), folder, limit, limits
            )
            for key, limit in ((WEIGHTS_ARTIFACT, "model_bytes"), (CARD_ARTIFACT, "text_bytes"))
        )
    except MlflowException as error:
        raise ImageInputError(
            redact(
                f"cannot load the MLflow model {uri} from {mlflow.get_tracking_uri()} "
                f"({error.message}); check the URI and MLFLOW_TRACKING_URI"
            )
        ) from None
    except (KeyError, TypeError, yaml.YAMLError):
        raise ImageInputError(
            f"{uri}: not a depthseg image model (its MLmodel names no weights and card)"
        ) from None
    return weights, card


def open_predictor(model: str, limits: LimitsParams, device: str = "auto") -> Predictor:
    """A weights file (its card beside it, ``.json``) or an MLflow model URI, ready to predict."""
    if not is_model_uri(model):
        weights = Path(model)
        if weights.is_file():
            check_weights_file(weights, limits)
        return Predictor(load_network(weights, weights.with_suffix(".json")), device)
    with tempfile.TemporaryDirectory(prefix="depthseg-model-") as folder:
        weights, card = download_weights(model, Path(folder), limits)
        check_weights_file(weights, limits)
        return Predictor(load_network(weights, card), device)
