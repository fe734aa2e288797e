"""The two loss studies' definitions (the DVC runs are in test_dvc_experiments.py)."""

from __future__ import annotations

from pathlib import Path

from depthseg.core.params import LOSS_PRESET_NAMES, Params, parse_params
from depthseg.core.params_file import apply_override
from depthseg.experiments.loss_study import COMBINED, MASK_LOSSES, MASK_ONLY

DOCS = Path(__file__).resolve().parents[2] / "docs/experiments.md"


def params_of(study_params: dict) -> Params:
    raw = Params().model_dump()
    for key, value in study_params.items():
        apply_override(raw, key, value)
    return parse_params(raw)


def test_each_mask_only_experiment_is_masknet_with_one_mask_loss_alone() -> None:
    assert MASK_ONLY.names("m") == [f"m-{loss}" for loss in MASK_LOSSES]
    for loss, loss_params in MASK_ONLY.losses.items():
        params = params_of({**MASK_ONLY.common, **loss_params})  # valid: refused otherwise
        assert params.model.name == "masknet" and not params.model.predicts_depth
        weights = params.loss.mask.model_dump()
        assert weights == {name: float(name == loss) for name in MASK_LOSSES}


def test_each_combined_experiment_is_one_preset_on_the_default_model() -> None:
    assert COMBINED.names("c") == [f"c-{preset}" for preset in LOSS_PRESET_NAMES]
    for preset, loss_params in COMBINED.losses.items():
        params = params_of({**COMBINED.common, **loss_params})
        assert params.loss.preset == preset and params.model.name == "dsresnet"


def test_the_docs_give_each_studys_dvc_exp_show_command() -> None:
    text = " ".join(DOCS.read_text().split())
    for study in (COMBINED, MASK_ONLY):
        assert study.show_command in text
