"""DINO's multi-crop views, batched: two global crops at full resolution and small local crops.

Caron et al. (ICCV 2021, section 3.1; Caron et al., NeurIPS 2020 for multi-crop):
global crops cover 40-100% of the image at the training resolution; local
crops cover 5-40% at a lower resolution (96 against 224 in the paper: about
0.43; here half the side). The colour augmentations are those of the two-view
pipeline; the two global crops are its two asymmetric views (blur on the
first, solarization on the second), the local crops are blurred half the time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from edgenas.data.views import DEFAULT_MEAN, DEFAULT_STD, AugmentConfig, BarlowTwinsViews
from edgenas.errors import ConfigError

__all__ = ["MultiCropViews"]


@dataclass(frozen=True)
class MultiCropViews:
    """``2`` global views ``[B, 3, R, R]`` then ``n_local`` local views ``[B, 3, r, r]`` of a uint8 batch.

    Args:
        resolution: R, the global crops' side.
        local_resolution: r (default R // 2, at least 8).
        n_local: local crops per image (DINO's 2 global + 6 local crops use 6).
        global_scale, local_scale: area fraction ranges of the crops.
    """

    resolution: int = 32
    local_resolution: int | None = None
    n_local: int = 6
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD

    def __post_init__(self) -> None:
        if self.n_local < 0:
            raise ConfigError(f"n_local must be >= 0, got {self.n_local}")
        if self.local_resolution is None:
            object.__setattr__(self, "local_resolution", max(8, self.resolution // 2))
        base = AugmentConfig()
        object.__setattr__(self, "_global", BarlowTwinsViews(self.resolution, tuple(self.mean), tuple(self.std),
                                                             replace(base, crop_scale=self.global_scale)))
        # local crops: blurred half the time, never solarized
        local = replace(base, crop_scale=self.local_scale, blur_p=(0.5, 0.5), solarize_p=(0.0, 0.0))
        object.__setattr__(self, "_local", BarlowTwinsViews(self.local_resolution, tuple(self.mean), tuple(self.std),
                                                            local))

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """The views of ``images`` (uint8 ``[B, 3, H, W]``), deterministic given ``generator``."""
        crops = list(self._global(images, generator))
        while len(crops) < 2 + self.n_local:
            crops.extend(self._local(images, generator))
        return crops[:2 + self.n_local]
