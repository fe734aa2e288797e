"""An epoch's training loss kept where it is computed, so that steps never wait for the device."""

from __future__ import annotations

import torch

from depthseg.engine.compute import TrainingError

#: Steps between two looks at the losses (each look waits for the device once).
CHECK_EVERY = 25


class RunningLoss:
    """Sums the loss of every step on the device and checks, every ``check_every`` steps and at
    the end, that none was NaN or infinite; the error names the first step that was."""

    def __init__(self, device: torch.device, epoch: int, check_every: int = CHECK_EVERY) -> None:
        self.epoch = epoch
        self.check_every = check_every
        self.recent = torch.zeros(check_every, device=device)
        self.total = torch.zeros((), device=device)
        self.steps = 0
        self.checked = 0
        self.samples = 0

    def add(self, loss: torch.Tensor, samples: int) -> bool:
        """Count one step's loss; True when this step checked the losses (the device has
        caught up: a moment to show them at no cost)."""
        self.recent[self.steps % self.check_every] = loss.detach()
        self.total += loss.detach() * samples
        self.steps += 1
        self.samples += samples
        if self.steps - self.checked < self.check_every:
            return False
        self.check()
        return True

    def check(self) -> None:
        """Raise if a loss since the last check was not finite (waits for the device)."""
        positions = torch.arange(self.checked, self.steps) % self.check_every
        losses = self.recent[positions.to(self.recent.device)]
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            first = int(bad[0])
            raise TrainingError(
                f"the training loss became {losses[first].item()} at step "
                f"{self.checked + first + 1} of epoch {self.epoch}: lower train.optimizer.lr "
                "or change the loss weights"
            )
        self.checked = self.steps

    def mean(self) -> float:
        """The mean loss per sample so far, checked (waits for the device)."""
        self.check()
        return self.total.item() / max(self.samples, 1)
