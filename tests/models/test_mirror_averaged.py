"""Mirror averaging: the mean of a scene's and its mirror image's logits, mirror-symmetric."""

from __future__ import annotations

import torch

from depthseg.models.dsresnet import DSResNet
from depthseg.models.mirror_averaged import MirrorAveraged


def _network_and_inputs() -> tuple[DSResNet, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    network = DSResNet(width=0.125).eval()
    return network, torch.randn(3, 3, 64, 96), torch.randn(3, 3, 64, 96)


def test_it_is_the_mean_of_the_two_views_mirrored_back() -> None:
    network, bg, bg_fg = _network_and_inputs()
    with torch.no_grad():
        averaged = MirrorAveraged(network)(bg, bg_fg)
        plain = network(bg, bg_fg)
        mirrored = network(bg.flip(-1), bg_fg.flip(-1))
    for got, one, other in zip(averaged, plain, mirrored, strict=True):
        assert got.shape == one.shape == (3, 1, 64, 96)
        torch.testing.assert_close(got, (one + other.flip(-1)) / 2, atol=1e-5, rtol=1e-5)


def test_mirrored_scenes_get_mirrored_predictions_where_the_plain_network_does_not() -> None:
    network, bg, bg_fg = _network_and_inputs()
    with torch.no_grad():
        for model, symmetric in ((MirrorAveraged(network), True), (network, False)):
            direct = model(bg, bg_fg)
            of_mirror = model(bg.flip(-1), bg_fg.flip(-1))
            for one, other in zip(direct, of_mirror, strict=True):
                assert torch.allclose(one, other.flip(-1), atol=1e-5) is symmetric
