"""The network of a :class:`~edgenas.space.stages.StageSpec`: optional stem, dense conv stages, max pool, heads."""

from __future__ import annotations

import torch
from torch import nn

from edgenas.models.derived import SearchedNet
from edgenas.space.stages import Stage, StageSpec

__all__ = ["ConvBlock", "ResidualPair", "StageBlock", "StagesNet"]


class ConvBlock(nn.Sequential):
    """``kernel`` conv (no bias), then a 2x2 max pool with ``pool``, batch norm, ReLU: ``[B, c_in, H, W] ->
    [B, c_out, H', W']`` (``H' = H / 2`` when pooled). Pooling before the norm halves its cost."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, pool: bool = False) -> None:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2, bias=False)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        super().__init__(*layers, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResidualPair(nn.Module):
    """``x + f(x)``, ``f`` two 3x3 conv-BN-ReLU layers at ``c`` channels."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBlock(c, c), ConvBlock(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class StageBlock(nn.Sequential):
    """One stage: its conv block, then its residual pairs."""

    def __init__(self, c_in: int, stage: Stage) -> None:
        super().__init__(ConvBlock(c_in, stage.width, stage.kernel, stage.pool),
                         *(ResidualPair(stage.width) for _ in range(stage.residual)))


class StagesNet(SearchedNet):
    """Stem (optional) -> stages -> global max pool -> classifier (and SSL projector).

    Shapes: ``forward(x [B, in_channels, R, R]) -> [B, num_classes]`` (the pooled features
    ``[B, F]`` when ``num_classes == 0``); ``features(x) -> [B, F]``, ``F`` the last stage's width.
    """

    def __init__(self, spec: StageSpec) -> None:
        super().__init__()
        self.spec = spec
        self.stem = ConvBlock(spec.in_channels, spec.stem_channels) if spec.stem_channels else nn.Identity()
        self.stages = nn.ModuleList(StageBlock(c, s) for c, s in zip(spec.inputs(), spec.stages))
        self.feature_dim = spec.feature_dim
        self.build_heads(self.feature_dim, spec)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output ``[B, F, H', W']``, before the global pooling."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.amax(self.feature_map(x), dim=(2, 3))
