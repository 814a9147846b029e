"""Rotation prediction (Gidaris et al., ICLR 2018, arXiv:1803.07728) as an auxiliary self-supervised task.

Every image is turned by 0, 90, 180 or 270 degrees (chosen per image, seeded)
and a small head on the backbone's features must tell which: a 4-way
cross-entropy. Used next to a two-view objective, with its own weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RotationHead", "rotate_batch", "rotation_loss"]


def rotate_batch(x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [B, C, H, H]`` with each image turned by ``k * 90`` degrees counter-clockwise; returns (turned, k [B]).

    Raises:
        ValueError: non-square images (a quarter turn would change their shape).
    """
    if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rotation needs square images [B, C, H, H], got {tuple(x.shape)}")
    k = torch.randint(0, 4, (x.shape[0],), generator=generator).to(x.device)
    out = x.clone()
    for turn in range(1, 4):
        chosen = k == turn
        if chosen.any():
            out[chosen] = torch.rot90(x[chosen], turn, dims=(2, 3))
    return out, k


def rotation_loss(logits: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the 4-way rotation logits ``[B, 4]`` against the turns ``k [B]``."""
    return F.cross_entropy(logits, k)


class RotationHead(nn.Module):
    """Backbone features ``[B, F]`` -> 4 rotation logits (one hidden layer)."""

    def __init__(self, in_features: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 4))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)
