"""The standard supervised augmentation of small images, batched: random crop with padding, horizontal flip,
and cutout (DeVries and Taylor, 2017: a random square of each image set to zero after normalisation), and
the colour jitter that noises a self-training student (``--student-jitter``).

For CIFAR-sized inputs this is the augmentation of every ResNet/MobileNet CIFAR
recipe (He et al., CVPR 2016, section 4.2: 4 pixels of padding on each side,
a random 32x32 crop, a random horizontal flip). The padding scales with the
resolution (``resolution // 8``). Padding is by reflection rather than zeros,
so that no black border becomes a feature of the small set of labelled images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgenas.data.views import normalize_batch

__all__ = ["colour_jitter", "crop_flip", "cutout", "pad_for"]


def pad_for(resolution: int) -> int:
    """Pixels of padding on each side: 4 at 32x32, in proportion elsewhere (at least 1)."""
    return max(1, resolution // 8)


def crop_flip(images: torch.Tensor, generator: torch.Generator, mean: tuple[float, ...], std: tuple[float, ...],
              pad: int | None = None) -> torch.Tensor:
    """Randomly crop (after reflection padding) and flip a uint8 batch, then normalise.

    Args:
        images: uint8 [B, 3, R, R].
        generator: the only source of randomness (the batch is reproducible).
        mean, std: per-channel normalisation in [0, 1] units.
        pad: padding on each side (default :func:`pad_for` of R).

    Returns:
        float32 [B, 3, R, R], normalised.
    """
    batch, _, height, width = images.shape
    pad = pad_for(height) if pad is None else pad
    x = normalize_batch(images, mean, std)
    if pad > 0:
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
        rows = (dy[:, None] + torch.arange(height)[None, :])  # [B, H]
        cols = (dx[:, None] + torch.arange(width)[None, :])  # [B, W]
        b = torch.arange(batch)[:, None, None]
        # gather every image's window in one indexing op: [B, H, W, C] -> [B, C, H, W]
        x = x.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    flip = torch.rand(batch, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x.contiguous()


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square of each image of the normalised batch ``x [B, C, H, W]``, at a random
    centre (the square may reach past the border: then less of it is cut). ``size`` 0 returns ``x``."""
    if size <= 0:
        return x
    batch, _, height, width = x.shape
    cy = torch.randint(0, height, (batch,), generator=generator) - size // 2
    cx = torch.randint(0, width, (batch,), generator=generator) - size // 2
    rows = torch.arange(height)[None, :]
    cols = torch.arange(width)[None, :]
    inside_y = (rows >= cy[:, None]) & (rows < cy[:, None] + size)
    inside_x = (cols >= cx[:, None]) & (cols < cx[:, None] + size)
    keep = ~(inside_y[:, :, None] & inside_x[:, None, :])
    return x * keep[:, None].to(x.dtype)


def colour_jitter(images: torch.Tensor, strength: float, generator: torch.Generator, p: float = 0.8) -> torch.Tensor:
    """Float [B, 3, H, W] in [0, 1] of a uint8 batch, ``p`` of its images with brightness, contrast and saturation
    each scaled by a factor drawn from ``[1 - strength, 1 + strength]`` (SimCLR's jitter without hue; torchvision's
    maths, :mod:`edgenas.data.colour_ops`). ``strength`` 0 only converts."""
    from edgenas.data.colour_ops import adjust_brightness, adjust_contrast, adjust_saturation

    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    if strength <= 0:
        return x
    batch = x.shape[0]
    chosen = torch.rand(batch, generator=generator) < p
    factors = 1 + strength * (2 * torch.rand(3, batch, generator=generator) - 1)
    factors[:, ~chosen] = 1.0  # a factor of 1 leaves the image as it is
    for op, factor in zip((adjust_brightness, adjust_contrast, adjust_saturation), factors):
        x = op(x, factor)
    return x
