"""Predictions at the scene's size, in batches, normalised as in training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from depthseg.core.errors import DepthsegError
from depthseg.data import layout
from depthseg.data.transforms import normalised
from depthseg.engine.checkpoints import load_trained
from depthseg.serving.images import ScaledImage
from depthseg.serving.predictor import Predictor, load_network


def random_images(count: int, height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def whole(pixels: np.ndarray) -> ScaledImage:
    """An image decoded at its own size."""
    return ScaledImage(pixels, *pixels.shape[:2])


def _unit(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xHxW in [0, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1)[None] / 255.0


def test_at_the_training_size_it_is_the_trained_network_on_normalised_input(saved_model) -> None:
    weights, card = saved_model
    network = load_network(weights, card)
    model, _ = load_trained(weights, card)
    bg, bg_fg = random_images(1, 64, 64, 0)[0], random_images(1, 64, 64, 1)[0]
    with torch.inference_mode():
        probability, depth = network(torch.from_numpy(bg[None]), torch.from_numpy(bg_fg[None]))
        depth_logits, mask_logits = model(
            normalised(_unit(bg), layout.BG_MEAN, layout.BG_STD),
            normalised(_unit(bg_fg), layout.BG_FG_MEAN, layout.BG_FG_STD),
        )
    torch.testing.assert_close(probability[0], torch.sigmoid(mask_logits)[0, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(depth[0], torch.sigmoid(depth_logits)[0, 0], atol=1e-5, rtol=0)


def test_any_sizes_in_one_call_come_back_in_order_at_their_own_size(saved_model) -> None:
    predictor = Predictor(load_network(*saved_model), "cpu")
    sizes = [(100, 150), (100, 150), (37, 53), (100, 150)]
    pairs = [
        (whole(random_images(1, h + 9, w, i)[0]), whole(random_images(1, h, w, 10 + i)[0]))
        for i, (h, w) in enumerate(sizes)
    ]
    together = list(predictor.predict(pairs, batch_size=2))
    alone = [next(predictor.predict([pair])) for pair in pairs]
    assert [p.probability.shape for p in together] == sizes
    assert [p.depth.shape for p in together] == sizes
    for batched, single in zip(together, alone, strict=True):
        np.testing.assert_allclose(batched.probability, single.probability, atol=1e-5)
        np.testing.assert_allclose(batched.depth, single.depth, atol=1e-5)
        assert batched.depth.min() >= 0 and batched.depth.max() <= 1


def test_the_predictor_answers_as_the_served_network_does(saved_model) -> None:
    """Shrinking each image as it comes (to hold one large image at a time) is what the
    network's own forward pass does on the whole batch."""
    network = load_network(*saved_model)
    bg, bg_fg = random_images(2, 300, 200, 0), random_images(2, 150, 250, 1)
    with torch.inference_mode():
        expected = network(torch.from_numpy(bg), torch.from_numpy(bg_fg))
    pairs = [(whole(bg[i]), whole(bg_fg[i])) for i in range(2)]
    got = list(Predictor(network, "cpu").predict(pairs))
    for i, prediction in enumerate(got):
        np.testing.assert_allclose(prediction.probability, expected[0][i].numpy(), atol=1e-6)
        np.testing.assert_allclose(prediction.depth, expected[1][i].numpy(), atol=1e-6)


def test_a_card_that_says_mirror_average_gives_mirror_symmetric_predictions(
    saved_model, tmp_path: Path
) -> None:
    weights, card = saved_model
    mirrored_card = tmp_path / "model.json"
    mirrored_card.write_text(json.dumps({**json.loads(card.read_text()), "mirror_average": True}))
    bg, bg_fg = random_images(1, 48, 80, 0), random_images(1, 48, 80, 1)
    for card_file, symmetric in ((mirrored_card, True), (card, False)):
        network = load_network(weights, card_file)
        with torch.inference_mode():
            direct = network(torch.from_numpy(bg), torch.from_numpy(bg_fg))
            of_mirror = network(
                torch.from_numpy(bg[:, :, ::-1].copy()), torch.from_numpy(bg_fg[:, :, ::-1].copy())
            )
        for one, other in zip(direct, of_mirror, strict=True):
            assert torch.allclose(one, other.flip(-1), atol=1e-5) is symmetric


def test_a_missing_card_says_to_train_first(saved_model, tmp_path: Path) -> None:
    weights, _ = saved_model
    with pytest.raises(DepthsegError, match=r"model\.json is missing: run `dvc repro train`"):
        load_network(weights, tmp_path / "model.json")
