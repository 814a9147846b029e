"""The network of an :class:`~edgenas.space.evolved.EvolvedSpec`: stem, inverted-residual blocks, heads."""

from __future__ import annotations

import torch
from torch import nn

from edgenas.models.derived import SearchedNet
from edgenas.space.evolved import BlockSpec, EvolvedSpec

__all__ = ["EvoBlock", "EvolvedNet", "make_evolved_stem"]


def make_evolved_stem(in_channels: int, channels: int) -> nn.Sequential:
    """3x3 stride-1 conv, BN, ReLU (small inputs keep their resolution for the first block)."""
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels),
                         nn.ReLU(inplace=True))


class EvoBlock(nn.Module):
    """1x1 expand, BN, ReLU -> kxk depthwise (stride), BN, ReLU -> 1x1 project, BN (+ input when shapes match).

    Shapes: ``[B, c_in, H, W] -> [B, out, H / stride, W / stride]``.
    """

    def __init__(self, c_in: int, block: BlockSpec) -> None:
        super().__init__()
        self.c_in, self.spec = c_in, block
        h = block.hidden
        self.pw1 = nn.Conv2d(c_in, h, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(h)
        self.dw = nn.Conv2d(h, h, block.kernel, block.stride, block.kernel // 2, groups=h, bias=False)
        self.bn2 = nn.BatchNorm2d(h)
        self.pw2 = nn.Conv2d(h, block.out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(block.out)
        self.residual = block.stride == 1 and c_in == block.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.pw1(x)))
        y = torch.relu(self.bn2(self.dw(y)))
        y = self.bn3(self.pw2(y))
        return x + y if self.residual else y


class EvolvedNet(SearchedNet):
    """Stem -> blocks -> global average pool -> classifier (and SSL projector).

    Shapes: ``forward(x [B, in_channels, R, R]) -> [B, num_classes]`` (the pooled
    features ``[B, F]`` when ``num_classes == 0``); ``features(x) -> [B, F]``,
    ``F = blocks[-1].out``; ``project(x) -> [B, projector[-1]]``.
    """

    def __init__(self, spec: EvolvedSpec) -> None:
        super().__init__()
        self.spec = spec
        self.stem = make_evolved_stem(spec.in_channels, spec.stem_channels)
        self.blocks = nn.ModuleList(EvoBlock(c, b) for c, b in zip(spec.inputs(), spec.blocks))
        self.feature_dim = spec.feature_dim
        self.build_heads(self.feature_dim, spec)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x.mean((2, 3))

