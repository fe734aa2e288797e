from __future__ import annotations

import pytest
import torch
from image_pairs import random_pair

from depthseg.models.dsresnet import DSResNet, count_parameters

TINY_WIDTH = 0.125


def test_reference_parameter_count() -> None:
    assert count_parameters(DSResNet()) == 10_343_490


def test_reference_width_forward_at_224_once() -> None:
    model = DSResNet().eval()
    with torch.no_grad():
        depth, mask = model(*random_pair(1, 224, 224))
    assert depth.shape == mask.shape == (1, 1, 224, 224)


@pytest.mark.parametrize("size", [(64, 64), (96, 96), (160, 160), (224, 224), (64, 160)])
def test_output_shapes(size: tuple[int, int]) -> None:
    model = DSResNet(width=TINY_WIDTH)
    depth, mask = model(*random_pair(2, *size))
    assert depth.shape == mask.shape == (2, 1, *size)


@pytest.mark.parametrize("size", [(100, 100), (64, 80), (16, 16)])
def test_rejects_sizes_not_divisible_by_32(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=rf"{size[0]}x{size[1]}.*multiples of 32"):
        DSResNet(width=TINY_WIDTH)(*random_pair(1, *size))


def test_rejects_mismatched_or_non_rgb_inputs() -> None:
    model = DSResNet(width=TINY_WIDTH)
    with pytest.raises(ValueError, match="same shape"):
        model(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 96, 96))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        model(torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64))


def test_gradients_reach_both_inputs_and_every_parameter() -> None:
    model = DSResNet(width=TINY_WIDTH)
    bg, bg_fg = random_pair(2, 64, 64, requires_grad=True)
    depth, mask = model(bg, bg_fg)
    (depth.mean() + mask.mean()).backward()
    assert bg.grad is not None and bg.grad.abs().sum() > 0
    assert bg_fg.grad is not None and bg_fg.grad.abs().sum() > 0
    # DDP without find_unused_parameters needs every parameter in the graph.
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert unused == []
    for head in (model.depth_head, model.mask_head):
        assert all(p.grad.abs().sum() > 0 for p in head.out.parameters())


def test_heads_have_separate_weights() -> None:
    model = DSResNet(width=TINY_WIDTH)
    depth, _ = model(*random_pair(2, 64, 64))
    depth.mean().backward()
    assert all(p.grad is None for p in model.mask_head.parameters())
    assert all(p.grad is not None for p in model.depth_head.parameters())
    assert all(p.grad is not None for p in model.bg_branch.parameters())
    assert all(p.grad is not None for p in model.bg_fg_branch.parameters())


def test_width_scales_channels() -> None:
    quarter = DSResNet(width=0.25)
    assert quarter.bg_branch.enc1.block.body[0].out_channels == 4
    assert quarter.bottleneck.body[0].out_channels == 128
    assert count_parameters(quarter) < count_parameters(DSResNet(width=0.5)) < 10_343_490
    # Channel counts never drop below one.
    assert DSResNet(width=0.001).bg_branch.enc1.block.body[0].out_channels == 1


@pytest.mark.parametrize("width", [0.0, -1.0, float("nan")])
def test_rejects_non_positive_width(width: float) -> None:
    with pytest.raises(ValueError, match="width"):
        DSResNet(width=width)


def test_channels_last_bf16_autocast_on_cpu() -> None:
    model = DSResNet(width=TINY_WIDTH).to(memory_format=torch.channels_last)
    bg, bg_fg = (x.to(memory_format=torch.channels_last) for x in random_pair(2, 64, 64))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        depth, mask = model(bg, bg_fg)
    assert depth.shape == mask.shape == (2, 1, 64, 64)
    assert torch.isfinite(depth.float()).all() and torch.isfinite(mask.float()).all()
