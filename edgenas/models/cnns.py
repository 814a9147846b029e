"""Hand-made CNNs a user would pick instead of searching: a CIFAR ResNet-20 and a fast-training plain CNN.

* ``resnet20`` (He et al., CVPR 2016, section 4.2): a 3x3 stem and three stages of three basic
  blocks at 16, 32 and 64 channels (x width); 0.27M parameters, 41M MACs at 32x32.
* ``fast_cnn``: three blocks of conv-maxpool-BN-ReLU, each followed by a residual pair of
  conv-BN-ReLU (the shape of the ResNet-9 of Page's DAWNBench entry and of airbench), widths
  64, 128 and 144 (x width) so that it fills the default budget at 32x32: 0.99M parameters,
  75M MACs. Global max pooling, then the classifier. It trains fast on CPUs: its convs are
  dense and most run at a quarter of the input's pixels or less.

Both are in :data:`edgenas.models.baselines.BASELINES` and take the same width multiplier.
"""

from __future__ import annotations

import torch
from torch import nn

from edgenas.models.stages import StagesNet

__all__ = ["FastCNN", "ResNet20", "fast_cnn_spec"]


def _width(c: int, width: float) -> int:
    return max(8, int(round(c * width / 8)) * 8)


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.skip(x) + self.bn2(self.conv2(y)))


class ResNet20(nn.Module):
    """``[B, 3, R, R] -> [B, num_classes]``: stem, 3 x 3 basic blocks, global average pooling, classifier."""

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        widths = [_width(c, width) for c in (16, 32, 64)]
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        blocks, c_in = [], widths[0]
        for stage, c in enumerate(widths):
            for i in range(3):
                blocks.append(_BasicBlock(c_in, c, 2 if stage and i == 0 else 1))
                c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(self.stem(x)).mean((2, 3)))


def fast_cnn_spec(num_classes: int = 10, width: float = 1.0, resolution: int = 32):
    """``fast_cnn`` as a point of the stage space (:mod:`edgenas.space.stages`)."""
    from edgenas.space.stages import Stage, StageSpec

    return StageSpec(stem_channels=0, stages=tuple(Stage(_width(c, width), 3, True, 1) for c in (64, 128, 144)),
                     resolution=resolution, num_classes=num_classes)


class FastCNN(StagesNet):
    """``[B, 3, R, R] -> [B, num_classes]``: 3 x (conv-pool-BN-ReLU, residual conv pair), global max pool, classifier.

    It is the stage-space network :func:`fast_cnn_spec` describes (no SSL projector).
    """

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__(fast_cnn_spec(num_classes, width))
