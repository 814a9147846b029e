"""SyntheticShapes: the embedded default data set, a four-level curriculum of shapes.

Needs no file and no download. Every image is rendered on the fly with numpy
and depends only on ``(seed, split, level, index)``, so any item can be drawn
alone, in any order, in any DataLoader worker, and two runs with the same seed
see the same pixels.

Levels (10 classes of shapes, see :data:`edgenas.data.shapes.CLASSES`):

1. one shape, random size, position and colour, plain background;
2. shape and background filled with multi-frequency sinusoidal gratings, plus
   Gaussian noise;
3. a composition: the labelled shape is the largest, with 1-3 smaller
   distractor shapes of other classes, all textured;
4. level 3 plus perturbations: rotation of the whole scene, occluding patches,
   blur, colour jitter and a contrast change.

Example:
    >>> ds = SyntheticShapes(size=100, level=2, seed=0)
    >>> image, label = ds[0]
    >>> image.shape, image.dtype
    (torch.Size([3, 32, 32]), torch.uint8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from edgenas.progress import track
from edgenas.data.shapes import (
    CLASSES,
    gaussian_blur,
    grating_textures,
    pixel_grid,
    random_angle,
    random_colour,
    shape_coverage,
)
from edgenas.errors import ConfigError, DataError

LEVELS: tuple[int, ...] = (1, 2, 3, 4)
SPLITS: tuple[str, ...] = ("train", "test")
# Extra words of the seed sequence that keep the label and level streams
# apart from every image stream (image streams use the level, 1-4, there).
_LABEL_STREAM = 1000
_LEVEL_STREAM = 1001


@dataclass(frozen=True)
class SyntheticConfig:
    """What defines a synthetic data set; two equal configs give equal pixels.

    Attributes:
        size: number of images.
        levels: difficulty levels (1-4) mixed evenly; one entry for a single level.
        resolution: image side in pixels (8 to 512).
        seed: any non-negative integer.
        split: "train" or "test"; the two draw disjoint random streams.
    """

    size: int
    levels: tuple[int, ...] = (1,)
    resolution: int = 32
    seed: int = 0
    split: str = "train"

    def __post_init__(self) -> None:
        if isinstance(self.levels, int):  # accept level=3 as well as (3,)
            object.__setattr__(self, "levels", (self.levels,))
        object.__setattr__(self, "levels", tuple(int(v) for v in self.levels))
        if not isinstance(self.size, int) or self.size < 1:
            raise ConfigError(f"synthetic size must be a positive integer, got {self.size!r}")
        if not self.levels or any(v not in LEVELS for v in self.levels):
            raise ConfigError(f"synthetic levels must be among {LEVELS}, got {self.levels!r}")
        if not isinstance(self.resolution, int) or not 8 <= self.resolution <= 512:
            raise ConfigError(f"resolution must be an integer in [8, 512], got {self.resolution!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {self.split!r}")

    def to_dict(self) -> dict:
        return {**asdict(self), "levels": list(self.levels)}

    @classmethod
    def from_dict(cls, data: dict) -> SyntheticConfig:
        return cls(**{**data, "levels": tuple(data.get("levels", (1,)))})


def balanced_block_labels(count: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    """Labels for items 0..count-1: each block of ``classes`` items is a permutation.

    So every class appears once per block (counts differ by at most one), and
    the label of item i does not depend on ``count`` (the stream is consumed
    block by block). int64 [count].
    """
    blocks = -(-count // classes)
    keys = rng.random((blocks, classes))
    return np.argsort(keys, axis=1).reshape(-1)[:count].astype(np.int64)


def render(label: int, level: int, rng: np.random.Generator, resolution: int = 32) -> np.ndarray:
    """Render one image of class ``label`` at difficulty ``level``.

    All random parameters are drawn first, then every texture of the image is
    computed in one vectorised call (per-call overhead dominates at 32 px).

    Args:
        label: class index into :data:`CLASSES`.
        level: 1 to 4 (see the module docstring).
        rng: the only source of randomness.
        resolution: side in pixels.

    Returns:
        uint8 [3, R, R].
    """
    xs, ys = pixel_grid(resolution)
    scene_angle = 0.0
    if level == 4:
        # Rotating the sampling grid rotates the whole scene with no border artefacts.
        scene_angle = float(rng.uniform(-np.pi / 7.0, np.pi / 7.0))
        c, s = np.float32(np.cos(scene_angle)), np.float32(np.sin(scene_angle))
        xs, ys = xs * c - ys * s, xs * s + ys * c

    bg_colour = random_colour(rng)
    main_radius = rng.uniform(0.45, 0.75) if level >= 3 else rng.uniform(0.4, 0.8)
    # (class, radius, centre limit): the labelled shape stays mostly inside the
    # frame; distractors may be cut by the border.
    layers = [(label, main_radius, 1.0 - 0.8 * main_radius)]
    if level >= 3:
        others = [c for c in range(len(CLASSES)) if c != label]
        n_distract = int(rng.integers(1, 4))
        for cls in rng.choice(others, size=n_distract, replace=False):
            layers.append((int(cls), main_radius * rng.uniform(0.3, 0.6), 0.9))
        # Distractors go behind or in front of the labelled shape at random;
        # being smaller, they never hide most of it.
        in_front = rng.random(n_distract) < 0.5
        order = [i + 1 for i in range(n_distract) if not in_front[i]]
        order += [0] + [i + 1 for i in range(n_distract) if in_front[i]]
        layers = [layers[i] for i in order]
    alphas, colours = [], [bg_colour]
    for cls, radius, limit in layers:
        center = (rng.uniform(-limit, limit), rng.uniform(-limit, limit))
        alphas.append(shape_coverage(cls, xs, ys, center, radius, random_angle(cls, rng)))
        colours.append(random_colour(rng, away_from=bg_colour))
    n_occluders = int(rng.integers(1, 3)) if level == 4 else 0
    colours += [random_colour(rng) for _ in range(n_occluders)]

    if level == 1:
        fills = np.stack(colours)[:, :, None, None]
    else:
        fills = grating_textures(rng, resolution, np.stack(colours), scene_angle)
    image = np.broadcast_to(fills[0], (3, resolution, resolution))
    for i, alpha in enumerate(alphas, start=1):
        image = image + alpha * (fills[i] - image)
    if level == 4:
        image = _perturb(image, rng, xs, ys, fills[len(alphas) + 1 :])
    if level >= 2:
        sigma = rng.uniform(0.02, 0.08)
        image = image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _perturb(
    image: np.ndarray, rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, patches: np.ndarray
) -> np.ndarray:
    """Level-4 perturbations on float32 [3, R, R]: occluders, blur, colour, contrast.

    ``patches`` float32 [P, 3, R, R] are the textures of the P occluding rectangles.
    """
    resolution = image.shape[-1]
    for patch in patches:
        half = rng.uniform(0.1, 0.25, 2)
        cx, cy = rng.uniform(-0.8, 0.8, 2)
        inside = (np.abs(xs - cx) <= half[0]) & (np.abs(ys - cy) <= half[1])
        image = np.where(inside[None], patch, image)
    if rng.random() < 0.5:
        # At most ~0.8 px at 32 px: stronger blur merges circle, hexagon and star.
        sigma_px = rng.uniform(0.3, 0.8) * resolution / 32.0
        image = gaussian_blur(image, sigma_px, radius=max(2, int(np.ceil(2.5 * sigma_px))))
    gain = rng.uniform(0.8, 1.2, 3).astype(np.float32)[:, None, None]
    offset = np.float32(rng.uniform(-0.1, 0.1))
    image = image * gain + offset
    mean = image.mean()
    return (image - mean) * np.float32(rng.uniform(0.6, 1.4)) + mean


class SyntheticShapes(Dataset):
    """Deterministic, on-the-fly curriculum data set of 10 shape classes.

    Args:
        size: number of images.
        level: a level 1-4, or a sequence of levels mixed evenly (each block
            of ``len(levels)`` consecutive items holds each level once, in a
            seeded order); item i at level l is the same picture as item i of
            the single-level set at l, with the same label.
        resolution: image side in pixels.
        seed: seed of every random choice.
        split: "train" or "test" (disjoint streams).

    Items are ``(uint8 tensor [3, R, R], int label)``. Labels are balanced
    (each block of 10 items holds each class once) and do not depend on the
    level, so the same index is the same class at every level.

    Raises:
        ConfigError: an argument is out of range.
    """

    def __init__(
        self,
        size: int,
        level: int | Sequence[int] = 1,
        resolution: int = 32,
        seed: int = 0,
        split: str = "train",
    ) -> None:
        levels = (level,) if isinstance(level, int) else tuple(level)
        self.config = SyntheticConfig(size, levels, resolution, seed, split)
        self.classes: list[str] = list(CLASSES)
        split_id = SPLITS.index(split)
        self._key = (seed, split_id)
        label_rng = np.random.default_rng([seed, split_id, _LABEL_STREAM])
        # numpy copies for the per-item lookups: indexing a tensor costs microseconds.
        self._labels = balanced_block_labels(size, len(CLASSES), label_rng)
        if len(self.config.levels) == 1:
            self._levels = np.full(size, self.config.levels[0], dtype=np.int64)
        else:
            level_rng = np.random.default_rng([seed, split_id, _LEVEL_STREAM])
            which = balanced_block_labels(size, len(self.config.levels), level_rng)
            self._levels = np.asarray(self.config.levels, dtype=np.int64)[which]
        self.labels = torch.from_numpy(self._labels)
        """int64 [size]: the label of every item, without rendering."""
        self.item_levels = torch.from_numpy(self._levels)
        """int64 [size]: the level of every item."""

    @property
    def levels(self) -> tuple[int, ...]:
        return self.config.levels

    @property
    def resolution(self) -> int:
        return self.config.resolution

    def __len__(self) -> int:
        return self.config.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        size = self.config.size
        if not -size <= index < size:
            raise IndexError(f"index {index} out of range for {size} images")
        index %= size
        level = int(self._levels[index])
        label = int(self._labels[index])
        rng = np.random.default_rng([*self._key, level, index])
        return torch.from_numpy(render(label, level, rng, self.config.resolution)), label

    def __repr__(self) -> str:
        c = self.config
        return (
            f"SyntheticShapes(size={c.size}, levels={c.levels}, resolution={c.resolution}, "
            f"seed={c.seed}, split={c.split!r})"
        )


def materialize(
    dataset: Dataset,
    *,
    num_workers: int = 0,
    batch_size: int = 256,
    description: str = "rendering",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render or read a whole data set into memory.

    Args:
        dataset: items ``(uint8 tensor [3, H, W], int label)`` of one size.
        num_workers: DataLoader worker processes (0 renders in this process).
        batch_size: items per worker task.
        description: label of the progress bar (shown above 2000 items, on stderr).

    Returns:
        images uint8 [N, 3, H, W] and labels int64 [N].

    Raises:
        DataError: an item is not a uint8 [3, H, W] tensor or the sizes differ.
    """
    count = len(dataset)
    if count == 0:
        raise DataError("cannot materialize an empty data set")
    first, _ = dataset[0]
    if not (isinstance(first, torch.Tensor) and first.dtype == torch.uint8 and first.dim() == 3):
        raise DataError(f"materialize needs uint8 [3, H, W] tensor items, got {type(first).__name__}")
    images = torch.empty((count, *first.shape), dtype=torch.uint8)
    labels = torch.empty(count, dtype=torch.int64)
    if num_workers > 0:
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False)
        start = 0
        for batch_images, batch_labels in track(loader, len(loader), description, weight=batch_size):
            if batch_images.shape[1:] != first.shape:
                raise DataError(f"item shapes differ: {tuple(first.shape)} vs {tuple(batch_images.shape[1:])}")
            images[start : start + len(batch_labels)] = batch_images
            labels[start : start + len(batch_labels)] = batch_labels
            start += len(batch_labels)
        return images, labels
    for i in track(range(count), count, description):
        image, label = dataset[i]
        if image.shape != first.shape:
            raise DataError(f"item {i} has shape {tuple(image.shape)}, item 0 {tuple(first.shape)}")
        images[i] = image
        labels[i] = label
    return images, labels
