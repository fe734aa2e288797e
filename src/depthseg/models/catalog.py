"""The networks a run may train: ``model.name`` -> the class (``core.params.MASK_ONLY_MODELS``
names those without a depth output)."""

from __future__ import annotations

from torch import nn

from depthseg.models.dsresnet import DSResNet
from depthseg.models.masknet import MaskNet

#: ``model.name`` -> the network; each is built from ``model.width``.
NETWORKS: dict[str, type[nn.Module]] = {"dsresnet": DSResNet, "masknet": MaskNet}


def build_network(name: str, width: float) -> nn.Module:
    return NETWORKS[name](width)
