"""Candidate operations of the cell search space: light ones (depthwise, inverted residual, squeeze-excite)
and dense ones (full convolutions, a residual conv pair, pooling), which train faster per MAC on CPUs.

Every op is built by a factory ``f(C, stride, affine) -> nn.Module`` that maps
``[B, C, H, W]`` to ``[B, C, H/stride, W/stride]``. The same factory builds the
op in the supernet (``affine=False`` batch norm, as in DARTS, Liu et al. 2019)
and in the derived network (``affine=True``), so parameter names match and the
searched weights can be copied over (weight preservation).

References: depthwise-separable conv (Howard et al. 2017, MobileNet), inverted
residual block (Sandler et al. 2018, MobileNetV2), squeeze-and-excitation
(Hu et al. 2018), the residual pair of 3x3 convs (He et al. 2016, ResNet), and
DARTS' ReLU-conv-BN and pooling ops (Liu et al. 2019).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bench.registry import Registry

OpFactory = Callable[[int, int, bool], nn.Module]

#: name -> factory(C, stride, affine); ``zero`` is special-cased by the cell search.
OPS: Registry[OpFactory] = Registry("op")

#: the light ops: depthwise and inverted-residual blocks, squeeze-excite
LIGHT_OPS: tuple[str, ...] = ("zero", "identity", "se", "ds_conv", "ds_conv_se", "irb_e3", "irb_e6")
#: the dense ops: full (not depthwise) 3x3 and 5x5 convs, a residual pair of 3x3 convs, 3x3 max and mean pooling
DENSE_OPS: tuple[str, ...] = ("full_conv3x3", "full_conv5x5", "res_conv", "max_pool", "mean_pool")

DEFAULT_OPS: tuple[str, ...] = LIGHT_OPS


def register_op(name: str) -> Callable[[OpFactory], OpFactory]:
    """Decorator that adds an op factory ``f(C, stride, affine)`` to :data:`OPS`.

    Raises:
        DuplicateNameError: the name is taken.
    """
    return OPS.register(name)


class SqueezeExcite(nn.Module):
    """Channel attention: global pool -> 1x1 reduce -> ReLU -> 1x1 expand -> sigmoid gate.

    Shapes: ``[B, C, H, W] -> [B, C, H, W]``.
    """

    def __init__(self, C: int, reduction: int = 4, min_hidden: int = 8) -> None:
        super().__init__()
        hidden = max(C // reduction, min_hidden)
        self.reduce = nn.Conv2d(C, hidden, 1)
        self.expand = nn.Conv2d(hidden, C, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.expand(torch.relu(self.reduce(s)))
        return x * torch.sigmoid(s)


class Zero(nn.Module):
    """The 'no connection' op: zeros of the output shape (never computed in a mixed op)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: two offset 1x1 stride-2 convs, concatenated.

    Shapes: ``[B, C_in, H, W] -> [B, C_out, ceil(H/2), ceil(W/2)]`` (H, W even in this space).
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True) -> None:
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even C_out, got {C_out}")
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class ConvBN(nn.Module):
    """ReLU -> k x k conv (stride s) -> BN: the DARTS pre-processing of cell inputs (1x1), and the dense
    ``full_conv`` ops (3x3, 5x5), in DARTS' order (a node's sum is activated by its users)."""

    def __init__(self, C_in: int, C_out: int, kernel: int = 1, stride: int = 1, affine: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(C_in, C_out, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(torch.relu(x)))


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise (stride s) -> BN -> ReLU [-> SE] -> 1x1 pointwise -> BN."""

    def __init__(self, C: int, stride: int, affine: bool, se: bool = False) -> None:
        super().__init__()
        self.dw = nn.Conv2d(C, C, 3, stride, 1, groups=C, bias=False)
        self.bn_dw = nn.BatchNorm2d(C, affine=affine)
        self.se = SqueezeExcite(C) if se else nn.Identity()
        self.pw = nn.Conv2d(C, C, 1, bias=False)
        self.bn_pw = nn.BatchNorm2d(C, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn_dw(self.dw(x)))
        return self.bn_pw(self.pw(self.se(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (x e) -> BN -> ReLU6 -> 3x3 dw -> BN -> ReLU6 -> 1x1 project -> BN.

    The residual connection is used at stride 1 (input and output shapes match).
    """

    def __init__(self, C: int, stride: int, affine: bool, expansion: int) -> None:
        super().__init__()
        hidden = C * expansion
        self.expand = nn.Conv2d(C, hidden, 1, bias=False)
        self.bn_expand = nn.BatchNorm2d(hidden, affine=affine)
        self.dw = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.bn_dw = nn.BatchNorm2d(hidden, affine=affine)
        self.project = nn.Conv2d(hidden, C, 1, bias=False)
        self.bn_project = nn.BatchNorm2d(C, affine=affine)
        self.residual = stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.relu6(self.bn_expand(self.expand(x)))
        y = torch.nn.functional.relu6(self.bn_dw(self.dw(y)))
        y = self.bn_project(self.project(y))
        return x + y if self.residual else y


class PooledSE(nn.Module):
    """Squeeze-excite alone; at stride 2 an average pool first halves the resolution."""

    def __init__(self, C: int, stride: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride, 1, count_include_pad=False) if stride > 1 else nn.Identity()
        self.se = SqueezeExcite(C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.pool(x))


class ResidualConvPair(nn.Module):
    """Two 3x3 convs with a skip: ``x + BN(conv(ReLU(BN(conv(ReLU(x))))))`` (a ResNet basic block, pre-activation).

    At stride 2 the first conv halves the map and the skip is a factorized reduction.
    """

    def __init__(self, C: int, stride: int, affine: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(C, C, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(C, affine=affine)
        self.conv2 = nn.Conv2d(C, C, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(C, affine=affine)
        self.skip = nn.Identity() if stride == 1 else FactorizedReduce(C, C, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn1(self.conv1(torch.relu(x)))
        return self.skip(x) + self.bn2(self.conv2(torch.relu(y)))


class PoolBN(nn.Module):
    """3x3 max or average pooling (stride s, padding 1; the average over the pixels inside) -> BN."""

    def __init__(self, C: int, stride: int, affine: bool, kind: str) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(3, stride, 1) if kind == "max" else nn.AvgPool2d(3, stride, 1,
                                                                                   count_include_pad=False)
        self.bn = nn.BatchNorm2d(C, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pool(x))


@register_op("zero")
def _zero(C: int, stride: int, affine: bool) -> nn.Module:
    return Zero(stride)


@register_op("identity")
def _identity(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(C, C, affine)


@register_op("se")
def _se(C: int, stride: int, affine: bool) -> nn.Module:
    return PooledSE(C, stride)


@register_op("ds_conv")
def _ds_conv(C: int, stride: int, affine: bool) -> nn.Module:
    return DepthwiseSeparable(C, stride, affine)


@register_op("ds_conv_se")
def _ds_conv_se(C: int, stride: int, affine: bool) -> nn.Module:
    return DepthwiseSeparable(C, stride, affine, se=True)


@register_op("irb_e3")
def _irb_e3(C: int, stride: int, affine: bool) -> nn.Module:
    return InvertedResidual(C, stride, affine, expansion=3)


@register_op("irb_e6")
def _irb_e6(C: int, stride: int, affine: bool) -> nn.Module:
    return InvertedResidual(C, stride, affine, expansion=6)


@register_op("full_conv3x3")
def _conv3x3(C: int, stride: int, affine: bool) -> nn.Module:
    return ConvBN(C, C, 3, stride, affine)


@register_op("full_conv5x5")
def _conv5x5(C: int, stride: int, affine: bool) -> nn.Module:
    return ConvBN(C, C, 5, stride, affine)


@register_op("res_conv")
def _res_conv(C: int, stride: int, affine: bool) -> nn.Module:
    return ResidualConvPair(C, stride, affine)


@register_op("max_pool")
def _max_pool(C: int, stride: int, affine: bool) -> nn.Module:
    return PoolBN(C, stride, affine, "max")


@register_op("mean_pool")
def _avg_pool(C: int, stride: int, affine: bool) -> nn.Module:
    return PoolBN(C, stride, affine, "avg")


def build_op(name: str, C: int, stride: int, affine: bool) -> nn.Module:
    """Build op ``name`` for ``C`` channels; raises UnknownNameError for unknown names."""
    return OPS.get(name)(C, stride, affine)
