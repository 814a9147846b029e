"""Barlow Twins two-view augmentation, batched for small images on a CPU.

The recipe of Zbontar et al., "Barlow Twins: Self-Supervised Learning via
Redundancy Reduction" (ICML 2021): random resized crop, horizontal flip,
colour jitter (p=0.8; brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1),
grayscale (p=0.2), Gaussian blur (p=1.0 for the first view, 0.1 for the
second) and solarization (p=0.0 / 0.2), then normalisation.

:class:`BarlowTwinsViews` draws every random parameter per image, then applies
each step to the whole batch with tensor ops (crop and flip as one
``grid_sample`` with per-image affine grids, colour jitter with per-image
factors in a per-image random order, one grouped convolution for the blur).
It gives the same pixels as torchvision's functional ops applied image by image
with the same parameters (tested), at a fraction of the cost.
:class:`ReferenceBarlowTwinsViews` is the plain per-image
``torchvision.transforms.v2`` pipeline, kept as a reference and for timing.

Scaling to small images: crop scale (0.2, 1.0) instead of (0.08, 1.0), and the
blur sigma range (0.1, 2.0) pixels at 224 px scaled by ``resolution / 224``
(0.014-0.29 px at 32 px: almost no blur, in line with the common practice of
dropping blur for CIFAR), with a kernel of 2*ceil(3*sigma_max)+1 taps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from edgenas.data.colour_ops import COLOUR_OPS, gaussian_blur, grayscale, solarize
from edgenas.data.view_params import ViewParams, sample_view_params
from edgenas.errors import ConfigError

CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
"""Per-channel statistics of the CIFAR-10 training images (RGB, in [0, 1])."""
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
DEFAULT_MEAN = IMAGENET_MEAN
DEFAULT_STD = IMAGENET_STD
"""Used when a data set has no statistics of its own (ImageFolder trees)."""

SOLARIZE_THRESHOLD = 128 / 255
"""PIL's ImageOps.solarize default (128 of 255), as in the Barlow Twins code."""


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the Barlow Twins augmentations; pairs are (view 1, view 2).

    Attributes:
        crop_scale: area fraction range of the random resized crop.
        crop_ratio: aspect ratio range of the crop.
        flip_p: horizontal flip probability.
        jitter_p: probability of applying colour jitter.
        brightness, contrast, saturation: jitter factor spread (factor in [1-x, 1+x]).
        hue: hue shift range [-hue, hue] in turns, at most 0.5.
        grayscale_p: probability of converting to grey.
        blur_p: blur probability per view.
        blur_sigma_224: blur sigma range in pixels at 224 px; scaled to the resolution.
        solarize_p: solarization probability per view.
    """

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: tuple[float, float] = (1.0, 0.1)
    blur_sigma_224: tuple[float, float] = (0.1, 2.0)
    solarize_p: tuple[float, float] = (0.0, 0.2)

    def __post_init__(self) -> None:
        for name in ("crop_scale", "crop_ratio", "blur_p", "blur_sigma_224", "solarize_p"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 2:
                raise ConfigError(f"{name} must be a pair, got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ConfigError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if not 0.0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ConfigError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        if not 0.0 < self.blur_sigma_224[0] <= self.blur_sigma_224[1]:
            raise ConfigError(f"blur_sigma_224 must satisfy 0 < low <= high, got {self.blur_sigma_224}")
        probabilities = (self.flip_p, self.jitter_p, self.grayscale_p, *self.blur_p, *self.solarize_p)
        if any(not 0.0 <= p <= 1.0 for p in probabilities):
            raise ConfigError("augmentation probabilities must lie in [0, 1]")
        if any(not 0.0 <= s < 1.0 for s in (self.brightness, self.contrast, self.saturation)):
            raise ConfigError("brightness, contrast and saturation spreads must lie in [0, 1)")
        if not 0.0 <= self.hue <= 0.5:
            raise ConfigError(f"hue must lie in [0, 0.5], got {self.hue}")

    def blur_sigma(self, resolution: int) -> tuple[float, float]:
        """Sigma range in pixels at ``resolution``."""
        scale = resolution / 224.0
        return (self.blur_sigma_224[0] * scale, self.blur_sigma_224[1] * scale)

    def blur_kernel_size(self, resolution: int) -> int:
        """Odd kernel size covering three sigmas of the largest blur, at least 3."""
        return max(3, 2 * math.ceil(3.0 * self.blur_sigma(resolution)[1]) + 1)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> AugmentConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _check_stats(mean: tuple[float, ...], std: tuple[float, ...]) -> None:
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise ConfigError(f"mean and std must be 3 values each, std positive; got {mean}, {std}")


def normalize_batch(
    images: torch.Tensor, mean: tuple[float, ...] = DEFAULT_MEAN, std: tuple[float, ...] = DEFAULT_STD
) -> torch.Tensor:
    """uint8 [B, 3, H, W] (or float in [0, 1]) to float32 ``(x / 255 - mean) / std``.

    The evaluation transform: no augmentation, same normalisation as the views.
    """
    _check_stats(mean, std)
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] of uint8 [N, 3, H, W], in chunks to bound memory."""
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].double().div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(0.0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def crop_flip_resize(images: torch.Tensor, params: ViewParams, resolution: int) -> torch.Tensor:
    """Crop each image to its box, flip it if asked and resize to ``resolution``, bilinear.

    One ``grid_sample`` with per-image affine grids; matches cropping then
    ``F.resize(..., antialias=True)`` when the crop is upscaled, which is
    always the case when ``resolution`` equals the input size.

    Args:
        images: float [B, 3, H, W].
    Returns:
        float [B, 3, resolution, resolution].
    """
    batch, _, height, width = images.shape
    top, left, box_h, box_w = params.boxes.to(images.dtype).unbind(dim=1)
    # Output pixel centres in [-1, 1] (align_corners=False) map linearly to the box.
    out = (torch.arange(resolution, dtype=images.dtype, device=images.device) + 0.5) * (2.0 / resolution) - 1.0
    sign = 1.0 - 2.0 * params.flip.to(images.dtype)
    gx = (sign * box_w / width)[:, None] * out + ((2.0 * left + box_w) / width - 1.0)[:, None]
    gy = (box_h / height)[:, None] * out + ((2.0 * top + box_h) / height - 1.0)[:, None]
    # Clamp to the centres of the box's edge pixels: as when cropping first and
    # resizing after, pixels outside the box never bleed in.
    gx = gx.clamp(((2.0 * left + 1.0) / width - 1.0)[:, None], ((2.0 * (left + box_w) - 1.0) / width - 1.0)[:, None])
    gy = gy.clamp(((2.0 * top + 1.0) / height - 1.0)[:, None], ((2.0 * (top + box_h) - 1.0) / height - 1.0)[:, None])
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def apply_view(images: torch.Tensor, params: ViewParams, resolution: int, kernel_size: int) -> torch.Tensor:
    """Apply one view's sampled augmentations to float [B, 3, H, W] in [0, 1].

    Returns float [B, 3, resolution, resolution] in [0, 1] (not normalised).
    """
    params = params.to(images.device)  # drawn on the CPU generator
    x = crop_flip_resize(images, params, resolution)
    # Each image runs its jitter ops in its own order: at step k, the images
    # whose k-th op is op j are gathered, transformed and put back.
    for step in range(4):
        for op_index, op in enumerate(COLOUR_OPS):
            _apply_to(x, params.jitter & (params.order[:, step] == op_index), op, params.factors[:, op_index])
    _apply_to(x, params.grayscale, lambda sub, _: grayscale(sub).expand(-1, 3, -1, -1))
    _apply_to(x, params.blur_sigma > 0, lambda sub, s: gaussian_blur(sub, s, kernel_size), params.blur_sigma)
    _apply_to(x, params.solarize, lambda sub, _: solarize(sub, SOLARIZE_THRESHOLD))
    return x


def _apply_to(x: torch.Tensor, chosen: torch.Tensor, op, factor: torch.Tensor | None = None) -> None:
    """In place: ``x[chosen] = op(x[chosen], factor[chosen])``, skipped when none is chosen."""
    index = chosen.nonzero().squeeze(1)
    if index.numel() == 0:
        return
    sub_factor = None if factor is None else factor.index_select(0, index)
    if index.numel() == x.shape[0]:
        x.copy_(op(x, sub_factor))
    else:
        x.index_copy_(0, index, op(x.index_select(0, index), sub_factor))


@contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads, then restore the setting."""
    previous = torch.get_num_threads()
    if threads is not None and threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


@dataclass(frozen=True)
class BarlowTwinsViews:
    """Two augmented, normalised views of a uint8 batch, batched on the CPU.

    Args:
        resolution: side of the output views in pixels.
        mean, std: per-channel normalisation (in [0, 1] units).
        augment: augmentation strengths.
        threads: torch intra-op threads while augmenting, restored afterwards
            (None: leave the setting alone). 1 by default because each op
            here is small: measured on the 2-core machine with another busy
            process, one 64x3x32x32 op took 0.1 ms on 1 thread and 15 ms on 2
            (every parallel region waits for a time slice), 17 ms against
            1.4 s for a whole batch of views.

    Example:
        >>> views = BarlowTwinsViews(resolution=32)
        >>> batch = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
        >>> v1, v2 = views(batch, torch.Generator().manual_seed(0))
        >>> v1.shape
        torch.Size([8, 3, 32, 32])
    """

    resolution: int = 32
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, got {self.threads!r}")
        if not isinstance(self.resolution, int) or self.resolution < 8:
            raise ConfigError(f"resolution must be an integer >= 8, got {self.resolution!r}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        _check_stats(self.mean, self.std)
        if self.augment.blur_kernel_size(self.resolution) // 2 >= self.resolution:
            raise ConfigError(f"blur_sigma_224 {self.augment.blur_sigma_224} is too wide for {self.resolution} px")

    def sample(self, batch: int, height: int, width: int, view: int, generator: torch.Generator | None) -> ViewParams:
        """Random parameters of view 0 or 1 for ``batch`` images of ``height`` x ``width``."""
        sigma = self.augment.blur_sigma(self.resolution)
        return sample_view_params(batch, height, width, self.augment, view, sigma, generator)

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two views of uint8 [B, 3, H, W]; each float32 [B, 3, R, R], normalised.

        Deterministic given ``generator`` (None uses torch's global generator).

        Raises:
            ConfigError: ``images`` is not uint8 [B, 3, H, W].
        """
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ConfigError(f"views need uint8 [B, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        batch, _, height, width = images.shape
        kernel = self.augment.blur_kernel_size(self.resolution)
        outputs = []
        with intra_op_threads(self.threads):
            x = images.float().div_(255.0)
            for view in (0, 1):
                params = self.sample(batch, height, width, view, generator)
                outputs.append(normalize_batch(apply_view(x, params, self.resolution, kernel), self.mean, self.std))
        return outputs[0], outputs[1]


@dataclass(frozen=True)
class ReferenceBarlowTwinsViews:
    """The same recipe as plain per-image ``torchvision.transforms.v2``, for reference and timing.

    Works on uint8 images image by image, as a DataLoader worker would.
    Deterministic given ``generator``: it seeds torch's global generator from
    it inside a forked RNG state, because v2 transforms draw from the global one.
    """

    resolution: int = 32
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def pipeline(self, view: int):
        from torchvision.transforms import v2

        a = self.augment
        jitter = v2.ColorJitter(a.brightness, a.contrast, a.saturation, a.hue)
        blur = v2.GaussianBlur(a.blur_kernel_size(self.resolution), a.blur_sigma(self.resolution))
        return v2.Compose(
            [
                v2.RandomResizedCrop(self.resolution, scale=a.crop_scale, ratio=a.crop_ratio, antialias=True),
                v2.RandomHorizontalFlip(a.flip_p),
                v2.RandomApply([jitter], p=a.jitter_p),
                v2.RandomGrayscale(a.grayscale_p),
                v2.RandomApply([blur], p=a.blur_p[view]),
                v2.RandomSolarize(threshold=128, p=a.solarize_p[view]),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(list(self.mean), list(self.std)),
            ]
        )

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two views of uint8 [B, 3, H, W]; each float32 [B, 3, R, R], normalised."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        pipelines = (self.pipeline(0), self.pipeline(1))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            views = [torch.stack([p(image) for image in images]) for p in pipelines]
        return views[0], views[1]
