"""freeze(): same outputs as the eval model, no batch norm after a convolution, input untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from exporters.errors import ConversionError
from exporters.freeze import freeze, remaining_conv_bn


def _check_frozen(model: nn.Module, resolution: int) -> nn.Module:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    frozen = freeze(model)
    assert model.training == was_training  # the input's mode is not touched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    x = torch.randn(3, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        expected = model(x)
        got = frozen(x)
    model.train(was_training)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert remaining_conv_bn(frozen) == []
    return frozen


def test_derived_net_has_no_batch_norm_left(tiny_net):
    net = tiny_net.deployable()
    assert remaining_conv_bn(net)  # there was something to fold
    frozen = _check_frozen(net, 16)
    # The factorized reduction's BN(cat(conv, conv)) is folded too, so none is left at all.
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in frozen.modules())


def test_input_in_train_mode_stays_in_train_mode(tiny_net):
    net = tiny_net.deployable().train()
    _check_frozen(net, 16)
    assert net.training


@pytest.mark.parametrize("name,kwargs", [
    ("mobilenet_v3_small", {}),
    ("mobilenet_v2", {"width": 0.35}),
    ("efficientnet_b0", {}),
])
def test_torchvision_baselines(name, kwargs, randomize_bn):
    from edgenas.models.baselines import build_baseline

    torch.manual_seed(0)
    model = randomize_bn(build_baseline(name, resolution=32, **kwargs)).eval()
    frozen = _check_frozen(model, 32)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())


def test_untraceable_model_is_a_one_line_conversion_error():
    class DataDependent(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ConversionError, match="cannot trace DataDependent") as info:
        freeze(DataDependent())
    assert "\n" not in str(info.value)
