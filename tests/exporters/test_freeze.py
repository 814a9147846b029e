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


def _batch_norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize("name", ["fast_cnn", "stages"])
def test_batch_norm_after_a_max_pool_is_folded_into_the_conv(name, randomize_bn):
    """conv-pool-BN (fast_cnn, every stage network): a max pool commutes with a positive per-channel scale."""
    from edgenas.models import build
    from edgenas.models.baselines import build_baseline
    from edgenas.space.stages import Stage, StageSpec

    torch.manual_seed(0)
    model = (build_baseline("fast_cnn", resolution=32, width=0.25) if name == "fast_cnn" else
             build(StageSpec(stem_channels=8, stages=(Stage(16, 5, True, 0), Stage(24, 3, True, 1),
                                                      Stage(32, 3, False, 1)), num_classes=10)).deployable())
    model = randomize_bn(model).eval()
    assert _batch_norms(model) > 0
    frozen = _check_frozen(model, 32)
    assert _batch_norms(frozen) == 0
    # and the ReLU moved before the pool, where the conv absorbs it: no pool feeds a ReLU any more
    modules = dict(frozen.named_modules())
    kinds = {n: type(modules[n.target]) for n in frozen.graph.nodes if n.op == "call_module"}
    pools = [n for n, kind in kinds.items() if kind is nn.MaxPool2d]
    assert pools and all(kinds[n.args[0]] is nn.ReLU for n in pools)
    assert not any(kinds.get(user) is nn.ReLU for n in pools for user in n.users)


def _conv_pool_bn(pool: nn.Module, scales: list[float]) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, len(scales), 3, padding=1), pool, nn.BatchNorm2d(len(scales)), nn.ReLU())
    with torch.no_grad():
        model[2].weight.copy_(torch.tensor(scales))
        model[2].bias.uniform_(-0.5, 0.5)
        model[2].running_mean.uniform_(-0.5, 0.5)
        model[2].running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_a_negative_scale_keeps_the_batch_norm_after_a_max_pool():
    model = _conv_pool_bn(nn.MaxPool2d(2), [1.0, -0.5, 2.0])  # max(-z) is not -max(z): folding would be wrong
    frozen = _check_frozen(model, 16)
    assert _batch_norms(frozen) == 1


def test_an_average_pool_folds_any_scale():
    model = _conv_pool_bn(nn.AvgPool2d(2), [1.0, -0.5, 2.0])  # the mean is linear: it commutes with any affine map
    frozen = _check_frozen(model, 16)
    assert _batch_norms(frozen) == 0


def test_a_pool_whose_output_is_also_used_elsewhere_keeps_its_batch_norm():
    class Branching(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.pool, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(4)

        def forward(self, x):
            p = self.pool(self.conv(x))
            return self.bn(p) + p  # the unnormalised pooled map is needed too

    frozen = _check_frozen(Branching().eval(), 16)
    assert _batch_norms(frozen) == 1
