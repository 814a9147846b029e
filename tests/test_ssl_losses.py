"""NT-Xent, DINO and rotation prediction against values computed by hand (element by element)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from edgenas.ssl import SSL_METHODS, DINOHead, DINOLoss, NTXentLoss, dino_loss, nt_xent_loss, rotate_batch
from edgenas.ssl.dino import cosine_momentum, ema_update_, updated_center


def ntxent_reference(z1, z2, t):
    """SimCLR eq. 1 written out: for each anchor, -log(exp(sim(pos)/t) / sum_{k != i} exp(sim(k)/t))."""
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n, B = len(z), len(z1)
    total = 0.0
    for i in range(n):
        pos = (i + B) % n
        denom = sum(math.exp(z[i] @ z[k] / t) for k in range(n) if k != i)
        total += -math.log(math.exp(z[i] @ z[pos] / t) / denom)
    return total / n


def test_ntxent_matches_reference():
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    got = nt_xent_loss(torch.tensor(z1), torch.tensor(z2), 0.5)
    assert float(got) == pytest.approx(ntxent_reference(z1, z2, 0.5), rel=1e-5)


def test_ntxent_two_orthogonal_pairs_by_hand():
    # z1 = [e1, e2], z2 = [e1, e2]: every anchor has its positive at cos 1 and two others at cos 0 and 0
    # loss = -log(e^(1/t) / (e^(1/t) + 2)) with t = 1
    e = torch.eye(2)
    assert float(nt_xent_loss(e, e, 1.0)) == pytest.approx(-math.log(math.e / (math.e + 2)), rel=1e-6)
    assert isinstance(SSL_METHODS.get("ntxent")(temperature=0.2), NTXentLoss)
    with pytest.raises(ValueError):
        nt_xent_loss(torch.randn(1, 3), torch.randn(1, 3))


def test_dino_loss_by_hand():
    # one image, K = 2; teacher crops t0, t1; student crops s0, s1, s2 (s2 local); centre 0; temps 1
    t0, t1 = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3), 0.0]])  # softmax: [.5, .5] and [.75, .25]
    s0, s1, s2 = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, math.log(3)]]), torch.tensor([[math.log(3), 0.0]])
    # log softmax: s0 [log .5, log .5], s1 [log .25, log .75], s2 [log .75, log .25]
    def h(p, q):
        return -sum(a * math.log(b) for a, b in zip(p, q))
    pairs = [h([.5, .5], [.25, .75]), h([.5, .5], [.75, .25]),    # t0 with s1, s2
             h([.75, .25], [.5, .5]), h([.75, .25], [.75, .25])]  # t1 with s0, s2
    got = dino_loss([s0, s1, s2], [t0, t1], torch.zeros(2), student_temp=1.0, teacher_temp=1.0)
    assert float(got) == pytest.approx(sum(pairs) / 4, rel=1e-6)


def test_dino_centre_temperature_and_gradient():
    torch.manual_seed(0)
    teacher = [torch.randn(8, 16), torch.randn(8, 16)]
    center = updated_center(torch.zeros(16), teacher, momentum=0.9)
    assert torch.allclose(center, 0.1 * torch.cat(teacher).mean(0))
    loss = DINOLoss(16)
    student = [t.clone().requires_grad_(True) for t in teacher] + [torch.randn(8, 16, requires_grad=True)]
    value = loss(student, teacher)
    value.backward()
    assert torch.allclose(loss.center, center) and student[2].grad.abs().sum() > 0
    assert all(not t.requires_grad for t in teacher)  # the teacher gets no gradient


def test_dino_schedule_ema_and_head():
    assert cosine_momentum(0, 100) == pytest.approx(0.996) and cosine_momentum(100, 100) == pytest.approx(1.0)
    assert cosine_momentum(50, 100) == pytest.approx(0.998)
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    before = a.weight.detach().clone()
    ema_update_(a, b, 0.9)
    assert torch.allclose(a.weight, 0.9 * before + 0.1 * b.weight)
    head = DINOHead(8, out_dim=32, hidden=16, bottleneck=4)
    out = head(torch.randn(5, 8))
    assert out.shape == (5, 32) and out.abs().max() <= 1 + 1e-6  # cosine similarities


def test_rotation_batch_turns_each_image_by_its_label():
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).reshape(2, 1, 3, 3).repeat(4, 1, 1, 1)
    turned, k = rotate_batch(x, torch.Generator().manual_seed(0))
    for img, out, turn in zip(x, turned, k.tolist()):
        assert torch.equal(out, torch.rot90(img, turn, dims=(1, 2)))
    assert set(k.tolist()) <= {0, 1, 2, 3} and len(set(k.tolist())) > 1
    with pytest.raises(ValueError):
        rotate_batch(torch.zeros(1, 3, 4, 5))
