"""The data of the fine-tuning protocol: the labelled pool, the fixed hold-out, the labelled subset.

* The *pool* is the training side of the data set: for real data, everything
  but the fixed validation hold-out (:data:`edgenas.data.datasets.HOLDOUT_FRACTION`
  of each class); for the synthetic set, its train stream. It is fixed: the
  same images whatever the run's seed.
* The *labelled* images are a stratified, seeded fraction (or count) of the pool;
  the rest of the pool is never shown with labels.
* A *selection* split is held out of the labelled images to pick the best epoch.
* The *hold-out* (real data: the validation hold-out; synthetic: its test
  stream) is only ever used to report accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgenas.data.datasets import LabelledImages, load_dataset
from edgenas.data.splits import stratified_count, stratified_fraction, train_val_split
from edgenas.errors import ConfigError

__all__ = ["ProtocolData", "load_protocol_data", "only_classes", "labelled_split"]


@dataclass(frozen=True)
class ProtocolData:
    """The pool and hold-out of one data set at one resolution, with the pool's channel statistics."""

    pool: LabelledImages
    holdout: LabelledImages
    mean: tuple[float, ...]
    std: tuple[float, ...]


_CACHE: dict[tuple, ProtocolData] = {}


def load_protocol_data(data: str, root: str | None, resolution: int, level: int = 2,
                       synthetic_size: int = 10_000, cache: bool = True) -> ProtocolData:
    """Load (or take from this process's cache) the pool and hold-out of a data set.

    Raises:
        DataError, ConfigError, UnknownNameError: as :func:`edgenas.data.datasets.load_dataset`.
    """
    from edgenas.data.views import channel_stats

    key = (data, str(root), resolution, level, synthetic_size)
    if cache and key in _CACHE:
        return _CACHE[key]
    options = dict(resolution=resolution, level=level if data == "synthetic" else 1, seed=0)
    if data == "synthetic":
        pool = load_dataset(data, root, train=True, size=synthetic_size, **options)
        holdout = load_dataset(data, root, train=False, **options)
    else:
        pool = load_dataset(data, root, train=True, holdout="train", **options)
        holdout = load_dataset(data, root, train=True, holdout="val", **options)
    mean, std = channel_stats(pool.images)
    result = ProtocolData(pool, holdout, mean, std)
    if cache:
        _CACHE[key] = result
    return result


def only_classes(images: LabelledImages, classes: tuple[int, ...] | None) -> LabelledImages:
    """The images of ``classes`` only, relabelled ``0..len(classes)-1`` in the given order.

    Raises:
        ConfigError: a class index the data set does not have.
    """
    if classes is None:
        return images
    bad = [c for c in classes if not 0 <= c < len(images.classes)]
    if bad:
        raise ConfigError(f"class {bad[0]} does not exist: {images.name} has {len(images.classes)} classes")
    lookup = torch.full((len(images.classes),), -1, dtype=torch.int64)
    lookup[torch.tensor(classes)] = torch.arange(len(classes))
    keep = lookup[images.labels] >= 0
    return LabelledImages(images.images[keep], lookup[images.labels[keep]],
                          [images.classes[c] for c in classes], images.name, images.source)


def labelled_split(labels: torch.Tensor, fraction: float | None, samples: int | None, select_fraction: float,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit, select) positions in the pool: the labelled subset, less its selection split.

    Raises:
        ConfigError: more labelled samples than the pool holds, fewer than two to fit on, or a
            class without a labelled image to fit on.
    """
    if samples is not None:
        if samples > len(labels):
            raise ConfigError(f"--samples {samples} is more than the {len(labels)} training images")
        labelled = stratified_count(labels, samples, seed)
    else:
        labelled = stratified_fraction(labels, fraction, seed)
    if select_fraction > 0:
        fit, select = train_val_split(labels[labelled], val_fraction=select_fraction, seed=seed)
        fit, select = labelled[fit], labelled[select]
    else:
        fit, select = labelled, labelled[:0]
    if len(fit) < 2:
        raise ConfigError(f"only {len(fit)} labelled image(s) left to train on; raise --fraction or --samples")
    counts = torch.bincount(labels[fit], minlength=int(labels.max()) + 1)
    if bool((counts == 0).any()):
        raise ConfigError(f"{int((counts == 0).sum())} of the {len(counts)} classes have no labelled image to train "
                          f"on ({len(fit)} labelled); raise --fraction or --samples")
    return fit, select
