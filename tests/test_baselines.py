"""Baselines: names, widths, the small-input stem and output shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgenas.errors import ConfigError, UnknownNameError
from edgenas.models.baselines import (
    BASELINES,
    SMALL_INPUT_MAX,
    build_baseline,
    resolve_baseline,
)
from edgenas.profiler import profile_model

NAMES = ["mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0"]
HANDMADE = ["resnet20", "fast_cnn"]


def test_registry_holds_the_baselines():
    assert BASELINES.names() == sorted(NAMES + HANDMADE)


@pytest.mark.parametrize("name, params, macs", [("resnet20", 272_474, 40_813_184), ("fast_cnn", 986_698, 74_982_816)])
def test_handmade_cnns_fit_the_default_budget(name, params, macs):
    model = build_baseline(name, num_classes=10)
    profile = profile_model(model, 32)
    assert (profile.params, profile.macs) == (params, macs) and params < 1_000_000 and macs < 100_000_000
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    half = profile_model(build_baseline(f"{name}_050", num_classes=5), 32)
    assert half.params < profile.params / 2


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("resolution", [32, 224])
def test_forward_shape(name, resolution):
    model = build_baseline(name, num_classes=7, resolution=resolution).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, resolution, resolution))
    assert out.shape == (1, 7)


def _strides(model: nn.Module) -> list[tuple[int, int]]:
    return [m.stride for m in model.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]


@pytest.mark.parametrize("name", NAMES)
def test_large_input_model_is_torchvision_untouched(name):
    import torchvision

    ours = build_baseline(name, num_classes=1000, resolution=224)
    theirs = getattr(torchvision.models, name)(weights=None)
    assert str(ours) == str(theirs)


@pytest.mark.parametrize(("name", "removed"), [("mobilenet_v2", 2), ("mobilenet_v3_small", 1), ("efficientnet_b0", 1)])
def test_small_input_stem_removes_downsampling(name, removed):
    small = build_baseline(name, resolution=SMALL_INPUT_MAX)
    large = build_baseline(name, resolution=SMALL_INPUT_MAX + 1)
    assert len(_strides(large)) - len(_strides(small)) == removed
    assert small.features[0][0].stride == (1, 1)
    assert large.features[0][0].stride == (2, 2)


def test_small_input_keeps_a_spatial_map():
    # MobileNetV2 CIFAR port: overall stride 8, so 32x32 ends on a 4x4 map.
    features = build_baseline("mobilenet_v2", resolution=32).features.eval()
    with torch.no_grad():
        assert features(torch.zeros(1, 3, 32, 32)).shape[-2:] == (4, 4)


def test_width_alias_and_argument_agree():
    assert resolve_baseline("mobilenet_v2_035") == ("mobilenet_v2", 0.35)
    assert resolve_baseline("mobilenet_v2_0.35") == ("mobilenet_v2", 0.35)
    assert resolve_baseline("efficientnet_b0") == ("efficientnet_b0", None)
    by_alias = build_baseline("mobilenet_v2_035")
    by_arg = build_baseline("mobilenet_v2", width=0.35)
    assert str(by_alias) == str(by_arg)
    with pytest.raises(ConfigError, match="width"):
        build_baseline("mobilenet_v2_035", width=0.5)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0"])
def test_width_shrinks_v3_and_efficientnet(name):
    full = sum(p.numel() for p in build_baseline(name).parameters())
    half = sum(p.numel() for p in build_baseline(name, width=0.5).parameters())
    assert half < 0.6 * full


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownNameError, match="mobilenet_v2") as info:
        build_baseline("mobilenetv2")
    assert "did you mean" in str(info.value)


@pytest.mark.parametrize(
    "kwargs", [{"num_classes": 0}, {"width": 0.0}, {"width": -1.0}, {"resolution": 0}]
)
def test_bad_arguments_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        build_baseline("mobilenet_v2", **kwargs)


def test_mobilenet_v2_035_at_32(capsys):
    profile = profile_model(build_baseline("mobilenet_v2_035", num_classes=10, resolution=32), 32)
    with capsys.disabled():
        print(f"\nmobilenet_v2 0.35x @32: {profile.params_m:.3f}M params, {profile.macs_m:.2f}M MACs")
    # Measured 0.409M params, 15.6M MACs (torchvision 0.29, small-input stem).
    assert 0.35e6 < profile.params < 0.45e6
    assert 13e6 < profile.macs < 18e6
