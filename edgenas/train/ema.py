"""An exponential moving average of a network's weights (and batch-norm statistics), for evaluation and export.

Polyak averaging (Polyak and Juditsky, 1992) as most fast CIFAR recipes use it: after every step
``avg = d * avg + (1 - d) * weights`` with ``d = min(decay, (1 + t) / (10 + t))``, so the average
follows the first steps closely instead of remembering the random start.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The running average of ``model``'s state dict; :attr:`model` is a copy holding it (for evaluation)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.steps = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for avg, value in zip(self.model.state_dict().values(), model.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(value.detach(), 1 - d)  # exact where the weight did not move (a frozen backbone)
            else:
                avg.copy_(value)  # counters (num_batches_tracked)
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        self.model.load_state_dict(state["model"])
