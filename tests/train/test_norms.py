"""Resetting scale-invariant weight norms keeps the network's function and restores fresh norms."""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgenas.train import FinetuneConfig
from edgenas.train.candidates import load_candidate
from edgenas.train.norms import reset_weight_norms, scale_invariant_convs


def _grow(model: nn.Module, factor: float) -> None:
    """What a search does to the norms: scale every scale-invariant conv (and its statistics) up."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for conv, bn, start in scale_invariant_convs(model):
            c = modules[conv]
            c.weight.mul_(factor)
            stop = start + c.out_channels
            modules[bn].running_mean[start:stop] *= factor
            modules[bn].running_var[start:stop] *= factor ** 2


def test_reset_keeps_the_function_and_gives_fresh_norms(tiny_run):
    torch.manual_seed(0)
    net = load_candidate(str(tiny_run), "preserved", num_classes=5, resolution=16).model
    fresh = load_candidate(str(tiny_run), "random", num_classes=5, resolution=16, seed=1).model
    _grow(net, 3.0)
    pairs = scale_invariant_convs(net)
    assert any(start > 0 for _, _, start in pairs)  # the factorized reduction's concatenated convs
    assert {c for c, _, _ in pairs} >= {"stem.0"}
    x = torch.randn(6, 3, 16, 16)
    before_eval = net.eval()(x)
    before_train = copy.deepcopy(net).train()(x)
    scales = reset_weight_norms(net, fresh)
    assert set(scales) == {c for c, _, _ in pairs} and all(0 < s < 1 for s in scales.values())
    torch.testing.assert_close(net.eval()(x), before_eval, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(copy.deepcopy(net).train()(x), before_train, atol=1e-4, rtol=1e-4)
    own, ref = dict(net.named_modules()), dict(fresh.named_modules())
    for conv in scales:
        torch.testing.assert_close(own[conv].weight.norm(), ref[conv].weight.norm())


class _Shared(nn.Module):
    """A conv whose output feeds its batch norm and a residual: not scale-invariant."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.bn_a = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.b, self.bn_b = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.a(x)
        return self.bn_a(y) + y + self.bn_b(self.b(x))


def test_a_conv_with_another_consumer_is_left_alone():
    net = _Shared()
    assert scale_invariant_convs(net) == [("b", "bn_b", 0)]
    torch.manual_seed(0)
    reference = _Shared()
    with torch.no_grad():
        net.a.weight.mul_(4)
        net.b.weight.mul_(4)
        net.bn_b.running_var.mul_(16)
    a = net.a.weight.clone()
    x = torch.randn(2, 3, 8, 8)
    before = net.eval()(x)
    assert set(reset_weight_norms(net, reference)) == {"b"}
    assert torch.equal(net.a.weight, a)
    torch.testing.assert_close(net(x), before, atol=1e-4, rtol=1e-4)


def test_an_untraceable_model_is_left_alone():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

        def forward(self, x):
            return self.bn(self.conv(x)) if x.sum() > 0 else x  # data-dependent control flow

    assert scale_invariant_convs(Branchy()) == []


def test_the_option_is_in_the_protocol_only_when_on():
    assert FinetuneConfig(model="m").identity()["reset_norms"] is True  # the default
    off = FinetuneConfig(model="m", reset_norms=False)
    assert "reset_norms" not in off.identity()  # protocols recorded before the option keep their ids
