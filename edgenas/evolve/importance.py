"""Sparse routing: channel importance from gradients, complementary masks, and where a network is saturated.

Importance of a channel is measured at the batch norm that scales it (every
tensor and hidden layer of the evolved network has one), as a running mean
over training steps of

* ``taylor``: ``|gamma * dL/dgamma|``, the first-order Taylor estimate of the
  loss change when the channel is removed (Molchanov et al., CVPR 2019,
  arXiv:1906.10771), or
* ``gradient``: ``|dL/dgamma|``, the gradient magnitude.

The channels of a layer split into two complementary masks: the *important*
path, the fewest channels that carry ``mass`` (default 90%) of the layer's
importance, and the *pruned* path, the rest. Where the important path is
nearly every channel, the layer is saturated (a candidate to widen or to grow
after); where it is a few channels, the rest can be pruned. An L1 penalty on
the hidden layers' scales (network slimming, Liu et al., ICCV 2017,
arXiv:1708.06519) pushes the pruned path towards zero, so that removing it
at the end changes little.
"""

from __future__ import annotations

import torch
from torch import nn

from edgenas.errors import ConfigError

__all__ = ["CRITERIA", "ImportanceTracker", "complementary_masks", "l1_on_hidden_scales", "layer_norms"]

CRITERIA = ("taylor", "gradient")


def layer_norms(net: nn.Module) -> dict[str, nn.BatchNorm2d]:
    """The batch norms that scale each unit of an ``EvolvedNet``: ``stem`` (tensor 0), ``block{i}.hidden``
    (block i's depthwise output), ``block{i}.out`` (block i's output, tensor i + 1)."""
    out = {"stem": net.stem[1]}
    for i, block in enumerate(net.blocks):
        out[f"block{i}.hidden"] = block.bn2
        out[f"block{i}.out"] = block.bn3
    return out


def complementary_masks(scores: torch.Tensor, mass: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """(important, pruned): bool masks over ``scores [C]``, disjoint and covering every channel.

    The important path is the fewest highest-scoring channels whose scores sum to
    at least ``mass`` of the total (all channels when every score is 0).
    """
    if not 0 < mass <= 1:
        raise ConfigError(f"importance mass must lie in (0, 1], got {mass}")
    scores = scores.detach().float().clamp_min(0)
    total = float(scores.sum())
    important = torch.zeros_like(scores, dtype=torch.bool)
    if total <= 0:
        important[:] = True
        return important, ~important
    order = scores.argsort(descending=True)
    cumulative = scores[order].cumsum(0) / total
    count = int((cumulative < mass - 1e-9).sum()) + 1
    important[order[:count]] = True
    return important, ~important


def l1_on_hidden_scales(net: nn.Module) -> torch.Tensor:
    """``sum |gamma|`` of the hidden layers' batch norms (the sparsity penalty of the routing)."""
    return sum(block.bn2.weight.abs().sum() for block in net.blocks)


class ImportanceTracker:
    """Running importance of every unit of an ``EvolvedNet``, updated after each backward pass.

    Args:
        criterion: ``taylor`` or ``gradient`` (see the module docstring).
        decay: weight of the past in the running mean.
    """

    def __init__(self, criterion: str = "taylor", decay: float = 0.95) -> None:
        if criterion not in CRITERIA:
            raise ConfigError(f"unknown importance criterion {criterion!r} (known: {', '.join(CRITERIA)})")
        if not 0 <= decay < 1:
            raise ConfigError(f"importance decay must lie in [0, 1), got {decay}")
        self.criterion, self.decay = criterion, decay
        self.scores: dict[str, torch.Tensor] = {}
        self.updates = 0

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        """Fold the current gradients of the scale parameters into the running scores."""
        for name, bn in layer_norms(net).items():
            if bn.weight.grad is None:
                continue
            g = bn.weight.grad.detach()
            value = (bn.weight.detach() * g).abs() if self.criterion == "taylor" else g.abs()
            old = self.scores.get(name)
            self.scores[name] = value.cpu() if old is None or old.shape != value.shape else \
                self.decay * old + (1 - self.decay) * value.cpu()
        self.updates += 1

    def reset(self) -> None:
        """Forget the scores (after a mutation the units are different ones)."""
        self.scores, self.updates = {}, 0

    def unit(self, name: str) -> torch.Tensor:
        return self.scores.get(name, torch.zeros(0))

    def saturation(self, name: str, mass: float = 0.9) -> float:
        """Share of the unit's channels on the important path (1: all of them matter)."""
        scores = self.unit(name)
        if scores.numel() == 0:
            return 0.0
        important, _ = complementary_masks(scores, mass)
        return float(important.float().mean())

    def sensitivity(self, name: str, mass: float = 0.9) -> float:
        """Mean importance times saturation: high where the unit is both needed and full."""
        scores = self.unit(name)
        return 0.0 if scores.numel() == 0 else float(scores.mean()) * self.saturation(name, mass)

    def state_dict(self) -> dict:
        return {"criterion": self.criterion, "decay": self.decay, "updates": self.updates,
                "scores": {k: v.clone() for k, v in self.scores.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.criterion, self.decay, self.updates = state["criterion"], state["decay"], state["updates"]
        self.scores = {k: v.clone() for k, v in state["scores"].items()}
