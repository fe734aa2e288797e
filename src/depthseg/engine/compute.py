"""Where and how the model computes: device, autocast dtype and memory format."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from depthseg.core.errors import DepthsegError
from depthseg.core.params import TrainParams
from depthseg.data import layout
from depthseg.data.transforms import normalised, part, unit_floats

if TYPE_CHECKING:  # the served model loads weights through here, and needs no augmentation
    from depthseg.data.augmentation import GeometricChange


class TrainingError(DepthsegError, RuntimeError):
    """Training cannot start or go on; the message says why."""


def probability(logits: torch.Tensor | None) -> torch.Tensor | None:
    """The sigmoid of an output's logits in float32; None for an output the network lacks."""
    return None if logits is None else torch.sigmoid(logits.float())


def select_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if not available[name]:
        raise TrainingError(f"train.device is '{name}' but no {name} device is available here")
    return torch.device(name)


#: CPU feature flags (as /proc/cpuinfo names them) of native bf16 arithmetic: x86 and Arm.
_NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
_CPUINFO = Path("/proc/cpuinfo")


def cpu_has_native_bf16(cpuinfo: Path = _CPUINFO) -> bool:
    """Whether the CPU computes bf16 natively; elsewhere PyTorch emulates it, slower than fp32."""
    try:
        text = cpuinfo.read_text()
    except OSError:  # not Linux: no cheap way to ask, so stay with fp32
        return False
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return not _NATIVE_BF16_FLAGS.isdisjoint(value.split())
    return False


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32.

    auto: bf16 where the hardware has it (CUDA without emulation, CPUs with native bf16), fp16
    with loss scaling on older CUDA GPUs, fp32 elsewhere (other CPUs, MPS).
    """
    if precision == "auto":
        if device.type == "cuda":
            native = torch.cuda.is_bf16_supported(including_emulation=False)
            return torch.bfloat16 if native else torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def configure_backends(device: torch.device, tf32: bool) -> None:
    """This process's CUDA switches: cuDNN autotuning and whether fp32 may run as TF32."""
    if device.type != "cuda":
        return
    # Few input shapes (one per image size), so autotuning pays for itself after a batch.
    torch.backends.cudnn.benchmark = True
    precision = "tf32" if tf32 else "ieee"
    torch.backends.cuda.matmul.fp32_precision = precision
    torch.backends.cudnn.conv.fp32_precision = precision


@dataclass(frozen=True)
class ComputeSetup:
    """Device, autocast dtype and memory format, shared by training and evaluation."""

    device: torch.device
    dtype: torch.dtype | None
    memory_format: torch.memory_format

    @classmethod
    def from_params(cls, params: TrainParams) -> ComputeSetup:
        device = select_device(params.device)
        configure_backends(device, params.tf32)
        memory_format = torch.channels_last if params.channels_last else torch.contiguous_format
        return cls(device, autocast_dtype(device, params.precision), memory_format)

    @property
    def scales_loss(self) -> bool:
        """fp16 on CUDA needs loss scaling (bf16 and fp32 do not)."""
        return self.dtype == torch.float16 and self.device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def inputs(
        self, batch: dict[str, Any], geometric: GeometricChange | None = None
    ) -> tuple[torch.Tensor, ...]:
        """bg, bg_fg (normalised), depth (0..1) and mask of a uint8 batch (flipped, shifted and
        scaled when ``geometric`` is given), as float32 on the device in the memory format: the
        batch crosses to the device as uint8 and is changed there."""
        # non_blocking: from pinned memory the copy overlaps the work already queued.
        scenes = unit_floats(batch["scenes"].to(self.device, non_blocking=True))
        if geometric is not None:
            geometric(scenes, batch["draws"])
        tensors = (
            normalised(part(scenes, "bg"), layout.BG_MEAN, layout.BG_STD),
            normalised(part(scenes, "bg_fg"), layout.BG_FG_MEAN, layout.BG_FG_STD),
            part(scenes, "depth"),
            part(scenes, "mask"),
        )
        return tuple(tensor.contiguous(memory_format=self.memory_format) for tensor in tensors)

    def predict(
        self, model: nn.Module, bg: torch.Tensor, bg_fg: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Depth (None from a network without a depth output) and mask probability, in
        float32."""
        with torch.no_grad(), self.autocast():
            depth_logits, mask_logits = model(bg, bg_fg)
        mask = probability(mask_logits)
        assert mask is not None
        return probability(depth_logits), mask
