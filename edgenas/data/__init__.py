"""Data: the synthetic curriculum set, CIFAR-10 and ImageFolder loaders, splits and SSL views.

Modules:
    synthetic   SyntheticShapes (embedded default, 4 difficulty levels), materialize
    shapes      numpy rendering of the ten shapes and textures
    datasets    DATASETS registry, load_dataset -> LabelledImages (in memory)
    cifar_batches  reader of torchvision's cifar-10-batches-py layout
    splits      stratified, seeded subsets, train/val split, search halves
    views       Barlow Twins two-view augmentation (batched), normalisation constants
    view_params, colour_ops  the per-image parameters and batched ops behind views

torchvision is imported only by the loaders and the reference pipeline that use it.
"""

from __future__ import annotations

from edgenas.data.datasets import (
    DATASETS,
    DEFAULT_DATA_ROOT,
    LabelledImages,
    load_dataset,
    resize_images,
)
from edgenas.data.splits import (
    halves,
    stratified_count,
    stratified_fraction,
    train_val_split,
)
from edgenas.data.synthetic import LEVELS, SyntheticConfig, SyntheticShapes, materialize
from edgenas.data.views import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DEFAULT_MEAN,
    DEFAULT_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    BarlowTwinsViews,
    ReferenceBarlowTwinsViews,
    channel_stats,
    normalize_batch,
)

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASETS",
    "DEFAULT_DATA_ROOT",
    "DEFAULT_MEAN",
    "DEFAULT_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LEVELS",
    "AugmentConfig",
    "BarlowTwinsViews",
    "LabelledImages",
    "ReferenceBarlowTwinsViews",
    "SyntheticConfig",
    "SyntheticShapes",
    "channel_stats",
    "halves",
    "load_dataset",
    "materialize",
    "normalize_batch",
    "resize_images",
    "stratified_count",
    "stratified_fraction",
    "train_val_split",
]
