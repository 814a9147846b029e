"""Seeded, stratified index splits: subsets, train/validation, and the two search halves.

Pure functions of a label vector and a seed: the same inputs give the same
indices on every machine (numpy's PCG64 stream), and nothing is mutated.
Every function returns sorted int64 tensors of positions into ``labels``.

Example:
    >>> labels = [0, 0, 0, 0, 1, 1, 1, 1]
    >>> train, val = train_val_split(labels, val_per_class=1, seed=0)
    >>> len(train), len(val)
    (6, 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from edgenas.errors import ConfigError

LabelsLike = torch.Tensor | np.ndarray | Sequence[int]


def _as_labels(values: LabelsLike, what: str = "labels") -> np.ndarray:
    """int64 [N] copy of ``values``; ConfigError unless 1-D non-negative integers."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ConfigError(f"{what} must be 1-D, got shape {tuple(array.shape)}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ConfigError(f"{what} must be integers, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise ConfigError(f"{what} must be non-negative")
    return array


def _members(labels: np.ndarray) -> list[np.ndarray]:
    """Positions of each present class, in class order, each ascending."""
    order = np.argsort(labels, kind="stable")
    classes, starts = np.unique(labels[order], return_index=True)
    return np.split(order, starts[1:]) if classes.size else []


def _take(groups: list[np.ndarray], counts: Sequence[int], rng: np.random.Generator) -> torch.Tensor:
    picked = [rng.permutation(group)[:k] for group, k in zip(groups, counts, strict=True)]
    flat = np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)
    return torch.from_numpy(np.sort(flat).astype(np.int64))


def _check_seed(seed: int) -> None:
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")


def stratified_fraction(labels: LabelsLike, fraction: float, seed: int = 0) -> torch.Tensor:
    """A seeded subset holding ``fraction`` of every class (rounded, at least one each).

    Args:
        labels: int [N] class of each item.
        fraction: in (0, 1].

    Returns:
        int64 [M] sorted positions.

    Raises:
        ConfigError: ``fraction`` outside (0, 1], or bad labels or seed.
    """
    _check_seed(seed)
    if not isinstance(fraction, (int, float)) or not 0.0 < fraction <= 1.0:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction!r}")
    groups = _members(_as_labels(labels))
    counts = [min(len(g), max(1, int(np.floor(fraction * len(g) + 0.5)))) for g in groups]
    return _take(groups, counts, np.random.default_rng(seed))


def class_quotas(available: Sequence[int], total: int, rng: np.random.Generator) -> list[int]:
    """Split ``total`` over classes as evenly as their sizes allow (water filling).

    Classes are filled from the smallest up, each taking an equal share of what
    is left; a class smaller than its share gives the rest to the larger ones,
    and ties in size are broken by ``rng``. Quotas of classes that are not
    capped differ by at most one.
    """
    sizes = np.asarray(available, dtype=np.int64)
    shuffled = rng.permutation(len(sizes))
    order = shuffled[np.argsort(sizes[shuffled], kind="stable")]
    quotas = np.zeros(len(sizes), dtype=np.int64)
    remaining = total
    for position, cls in enumerate(order):
        quotas[cls] = min(sizes[cls], remaining // (len(sizes) - position))
        remaining -= quotas[cls]
    # Ascending order plus floor shares leave nothing over when total <= sum(sizes).
    assert remaining == 0 or total > sizes.sum(), "water filling left items over"
    return quotas.tolist()


def stratified_count(labels: LabelsLike, n: int, seed: int = 0) -> torch.Tensor:
    """A seeded subset of exactly ``n`` items, spread evenly over the classes.

    Each class gets ``n // classes`` or one more; a class with fewer items
    gives all it has and the others make up the difference.

    Returns:
        int64 [n] sorted positions.

    Raises:
        ConfigError: ``n`` < 1 or more than ``len(labels)``, or bad labels or seed.
    """
    _check_seed(seed)
    array = _as_labels(labels)
    if not isinstance(n, int) or not 1 <= n <= array.size:
        raise ConfigError(f"a subset of {n!r} items was asked from a data set of {array.size}")
    groups = _members(array)
    rng = np.random.default_rng(seed)
    return _take(groups, class_quotas([len(g) for g in groups], n, rng), rng)


def train_val_split(
    labels: LabelsLike,
    *,
    val_fraction: float | None = None,
    val_per_class: int | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out a seeded, stratified validation set; the rest is the training set.

    Give one of ``val_fraction`` (default 0.1: that share of each class, at
    least one and never the whole class) or ``val_per_class`` (that many of
    each class). A class with a single item stays in training.

    Returns:
        (train, val): disjoint int64 sorted positions that together cover ``labels``.

    Raises:
        ConfigError: both or invalid options, a class too small for
            ``val_per_class``, or bad labels or seed.
    """
    _check_seed(seed)
    if val_fraction is not None and val_per_class is not None:
        raise ConfigError("give val_fraction or val_per_class, not both")
    groups = _members(_as_labels(labels))
    if val_per_class is not None:
        if not isinstance(val_per_class, int) or val_per_class < 1:
            raise ConfigError(f"val_per_class must be a positive integer, got {val_per_class!r}")
        smallest = min((len(g) for g in groups), default=0)
        if val_per_class >= smallest:
            raise ConfigError(
                f"val_per_class={val_per_class} leaves no training item in a class of {smallest}"
            )
        val_counts = [val_per_class] * len(groups)
    else:
        fraction = 0.1 if val_fraction is None else val_fraction
        if not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {fraction!r}")
        val_counts = [
            0 if len(g) < 2 else min(len(g) - 1, max(1, int(np.floor(fraction * len(g) + 0.5))))
            for g in groups
        ]
    rng = np.random.default_rng(seed)
    shuffled = [rng.permutation(g) for g in groups]
    val = [s[:k] for s, k in zip(shuffled, val_counts, strict=True)]
    train = [s[k:] for s, k in zip(shuffled, val_counts, strict=True)]
    return _sorted(train), _sorted(val)


def _sorted(parts: list[np.ndarray]) -> torch.Tensor:
    flat = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return torch.from_numpy(np.sort(flat).astype(np.int64))


def halves(
    indices: LabelsLike, seed: int = 0, labels: LabelsLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``indices`` into two disjoint halves (the first gets the odd one).

    The bilevel search trains weights on one half and architecture parameters
    on the other (DARTS, Liu et al. 2019).

    Args:
        indices: int [N] positions to split.
        labels: optional int [M] labels of the whole data set; when given,
            each class of ``labels[indices]`` is split in half too.

    Returns:
        (first, second): int64 sorted positions, sizes ceil(N/2) and floor(N/2).
    """
    _check_seed(seed)
    items = _as_labels(indices, "indices")
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(items)
    else:
        all_labels = _as_labels(labels)
        if items.size and items.max() >= all_labels.size:
            raise ConfigError(f"index {items.max()} is out of range for {all_labels.size} labels")
        item_labels = all_labels[items]
        # Shuffle inside each class, lay the classes end to end and deal the
        # items alternately: each class and the total split within one.
        order = np.concatenate([rng.permutation(items[g]) for g in _members(item_labels)] or [items])
    return _sorted([order[0::2]]), _sorted([order[1::2]])
