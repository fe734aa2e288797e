"""Training in several processes with DDP, as ``torchrun`` starts them.

``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK in every process it starts; without them this
is one process and nothing here changes anything. The process group uses NCCL between GPUs and
gloo between CPU processes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class ProcessGroup:
    """Where this process stands among those training together."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> ProcessGroup:
        """The group torchrun describes in the environment (one process when it does not)."""
        return cls(
            rank=int(os.environ.get("RANK", "0")),
            world_size=int(os.environ.get("WORLD_SIZE", "1")),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        )

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes outputs, checkpoints and the MLflow run."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This process's own GPU when several share a machine."""
        if self.distributed and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def all_reduce_sum(self, tensor: torch.Tensor) -> None:
        """Sum ``tensor`` over all processes, in place (NCCL needs it on the GPU)."""
        if not self.distributed:
            return
        if dist.get_backend() == "nccl":
            on_device = tensor.to(torch.device("cuda", self.local_rank))
            dist.all_reduce(on_device)
            tensor.copy_(on_device)
        else:
            dist.all_reduce(tensor)

    def summed(self, *values: float) -> list[float]:
        """``values`` each summed over all processes (themselves in one process)."""
        totals = torch.tensor(values, dtype=torch.float64)
        self.all_reduce_sum(totals)
        return totals.tolist()

    def from_rank_0(self, text: str) -> str:
        """Rank 0's ``text``, in every process."""
        if not self.distributed:
            return text
        shared = [text]
        dist.broadcast_object_list(shared, src=0)
        return shared[0]

    def barrier(self) -> None:
        """Wait until every process has come here."""
        if self.distributed:
            dist.barrier()

    def share_buffers(self, model: nn.Module) -> None:
        """Give every process rank 0's buffers (BatchNorm statistics), so all validate the
        weights that rank 0 checkpoints."""
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in DistributedDataParallel, which averages gradients over processes."""
        if not self.distributed:
            return model
        device_ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


#: A training in this one process.
ONE_PROCESS = ProcessGroup()


def torchrun_command(processes: int, script: str, arguments: list[str]) -> list[str]:
    """The command that runs ``script`` in ``processes`` processes on this machine, by torchrun."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={processes}", script, *arguments,
    ]  # fmt: skip


def run_in_processes(processes: int, script: str, arguments: list[str]) -> int:
    """Start ``script`` again under torchrun (``train.processes`` > 1); its exit status."""
    return subprocess.call(torchrun_command(processes, script, arguments))


@contextlib.contextmanager
def process_group(device_name: str) -> Iterator[ProcessGroup]:
    """Join torchrun's process group for the duration (NCCL for CUDA, gloo otherwise)."""
    group = ProcessGroup.from_env()
    if not group.distributed:
        yield group
        return
    gpus = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if gpus:
        torch.cuda.set_device(group.local_rank)
    dist.init_process_group(backend="nccl" if gpus else "gloo")
    try:
        yield group
    finally:
        dist.destroy_process_group()
