"""The GPU-only compute choices, checked here with the capability faked: no GPU is needed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch.overrides import TorchFunctionMode

from depthseg.data import layout
from depthseg.data.transforms import MASK_CHANNEL, normalised, part
from depthseg.engine.compute import ComputeSetup, configure_backends


@pytest.fixture
def backend_switches() -> Iterator[None]:
    """Put the process-wide switches back as they were."""
    saved = (
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.fp32_precision,
        torch.backends.cudnn.conv.fp32_precision,
    )
    yield
    (
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.fp32_precision,
        torch.backends.cudnn.conv.fp32_precision,
    ) = saved


@pytest.mark.parametrize(("tf32", "precision"), [(True, "tf32"), (False, "ieee")])
def test_on_cuda_cudnn_autotunes_and_tf32_follows_the_param(
    backend_switches, tf32: bool, precision: str
) -> None:
    torch.backends.cudnn.benchmark = False
    configure_backends(torch.device("cuda"), tf32)
    assert torch.backends.cudnn.benchmark
    assert torch.backends.cuda.matmul.fp32_precision == precision
    assert torch.backends.cudnn.conv.fp32_precision == precision


def test_elsewhere_no_switch_moves(backend_switches) -> None:
    torch.backends.cudnn.benchmark = False
    before = torch.backends.cuda.matmul.fp32_precision
    configure_backends(torch.device("cpu"), tf32=before != "tf32")
    assert not torch.backends.cudnn.benchmark
    assert torch.backends.cuda.matmul.fp32_precision == before


class CopiesToDevice(TorchFunctionMode):
    """Records every ``Tensor.to`` call: the dtype it moves and whether it waits."""

    def __init__(self) -> None:
        super().__init__()
        self.moves: list[tuple[torch.dtype, bool]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.to:
            self.moves.append((args[0].dtype, kwargs.get("non_blocking", False)))
        return func(*args, **kwargs)


def test_a_batch_crosses_as_uint8_without_waiting_and_is_normalised_after() -> None:
    generator = torch.Generator().manual_seed(0)
    scenes = torch.randint(0, 256, (2, 8, 8, 8), dtype=torch.uint8, generator=generator)
    scenes[:, MASK_CHANNEL] %= 2
    batch = {"scenes": scenes, "index": [0, 1], "epoch": [1, 1]}
    setup = ComputeSetup(torch.device("cpu"), None, torch.channels_last)
    with CopiesToDevice() as recorder:
        bg, bg_fg, depth, mask = setup.inputs(batch)
    assert recorder.moves == [(torch.uint8, True)]  # one tensor, as uint8
    assert bg.is_contiguous(memory_format=torch.channels_last)
    floats = scenes.float() / 255
    torch.testing.assert_close(bg, normalised(part(floats, "bg"), layout.BG_MEAN, layout.BG_STD))
    torch.testing.assert_close(
        bg_fg, normalised(part(floats, "bg_fg"), layout.BG_FG_MEAN, layout.BG_FG_STD)
    )
    torch.testing.assert_close(depth, part(floats, "depth"))
    torch.testing.assert_close(mask, part(scenes, "mask").float())
    assert set(mask.unique().tolist()) == {0.0, 1.0}
