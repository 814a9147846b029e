"""Per-image random parameters of one augmented view, drawn for a whole batch at once.

Kept apart from their application (:mod:`edgenas.data.views`) so that tests can
apply the same parameters with torchvision's functional ops and compare.
The draws follow torchvision's ``RandomResizedCrop.get_params`` and
``ColorJitter`` (ten crop attempts, then a central fallback; jitter factors
uniform in [1-x, 1+x], hue in [-h, h], the four ops in a random order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from edgenas.data.views import AugmentConfig

_CROP_ATTEMPTS = 10


@dataclass(frozen=True)
class ViewParams:
    """Random choices for B images; every field has the batch as first dimension.

    Attributes:
        boxes: int64 [B, 4] crop (top, left, height, width) in input pixels.
        flip: bool [B] horizontal flip.
        jitter: bool [B] colour jitter applied.
        factors: float32 [B, 4] brightness, contrast, saturation factors and hue shift.
        order: int64 [B, 4] order of the four jitter ops (indices into the factors).
        grayscale: bool [B] converted to grey.
        blur_sigma: float32 [B] blur sigma in output pixels, 0 for no blur.
        solarize: bool [B] solarized.
    """

    boxes: torch.Tensor
    flip: torch.Tensor
    jitter: torch.Tensor
    factors: torch.Tensor
    order: torch.Tensor
    grayscale: torch.Tensor
    blur_sigma: torch.Tensor
    solarize: torch.Tensor

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def to(self, device: torch.device | str) -> ViewParams:
        """The same parameters on ``device`` (they are drawn on the CPU)."""
        return ViewParams(*(getattr(self, f.name).to(device) for f in fields(self)))


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low


def sample_crop_boxes(
    batch: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Random resized crop boxes, int64 [B, 4] (top, left, height, width).

    All ten attempts of every image are drawn at once; the first that fits is
    kept, else the central crop of the closest allowed aspect ratio.
    """
    area = height * width
    shape = (batch, _CROP_ATTEMPTS)
    target_area = area * _uniform(shape, scale[0], scale[1], generator)
    aspect = torch.exp(_uniform(shape, math.log(ratio[0]), math.log(ratio[1]), generator))
    w = torch.round(torch.sqrt(target_area * aspect)).long()
    h = torch.round(torch.sqrt(target_area / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int8).argmax(dim=1)  # index of the first fitting attempt
    found = fits.any(dim=1)
    rows = torch.arange(batch)
    h, w = h[rows, first], w[rows, first]

    in_ratio = width / height
    if in_ratio < ratio[0]:
        fallback_w, fallback_h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fallback_h, fallback_w = height, int(round(height * ratio[1]))
    else:
        fallback_w, fallback_h = width, height
    h = torch.where(found, h, torch.full_like(h, fallback_h))
    w = torch.where(found, w, torch.full_like(w, fallback_w))
    offsets = torch.rand((batch, 2), generator=generator, dtype=torch.float64)
    top = torch.floor(offsets[:, 0] * (height - h + 1)).long()
    left = torch.floor(offsets[:, 1] * (width - w + 1)).long()
    top = torch.where(found, top, (height - h) // 2)
    left = torch.where(found, left, (width - w) // 2)
    return torch.stack([top, left, h, w], dim=1)


def sample_view_params(
    batch: int,
    height: int,
    width: int,
    augment: AugmentConfig,
    view: int,
    blur_sigma: tuple[float, float],
    generator: torch.Generator | None,
) -> ViewParams:
    """Draw the parameters of view 0 or 1 for ``batch`` images of ``height`` x ``width``.

    Args:
        augment: strengths and probabilities.
        view: 0 or 1, selects the blur and solarization probabilities.
        blur_sigma: sigma range in output pixels.
        generator: the only source of randomness (None: torch's global one).
    """
    boxes = sample_crop_boxes(batch, height, width, augment.crop_scale, augment.crop_ratio, generator)

    def coin(p: float) -> torch.Tensor:
        return torch.rand(batch, generator=generator) < p

    flip = coin(augment.flip_p)
    jitter = coin(augment.jitter_p)
    spreads = (augment.brightness, augment.contrast, augment.saturation)
    factors = torch.stack(
        [_uniform((batch,), max(0.0, 1.0 - s), 1.0 + s, generator) for s in spreads]
        + [_uniform((batch,), -augment.hue, augment.hue, generator)],
        dim=1,
    ).float()
    order = torch.argsort(torch.rand((batch, 4), generator=generator), dim=1)
    grey = coin(augment.grayscale_p)
    blurred = coin(augment.blur_p[view])
    sigma = _uniform((batch,), blur_sigma[0], blur_sigma[1], generator).float()
    sigma = torch.where(blurred, sigma, torch.zeros_like(sigma))
    solarized = coin(augment.solarize_p[view])
    return ViewParams(boxes, flip, jitter, factors, order, grey, sigma, solarized)
