"""Batched colour operations with one factor per image, matching torchvision's maths.

torchvision's functional ops take one factor for the whole batch; SSL views
need a different factor per image. These take float [B, 3, H, W] in [0, 1]
and factors [B], and follow ``torchvision.transforms.v2.functional``
(same grey weights, blends, clamps and HSV conversion), so a batch gives the
same pixels as applying the torchvision op image by image (tested).
"""

from __future__ import annotations

import torch

# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale.
_GREY_WEIGHTS = (0.2989, 0.587, 0.114)


def _per_image(factor: torch.Tensor) -> torch.Tensor:
    return factor.reshape(-1, 1, 1, 1)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma of float [B, 3, H, W], float [B, 1, H, W]."""
    r, g, b = images.unbind(dim=-3)
    return (r * _GREY_WEIGHTS[0] + g * _GREY_WEIGHTS[1] + b * _GREY_WEIGHTS[2]).unsqueeze(-3)


def _blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    factor = _per_image(factor)
    return (factor * images + (1.0 - factor) * other).clamp_(0.0, 1.0)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale by ``factor`` [B], clamp to [0, 1]."""
    return (images * _per_image(factor)).clamp_(0.0, 1.0)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the mean luma of each image by ``factor`` [B]."""
    mean = grayscale(images).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(images, mean, factor)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the luma image by ``factor`` [B] (0 = grey, 1 = unchanged)."""
    return _blend(images, grayscale(images), factor)


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` [B] turns, in [-0.5, 0.5], through HSV."""
    hue, sat, value = _rgb_to_hsv(images)
    hue = torch.remainder(hue + shift.reshape(-1, 1, 1), 1.0)
    return _hsv_to_rgb(hue, sat, value)


def _rgb_to_hsv(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, g, b = images.unbind(dim=-3)
    # Elementwise max/min of the three planes: a reduction over the strided
    # channel axis (aminmax) is several times slower at these sizes.
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    # Where max == min, hue and saturation are 0; the divisors are set to 1
    # there so that no NaN is ever produced.
    eqc = maxc == minc
    chroma = maxc - minc
    ones = torch.ones_like(maxc)
    sat = chroma / torch.where(eqc, ones, maxc)
    divisor = torch.where(eqc, ones, chroma).unsqueeze(-3)
    rc, gc, bc = ((maxc.unsqueeze(-3) - images) / divisor).unbind(dim=-3)
    max_not_r = maxc != r
    max_is_g = maxc == g
    hr = (bc - gc) * ~max_not_r
    hg = (2.0 + rc - bc) * (max_is_g & max_not_r)
    hb = (4.0 + gc - rc) * (max_not_r & ~max_is_g)
    hue = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return hue, sat, maxc


_CHANNEL_OFFSETS = torch.tensor([5.0, 3.0, 1.0]).view(3, 1, 1)


def _hsv_to_rgb(hue: torch.Tensor, sat: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    # Closed form of the six-sector table: channel n is v - v*s*clamp(min(k, 4-k), 0, 1)
    # with k = (n + 6h) mod 6. Same values as torchvision's sector lookup (to
    # float rounding) without its gather, which dominates at these sizes.
    k = torch.remainder(hue.unsqueeze(-3) * 6.0 + _CHANNEL_OFFSETS.to(device=hue.device, dtype=hue.dtype), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    value = value.unsqueeze(-3)
    return (value - value * sat.unsqueeze(-3) * ramp).clamp_(0.0, 1.0)


COLOUR_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
"""In torchvision's ColorJitter order: the index an order permutation refers to."""


def solarize(images: torch.Tensor, threshold: float) -> torch.Tensor:
    """Invert pixels at or above ``threshold``, float [B, 3, H, W]."""
    return torch.where(images >= threshold, 1.0 - images, images)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur with one ``sigma`` [B] (pixels) per image, reflect padding.

    The kernel is torchvision's (``exp(-x^2 / 2 sigma^2)`` on integer taps,
    normalised). Applied as a weighted sum of shifted slices: with a few taps
    that is much faster on a CPU than a grouped convolution with B*3 groups.
    """
    half = (kernel_size - 1) / 2.0
    taps = torch.linspace(-half, half, kernel_size, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (taps / sigma.to(images.device, images.dtype).reshape(-1, 1)) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # [B, K]
    weights = kernel.reshape(-1, 1, 1, 1, kernel_size)
    pad = kernel_size // 2
    height, width = images.shape[-2:]
    padded = torch.nn.functional.pad(images, (pad, pad, 0, 0), mode="reflect")
    rows = sum(weights[..., k] * padded[..., :, k : k + width] for k in range(kernel_size))
    padded = torch.nn.functional.pad(rows, (0, 0, pad, pad), mode="reflect")
    return sum(weights[..., k] * padded[..., k : k + height, :] for k in range(kernel_size))
