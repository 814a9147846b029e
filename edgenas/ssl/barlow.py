"""Barlow Twins (Zbontar et al., ICML 2021, arXiv:2103.03230).

Makes the cross-correlation matrix of the (batch-standardised) projections of
two views close to the identity: the diagonal to 1 (invariance), the
off-diagonal to 0 (redundancy reduction), weighted by ``lambda_offdiag``.
"""

from __future__ import annotations

import torch
from torch import nn

from edgenas.errors import ConfigError
from edgenas.ssl.registry import SSL_METHODS


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambda_offdiag: float = 0.005,
                      eps: float = 1e-5) -> torch.Tensor:
    """Barlow Twins loss of two batches of projections.

    Args:
        z1, z2: ``[B, D]`` projections of the two views of the same B images (B >= 2).
        lambda_offdiag: weight of the redundancy-reduction term (0.005 in the paper).
        eps: added to the standard deviation when standardising each dimension.

    Returns:
        Scalar ``sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2`` with
        ``C = z1n^T z2n / B`` and ``z*n`` standardised over the batch.

    Raises:
        ValueError: shapes differ, or the batch has fewer than 2 samples.

    Example:
        >>> z = torch.randn(8, 16)
        >>> float(barlow_twins_loss(z, z)) < float(barlow_twins_loss(z, torch.randn(8, 16)))
        True
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"z1 and z2 must both be [B, D]; got {tuple(z1.shape)} and {tuple(z2.shape)}")
    B = z1.shape[0]
    if B < 2:
        raise ValueError("Barlow Twins needs a batch of at least 2 samples")
    z1 = z1.float()
    z2 = z2.float()
    z1n = (z1 - z1.mean(0)) / (z1.std(0, unbiased=False) + eps)
    z2n = (z2 - z2.mean(0)) / (z2.std(0, unbiased=False) + eps)
    c = z1n.T @ z2n / B
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambda_offdiag * off_diag


class BarlowTwinsLoss(nn.Module):
    """``nn.Module`` wrapper of :func:`barlow_twins_loss`."""

    def __init__(self, lambda_offdiag: float = 0.005) -> None:
        super().__init__()
        if lambda_offdiag < 0:
            raise ConfigError(f"Barlow Twins lambda must be >= 0, got {lambda_offdiag}")
        self.lambda_offdiag = lambda_offdiag

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return barlow_twins_loss(z1, z2, self.lambda_offdiag)


SSL_METHODS.register("barlow", BarlowTwinsLoss)
