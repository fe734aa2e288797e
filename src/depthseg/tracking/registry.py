"""MLflow's model registry: every evaluated model becomes a version; the best is `champion`.

The image model is logged into its training run here, with the serving limits of
``params.yaml`` as its ``model_config``: changing a limit logs and registers it again without
training again. Each version is tagged with its test metrics, the hash of the scenes it was
tested on, the git commit and the params. The alias ``candidate`` always points at the newest
version; ``champion`` moves to it only when it beats the champion on ``registry.score`` by more
than ``registry.min_improvement``, measured on the same test data, or when it is the champion's
own training run logged again and scores no lower. A mask-only model never takes the place of
a champion that predicts depth, nor the reverse: they do not answer the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from depthseg.core.params import Params, RegistryParams, flatten, model_outputs
from depthseg.core.secrets import redact, redacted_values
from depthseg.objectives.metrics import METRIC_NAMES, score
from depthseg.tracking.service import TrackingError, connect, git_commit, log_model

CANDIDATE, CHAMPION = "candidate", "champion"
#: Tags every version carries; the score is the one the champion rule compares.
SCORE_TAG, TEST_DATA_TAG, OUTPUTS_TAG = "score", "evaluated_scenes_hash", "outputs"
#: The ``outputs`` of versions from before the tag: all were DSResNets.
UNTAGGED_OUTPUTS = ",".join(model_outputs("dsresnet"))
#: Sections of params.yaml that decide what model training produces.
MODEL_SECTIONS = ("data", "index", "model", "loss", "train")


@dataclass(frozen=True)
class ModelFiles:
    """What the image model is made of: the kept weights, their card, an input example."""

    weights: Path
    card: Path
    input_example: pd.DataFrame


@dataclass(frozen=True)
class Decision:
    model_name: str
    version: int
    score: float
    champion: int  # the champion's version after the decision
    promoted: bool
    reason: str


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _decide(
    version: ModelVersion, champion: ModelVersion | None, rule: RegistryParams
) -> tuple[bool, str]:
    """Whether ``version`` becomes champion, and why."""
    if champion is None:
        return True, "there was no champion"
    old = f"version {champion.version}"
    outputs = version.tags[OUTPUTS_TAG]
    champion_outputs = champion.tags.get(OUTPUTS_TAG, UNTAGGED_OUTPUTS)
    if champion_outputs != outputs:
        return False, (
            f"the champion ({old}) predicts {champion_outputs}, this version {outputs}: one "
            "cannot replace the other; register models of another kind under another "
            "registry.model_name"
        )
    test_data, champion_data = version.tags[TEST_DATA_TAG], champion.tags.get(TEST_DATA_TAG)
    if champion_data != test_data:
        return False, (
            f"the champion ({old}) was tested on other data ({champion_data}, not "
            f"{test_data}), so the two cannot be compared; to promote by hand, set the alias "
            f"in `mlflow ui` or with MlflowClient().set_registered_model_alias("
            f"'{version.name}', '{CHAMPION}', {version.version})"
        )
    new_score, old_score = float(version.tags[SCORE_TAG]), float(champion.tags[SCORE_TAG])
    margin = f"{rule.score} {new_score:.4f} vs {old_score:.4f}"
    if version.run_id == champion.run_id and new_score >= old_score:
        return True, f"it is the champion's ({old}) training run, logged again: {margin}"
    if new_score > old_score + rule.min_improvement:
        return True, f"it beats the champion ({old}): {margin}"
    return False, (
        f"it does not beat the champion ({old}) by more than {rule.min_improvement}: {margin}"
    )


def register(params: Params, run_id: str, metrics: dict[str, Any], model: ModelFiles) -> Decision:
    """Log the image model of training run ``run_id`` (evaluated with ``metrics``) into that
    run and register it."""
    connect(params.tracking)
    client = MlflowClient()
    rule = params.registry
    name = rule.model_name
    new_score = score(metrics, rule.score)
    model_params = redacted_values(
        {k: v for k, v in flatten(params).items() if k.split(".")[0] in MODEL_SECTIONS}
    )
    tags = {
        **{f"test_{key}": str(metrics[key]) for key in METRIC_NAMES if key in metrics},
        SCORE_TAG: f"{new_score:.6f}",
        OUTPUTS_TAG: ",".join(model_outputs(params.model.name)),
        TEST_DATA_TAG: metrics["evaluated_scenes_hash"],
        "git_commit": git_commit(),
        "mlflow_run_id": run_id,
        "params": json.dumps(model_params, sort_keys=True, default=str),
    }
    try:
        with mlflow.start_run(run_id=run_id):
            uri = log_model(model.weights, model.card, model.input_example, params.limits)
        created = mlflow.register_model(uri, name, tags=tags)
        champion = _champion(client, name)
        promoted, reason = _decide(created, champion, rule)
        client.set_registered_model_alias(name, CANDIDATE, str(created.version))
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, str(created.version))
    except MlflowException as error:
        raise TrackingError(
            redact(
                f"the MLflow model registry at {mlflow.get_tracking_uri()} failed: {error.message}"
            )
        ) from None
    version = int(created.version)
    champion_version = version if promoted or champion is None else int(champion.version)
    return Decision(name, version, round(new_score, 6), champion_version, promoted, reason)
