"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al., ICML 2020, arXiv:2002.05709).

Each of the ``2B`` projections must pick out the other view of its own image
among the other ``2B - 1`` projections, by cosine similarity over a
temperature: a cross-entropy over ``2B - 1`` candidates, averaged over all
``2B`` anchors (the paper's eq. 1 and its symmetric loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgenas.errors import ConfigError
from edgenas.ssl.registry import SSL_METHODS

__all__ = ["NTXentLoss", "nt_xent_loss"]


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent loss of two batches of projections.

    Args:
        z1, z2: ``[B, D]`` projections of two views of the same B images (B >= 2).
        temperature: the softmax temperature (0.1 here: small batches of tiny images).

    Returns:
        Scalar ``mean_i -log( exp(s_ip / t) / sum_{k != i} exp(s_ik / t) )`` over the
        ``2B`` anchors ``i``, with ``s`` the cosine similarity and ``p`` the other view of ``i``.

    Raises:
        ValueError: shapes differ, the batch has fewer than 2 samples, or temperature <= 0.

    Example:
        >>> z = torch.randn(8, 16)
        >>> float(nt_xent_loss(z, z)) < float(nt_xent_loss(z, torch.randn(8, 16)))
        True
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"z1 and z2 must both be [B, D]; got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < 2:
        raise ValueError("NT-Xent needs a batch of at least 2 samples")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    B = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))  # an anchor is not its own candidate
    targets = torch.cat([torch.arange(B, 2 * B), torch.arange(B)]).to(z.device)
    return F.cross_entropy(logits, targets)


class NTXentLoss(nn.Module):
    """``nn.Module`` wrapper of :func:`nt_xent_loss`."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f"NT-Xent temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nt_xent_loss(z1, z2, self.temperature)


SSL_METHODS.register("ntxent", NTXentLoss)
