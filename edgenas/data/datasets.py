"""Data sets by name, loaded into memory as uint8 tensors: synthetic, CIFAR-10, ImageFolder.

Loading everything into memory is the design choice: the search uses at most
about 50k images of 32x32 (150 MB as uint8), and augmenting a batch held in
memory (:mod:`edgenas.data.views`) is far cheaper than decoding files per step.

Example:
    >>> data = load_dataset("synthetic", size=200, level=2)
    >>> data.images.shape, data.labels.dtype
    (torch.Size([200, 3, 32, 32]), torch.int64)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgenas.data.cifar_batches import LAYOUT as CIFAR_LAYOUT
from edgenas.data.cifar_batches import find_batches_dir, read_batches, read_class_names
from edgenas.progress import track
from edgenas.data.splits import stratified_count, train_val_split
from edgenas.errors import ConfigError, DataError
from bench.registry import Registry

DEFAULT_DATA_ROOT = Path(os.environ.get("EDGENAS_DATA", "~/.cache/edgenas")).expanduser()
"""Where real data sets are looked for when no root is given (``$EDGENAS_DATA``)."""

SYNTHETIC_DEFAULT_SIZE = {"train": 10_000, "test": 2_000}
"""Images of the synthetic set when no size is given."""

IMAGEFOLDER_LAYOUT = "<root>/<class>/<image> or <root>/{train,val,test}/<class>/<image>"

HOLDOUTS = ("all", "train", "val")
"""Which part of a training tree to draw from: everything, or one side of the fixed hold-out."""

HOLDOUT_FRACTION = 0.1
HOLDOUT_SEED = 0
"""The validation hold-out of every real training set: 10% of each class, chosen with a
fixed seed, so it is the same images whatever the run's seed. Searches and fine-tuning
draw from ``holdout="train"``; reported accuracies use ``holdout="val"``."""


@dataclass(frozen=True)
class LabelledImages:
    """A labelled image set held in memory; also usable as a torch Dataset.

    Attributes:
        images: uint8 [N, 3, R, R].
        labels: int64 [N], each in ``range(len(classes))``.
        classes: class names, index = label.
        name: registry name of the source ("synthetic", "cifar10", ...).
        source: where it came from (a path, or the synthetic config), for reports.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    source: str = ""

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise DataError(f"images must be uint8 [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
            raise DataError(f"labels must be int64 [{images.shape[0]}], got {labels.dtype} {tuple(labels.shape)}")
        if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < len(self.classes):
            raise DataError(f"labels must lie in [0, {len(self.classes)})")

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def subset(self, indices: torch.Tensor | Sequence[int]) -> LabelledImages:
        """The items at ``indices`` (a copy), same classes and name."""
        index = torch.as_tensor(indices, dtype=torch.int64)
        return LabelledImages(self.images[index], self.labels[index], list(self.classes), self.name, self.source)


Loader = Callable[..., LabelledImages]
DATASETS: Registry[Loader] = Registry("dataset")
"""Loaders by name; each is ``loader(root, *, train, resolution, size, level, seed)``."""


def resize_images(images: torch.Tensor, resolution: int, chunk: int = 2048) -> torch.Tensor:
    """Resize uint8 [N, 3, H, W] to [N, 3, R, R] (bilinear, antialiased), in chunks.

    Non-square images are squashed; ImageFolder images are centre-cropped
    before they get here.
    """
    if images.shape[-2:] == (resolution, resolution):
        return images
    out = torch.empty((images.shape[0], 3, resolution, resolution), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        part = images[start : start + chunk].float()
        part = F.interpolate(part, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


class SubsetTooLarge(ConfigError):
    """More images were asked for than the data set (or its hold-out part) holds; ``available`` says how many."""

    def __init__(self, message: str, available: int) -> None:
        super().__init__(message)
        self.available = available


def _subset_indices(labels: np.ndarray | torch.Tensor, size: int | None, seed: int,
                    holdout: str = "all") -> torch.Tensor | None:
    """Positions to load: the ``holdout`` part, then a stratified seeded subset; None for everything."""
    if holdout not in HOLDOUTS:
        raise ConfigError(f"holdout must be one of {', '.join(HOLDOUTS)}, got {holdout!r}")
    if holdout == "all":
        if size is not None and size > len(labels):
            raise SubsetTooLarge(f"asked for {size} images but the data set holds only {len(labels)}", len(labels))
        if size is None or size == len(labels):
            return None
        return stratified_count(labels, size, seed)
    train, val = train_val_split(labels, val_fraction=HOLDOUT_FRACTION, seed=HOLDOUT_SEED)
    part = train if holdout == "train" else val
    if size is None or size >= len(part):
        if size is not None and size > len(part):
            raise SubsetTooLarge(f"asked for {size} images but the {holdout} part holds only {len(part)}", len(part))
        return part
    return part[stratified_count(np.asarray(labels)[part.numpy()], size, seed)]


def _real_data_only(name: str, level: int | Sequence[int]) -> None:
    if level != 1:
        raise ConfigError(f"level applies to the synthetic data set only, not to {name!r}")


@DATASETS.register("synthetic")
def load_synthetic(
    root: str | Path | None = None,
    *,
    train: bool = True,
    resolution: int = 32,
    size: int | None = None,
    level: int | Sequence[int] = 1,
    seed: int = 0,
    holdout: str = "all",
) -> LabelledImages:
    """Render :class:`~edgenas.data.synthetic.SyntheticShapes` into memory; ``root`` is unused.

    ``size`` defaults to :data:`SYNTHETIC_DEFAULT_SIZE`; train and test are
    disjoint random streams of the same seed.
    """
    from edgenas.data.synthetic import SyntheticShapes, materialize

    # the synthetic hold-out is its separate test stream
    split = "test" if (not train or holdout == "val") else "train"
    dataset = SyntheticShapes(size or SYNTHETIC_DEFAULT_SIZE[split], level, resolution, seed, split)
    images, labels = materialize(dataset, description=f"rendering synthetic {split}")
    return LabelledImages(images, labels, list(dataset.classes), "synthetic", repr(dataset))


@DATASETS.register("cifar10")
def load_cifar10(
    root: str | Path | None = None,
    *,
    train: bool = True,
    resolution: int = 32,
    size: int | None = None,
    level: int | Sequence[int] = 1,
    seed: int = 0,
    holdout: str = "all",
) -> LabelledImages:
    """CIFAR-10 from ``<root>/cifar-10-batches-py`` (torchvision's layout; nothing is downloaded).

    ``root`` defaults to :data:`DEFAULT_DATA_ROOT`; it may also be the
    ``cifar-10-batches-py`` folder itself. ``size`` picks a stratified seeded subset.

    Raises:
        DataError: the folder or a file is missing or malformed.
    """
    _real_data_only("cifar10", level)
    batches_dir = find_batches_dir(DEFAULT_DATA_ROOT if root is None else root)
    classes = read_class_names(batches_dir)
    images, labels = read_batches(batches_dir, train)
    index = _subset_indices(labels, size, seed, holdout if train else "all")
    if index is not None:
        images, labels = images[index.numpy()], labels[index.numpy()]
    images = resize_images(torch.from_numpy(np.ascontiguousarray(images)), resolution)
    return LabelledImages(images, torch.from_numpy(labels), classes, "cifar10", str(batches_dir))


def find_imagefolder_split(root: str | Path, train: bool) -> Path:
    """The class-folder root to read: ``root/train`` (or ``val``/``test``), else ``root``.

    Raises:
        DataError: ``root`` is missing, or ``train`` is False and there is no
            ``val`` or ``test`` folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; expected {IMAGEFOLDER_LAYOUT}")
    for name in ("train",) if train else ("val", "test"):
        if (root / name).is_dir():
            return root / name
    if not train:
        raise DataError(
            f"image folder {root} has no val/ or test/ folder; load the training tree and carve a "
            "validation split with edgenas.data.splits.train_val_split"
        )
    return root


def _decode(path: str, resolution: int) -> np.ndarray:
    """One image file as uint8 [R, R, 3]: centre square crop, bilinear resize."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format == "JPEG":
                # DCT-domain downscaling while decoding: large JPEGs decode several times faster.
                image.draft("RGB", (resolution, resolution))
            image = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"cannot decode image {path}: {err}") from None
    if image.size != (resolution, resolution):
        image = ImageOps.fit(image, (resolution, resolution), Image.Resampling.BILINEAR)
    return np.asarray(image)


@DATASETS.register("imagefolder")
def load_imagefolder(
    root: str | Path | None = None,
    *,
    train: bool = True,
    resolution: int = 32,
    size: int | None = None,
    level: int | Sequence[int] = 1,
    seed: int = 0,
    holdout: str = "all",
) -> LabelledImages:
    """Any ``<class>/<image>`` tree (read with PIL), decoded into memory.

    ``size`` picks a stratified seeded subset before decoding, so only the
    chosen files are opened. Images are centre-cropped to a square and
    resized to ``resolution``.

    Raises:
        DataError: no root, no class folders, no images, or an undecodable file.
    """
    from torchvision.datasets import ImageFolder

    _real_data_only("imagefolder", level)
    if root is None:
        raise DataError(f"the imagefolder data set needs a root: {IMAGEFOLDER_LAYOUT}")
    split_root = find_imagefolder_split(root, train)
    try:
        folder = ImageFolder(str(split_root))
    except FileNotFoundError:  # torchvision's "no class folder" / "no valid file" (lists every folder)
        raise DataError(
            f"image folder {split_root} has no class folders holding images (.jpg, .png, ...); "
            f"expected {IMAGEFOLDER_LAYOUT}"
        ) from None
    labels = np.asarray(folder.targets, dtype=np.int64)
    index = _subset_indices(labels, size, seed, holdout if train else "all")
    chosen = range(len(labels)) if index is None else index.tolist()
    pixels = np.empty((len(chosen), resolution, resolution, 3), dtype=np.uint8)
    for row, item in enumerate(track(chosen, len(chosen), f"decoding {split_root.name}")):
        pixels[row] = _decode(folder.samples[item][0], resolution)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    labels_t = torch.from_numpy(labels if index is None else labels[index.numpy()])
    return LabelledImages(images, labels_t, list(folder.classes), "imagefolder", str(split_root))


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    train: bool = True,
    resolution: int = 32,
    size: int | None = None,
    level: int | Sequence[int] = 1,
    seed: int = 0,
    holdout: str = "all",
) -> LabelledImages:
    """Load the data set registered as ``name`` into memory.

    Args:
        name: "synthetic", "cifar10", "imagefolder" or any registered name.
        root: where the files are (unused by "synthetic").
        train: training split if True, else the test/validation split.
        resolution: side in pixels of the returned images.
        size: number of images: the synthetic set's size, or a stratified
            seeded subset of a real set (None: all).
        level: synthetic difficulty 1-4, or a sequence mixed evenly.
        seed: seed of the synthetic images and of the subset choice.
        holdout: of a training split, "all", "train" (without the fixed validation
            hold-out, see :data:`HOLDOUT_FRACTION`) or "val" (only the hold-out).

    Returns:
        :class:`LabelledImages` with images uint8 [N, 3, resolution, resolution].

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists close names).
        ConfigError: an option is out of range.
        DataError: the files are missing or malformed (the message names the layout).
    """
    loader = DATASETS.get(name)
    if not isinstance(resolution, int) or not 8 <= resolution <= 512:
        raise ConfigError(f"resolution must be an integer in [8, 512], got {resolution!r}")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ConfigError(f"size must be a positive integer or None, got {size!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if holdout not in HOLDOUTS:
        raise ConfigError(f"holdout must be one of {', '.join(HOLDOUTS)}, got {holdout!r}")
    return loader(root, train=train, resolution=resolution, size=size, level=level, seed=seed, holdout=holdout)


def load_at_most(name: str, root: str | Path | None = None, *, size: int, **options: Any) -> LabelledImages:
    """:func:`load_dataset` with ``size`` as a ceiling: every image when the set (or its part) holds fewer."""
    try:
        return load_dataset(name, root, size=size, **options)
    except SubsetTooLarge:
        return load_dataset(name, root, size=None, **options)


__all__ = [
    "CIFAR_LAYOUT",
    "DATASETS",
    "DEFAULT_DATA_ROOT",
    "HOLDOUTS",
    "IMAGEFOLDER_LAYOUT",
    "LabelledImages",
    "SubsetTooLarge",
    "load_at_most",
    "load_cifar10",
    "load_dataset",
    "load_imagefolder",
    "load_synthetic",
    "resize_images",
]
