import pytest
import torch
from torch import nn

from edgenas.errors import DuplicateNameError, UnknownNameError
from bench.registry import Registry
from edgenas.space import OPS, register_op
from edgenas.space.ops import DEFAULT_OPS, build_op

REQUIRED = {"ds_conv", "ds_conv_se", "irb_e3", "irb_e6", "se", "identity", "zero"}


def test_registry_holds_the_required_ops():
    assert REQUIRED <= set(OPS.names())
    assert set(DEFAULT_OPS) == REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("affine", [False, True])
def test_op_shapes(name, stride, affine):
    op = build_op(name, 8, stride, affine)
    y = op(torch.randn(2, 8, 16, 16))
    assert y.shape == (2, 8, 16 // stride, 16 // stride)


def test_zero_is_zero_and_identity_is_identity():
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(build_op("zero", 4, 1, True)(x), torch.zeros_like(x))
    assert torch.equal(build_op("identity", 4, 1, True)(x), x)


def test_parameter_names_do_not_depend_on_affine():
    # weight preservation copies supernet (affine=False) op weights by name
    for name in REQUIRED:
        a = {k for k, _ in build_op(name, 8, 1, False).named_parameters()}
        b = {k for k, _ in build_op(name, 8, 1, True).named_parameters()}
        assert a <= b and all(k.endswith((".weight", ".bias")) for k in b - a)


def test_registry_errors():
    reg = Registry("thing")
    reg.register("alpha", 1)
    with pytest.raises(DuplicateNameError):
        reg.register("alpha", 2)
    with pytest.raises(UnknownNameError, match="did you mean 'alpha'"):
        reg.get("alpah")
    with pytest.raises(UnknownNameError, match="known: ds_conv"):
        OPS.get("nope_not_an_op_xyz")


def test_user_op_registration():
    @register_op("test_dw5x5")
    def dw5(C, stride, affine):
        return nn.Sequential(nn.Conv2d(C, C, 5, stride, 2, groups=C, bias=False), nn.BatchNorm2d(C, affine=affine))

    try:
        assert build_op("test_dw5x5", 4, 2, True)(torch.randn(1, 4, 8, 8)).shape == (1, 4, 4, 4)
        with pytest.raises(DuplicateNameError):
            register_op("test_dw5x5")(dw5)
    finally:
        OPS.unregister("test_dw5x5")
