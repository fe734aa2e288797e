from __future__ import annotations

import pytest
import torch
from image_pairs import random_pair
from torch import nn

from depthseg.core.params import MASK_ONLY_MODELS, ModelName, predicts_depth
from depthseg.models.catalog import NETWORKS, build_network
from depthseg.models.dsresnet import count_parameters
from depthseg.models.masknet import MaskNet


def test_the_original_parameter_count() -> None:
    assert count_parameters(MaskNet()) == 59_745


def test_the_layers_are_the_originals() -> None:
    convolutions = [
        (m.in_channels, m.out_channels, m.kernel_size, m.padding, m.bias is not None)
        for m in MaskNet().modules()
        if isinstance(m, nn.Conv2d)
    ]
    assert convolutions == [
        (3, 32, (3, 3), (1, 1), True),  # bg
        (3, 32, (3, 3), (1, 1), True),  # bg_fg
        (64, 32, (1, 1), (0, 0), True),  # the concatenation, reduced
        (32, 64, (3, 3), (1, 1), True),
        (64, 64, (3, 3), (1, 1), True),
        (64, 1, (1, 1), (0, 0), True),  # mask logits
    ]
    norms = [m.num_features for m in MaskNet().modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms == [32, 32, 64, 64]
    # ReLU before BatchNorm in every block, as the original (and DSResNet).
    block = MaskNet().bg_branch
    assert [type(layer) for layer in block] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d]


@pytest.mark.parametrize("size", [(20, 30), (64, 64), (33, 17)])
def test_no_depth_and_mask_logits_at_any_size(size: tuple[int, int]) -> None:
    depth, mask = MaskNet(0.25)(*random_pair(2, *size))
    assert depth is None
    assert mask.shape == (2, 1, *size)


def test_rejects_mismatched_or_non_rgb_inputs() -> None:
    with pytest.raises(ValueError, match="same shape"):
        MaskNet(0.25)(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 9, 8))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        MaskNet(0.25)(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


def test_gradients_reach_both_inputs_and_every_parameter() -> None:
    model = MaskNet(0.25)
    bg, bg_fg = random_pair(2, 16, 16, requires_grad=True)
    _, mask = model(bg, bg_fg)
    mask.mean().backward()
    assert bg.grad is not None and bg.grad.abs().sum() > 0
    assert bg_fg.grad is not None and bg_fg.grad.abs().sum() > 0
    assert [name for name, p in model.named_parameters() if p.grad is None] == []


def test_every_model_name_builds_a_network_whose_outputs_its_params_describe() -> None:
    assert set(NETWORKS) == set(ModelName.__args__)
    assert set(NETWORKS) >= MASK_ONLY_MODELS
    for name in NETWORKS:
        depth, mask = build_network(name, 0.125).eval()(*random_pair(1, 32, 32))
        assert (depth is not None) == predicts_depth(name), name
        assert mask.shape == (1, 1, 32, 32)
