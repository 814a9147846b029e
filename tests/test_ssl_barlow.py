import numpy as np
import pytest
import torch

from edgenas.ssl import SSL_METHODS, BarlowTwinsLoss, barlow_twins_loss


def reference(z1, z2, lam, eps=1e-5):
    """Barlow Twins written out element by element (Zbontar et al. 2021, eq. 1-2)."""
    B, D = z1.shape
    n1 = (z1 - z1.mean(0)) / (z1.std(0) + eps)  # numpy std: population (ddof=0)
    n2 = (z2 - z2.mean(0)) / (z2.std(0) + eps)
    loss = 0.0
    for i in range(D):
        for j in range(D):
            c = sum(n1[b, i] * n2[b, j] for b in range(B)) / B
            loss += (1 - c) ** 2 if i == j else lam * c ** 2
    return loss


def test_matches_hand_computed_value():
    z1 = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 0.5], [2.0, 1.0]])
    z2 = np.array([[0.5, 1.0], [2.0, 0.0], [1.0, -1.0], [-1.0, 2.0]])
    got = barlow_twins_loss(torch.tensor(z1), torch.tensor(z2), lambda_offdiag=0.005)
    assert float(got) == pytest.approx(reference(z1, z2, 0.005), rel=1e-6)


def test_hand_computed_small_case():
    # standardised columns [1,-1] and [1,-1]: C = [[1, 1], [1, 1]] -> loss = lambda * 2
    z = torch.tensor([[1.0, 5.0], [-1.0, 3.0]])
    assert float(barlow_twins_loss(z, z, 0.5)) == pytest.approx(1.0, rel=1e-4)


def test_module_registry_and_errors():
    assert isinstance(SSL_METHODS.get("barlow")(lambda_offdiag=0.01), BarlowTwinsLoss)
    with pytest.raises(ValueError):
        barlow_twins_loss(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError):
        barlow_twins_loss(torch.randn(4, 4), torch.randn(4, 3))


def test_gradient_flows():
    z1 = torch.randn(16, 8, requires_grad=True)
    barlow_twins_loss(z1, torch.randn(16, 8)).backward()
    assert torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0
