"""Profiler: parameter and MAC counts against hand computation and published figures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgenas.errors import ConfigError
from edgenas.profiler import (
    Profile,
    count_macs,
    count_params,
    input_shape,
    profile_model,
)


def test_conv_macs_match_hand_computation():
    # Dense 3x3 conv, 8 -> 16 channels, 10x10 output: 16 * 8 * 9 * 100 MACs.
    dense = nn.Conv2d(8, 16, 3, padding=1)
    assert count_macs(dense, (8, 10, 10)) == 16 * 8 * 9 * 100
    # Depthwise: each output channel sees one input channel: 8 * 9 * 100.
    depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    assert count_macs(depthwise, (8, 10, 10)) == 8 * 9 * 100
    # Grouped (4 groups of 2 in -> 4 out): 16 * 2 * 9 * 25 at stride 2.
    grouped = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4)
    assert count_macs(grouped, (8, 10, 10)) == 16 * 2 * 9 * 25


def test_linear_macs_and_params():
    layer = nn.Linear(20, 5)
    model = nn.Sequential(nn.Flatten(), layer)
    assert count_macs(model, (1, 4, 5)) == 20 * 5
    assert count_params(model) == 20 * 5 + 5


def test_params_count_frozen_but_not_buffers():
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4))
    model[0].weight.requires_grad_(False)
    assert count_params(model) == 12 + 8  # conv weight + BN affine; running stats are buffers


def test_modes_are_restored_per_module():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout())
    model.train()
    model[1].eval()  # a frozen BN inside a training model must stay frozen
    count_macs(model, 8)
    assert model.training and model[0].training and not model[1].training and model[2].training


def test_modes_are_restored_when_forward_fails():
    model = nn.Sequential(nn.Conv2d(4, 4, 3))  # expects 4 channels: a 3-channel input fails
    model.train()
    with pytest.raises(RuntimeError):
        count_macs(model, 8)
    assert all(m.training for m in model.modules())


def test_input_shape_forms_and_errors():
    assert input_shape(32) == (1, 3, 32, 32)
    assert input_shape((24, 32), in_channels=1) == (1, 1, 24, 32)
    assert input_shape((3, 8, 8)) == (1, 3, 8, 8)
    assert input_shape((1, 3, 8, 8)) == (1, 3, 8, 8)
    for bad in [0, (2, 3, 8, 8), (3, -1, 8), (1, 2, 3, 4, 5)]:
        with pytest.raises(ConfigError):
            input_shape(bad)


def test_profile_round_trip_and_validation():
    profile = Profile(params=10, macs=20, resolution=32)
    assert Profile.from_dict(profile.to_dict()) == profile
    assert profile.to_dict() == {"params": 10, "macs": 20, "resolution": 32, "in_channels": 3}
    with pytest.raises(ConfigError):
        Profile(params=-1, macs=0, resolution=32)
    with pytest.raises(ConfigError):
        Profile(params=1, macs=0, resolution=0)
    with pytest.raises(ConfigError):
        Profile.from_dict({"params": 1, "macs": 1, "resolution": 1, "flops": 2})


# (builder, published MACs, published params) at 224x224, 1000 classes. Sources:
# MobileNetV2 paper table 8 (300M, 3.4M; torchvision 3.50M), MobileNetV3 paper
# table 3 (56M, 2.5M; torchvision 2.54M), EfficientNet paper table 2 (0.39B, 5.3M).
PUBLISHED = [
    ("mobilenet_v2", 300e6, 3.50e6),
    ("mobilenet_v3_small", 56e6, 2.54e6),
    ("efficientnet_b0", 390e6, 5.29e6),
]


@pytest.mark.parametrize(("name", "macs", "params"), PUBLISHED)
def test_torchvision_models_match_published_figures(name, macs, params):
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None)
    profile = profile_model(model, 224)
    assert profile.macs == pytest.approx(macs, rel=0.03)
    assert profile.params == pytest.approx(params, rel=0.03)
    assert model.training  # count_macs left the fresh model in train mode
