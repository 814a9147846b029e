"""Splits: disjointness, stratification, determinism by seed, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgenas.data.splits import (
    class_quotas,
    halves,
    stratified_count,
    stratified_fraction,
    train_val_split,
)
from edgenas.errors import ConfigError

# 10 classes of 50, 30 and 7 items: uneven on purpose.
SIZES = [50, 50, 50, 30, 30, 30, 7, 50, 50, 50]
LABELS = torch.tensor([c for c, n in enumerate(SIZES) for _ in range(n)])
LABELS = LABELS[torch.randperm(len(LABELS), generator=torch.Generator().manual_seed(0))]


def per_class(indices: torch.Tensor, labels: torch.Tensor = LABELS) -> list[int]:
    return torch.bincount(labels[indices], minlength=10).tolist()


def test_fraction_is_stratified_and_keeps_every_class():
    idx = stratified_fraction(LABELS, 0.1, seed=0)
    assert per_class(idx) == [5, 5, 5, 3, 3, 3, 1, 5, 5, 5]
    assert idx.dtype == torch.int64 and torch.equal(idx, idx.sort().values)
    assert len(set(idx.tolist())) == len(idx)
    assert min(per_class(stratified_fraction(LABELS, 0.001, seed=0))) == 1
    assert len(stratified_fraction(LABELS, 1.0, seed=0)) == len(LABELS)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_fraction_out_of_range(fraction):
    with pytest.raises(ConfigError):
        stratified_fraction(LABELS, fraction, seed=0)


def test_count_is_exact_and_balanced():
    idx = stratified_count(LABELS, 60, seed=1)
    assert len(idx) == 60 and len(set(idx.tolist())) == 60
    assert per_class(idx) == [6] * 10
    counts = per_class(stratified_count(LABELS, 200, seed=1))
    # The class of 7 gives all it has; the others share the rest within one.
    assert counts[6] == 7 and sum(counts) == 200
    others = [c for i, c in enumerate(counts) if i != 6]
    assert max(others) - min(others) <= 1


def test_count_bounds():
    for n in (0, len(LABELS) + 1):
        with pytest.raises(ConfigError):
            stratified_count(LABELS, n, seed=0)
    assert len(stratified_count(LABELS, len(LABELS), seed=0)) == len(LABELS)


def test_class_quotas_water_filling():
    rng = np.random.default_rng(0)
    assert class_quotas([5, 5, 5], 11, rng) in ([3, 4, 4], [4, 3, 4], [4, 4, 3])
    assert class_quotas([1, 100], 4, rng) == [1, 3]
    assert sum(class_quotas([2, 10, 10], 21, rng)) == 21


def test_train_val_disjoint_cover_and_stratified():
    train, val = train_val_split(LABELS, val_fraction=0.2, seed=3)
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(len(LABELS)))
    assert per_class(val) == [10, 10, 10, 6, 6, 6, 1, 10, 10, 10]


def test_train_val_per_class_and_default():
    _, val = train_val_split(LABELS, val_per_class=5, seed=0)
    assert per_class(val) == [5] * 10
    _, default_val = train_val_split(LABELS, seed=0)
    assert len(default_val) == sum(per_class(stratified_fraction(LABELS, 0.1, seed=0)))


@pytest.mark.parametrize(
    "kwargs",
    [dict(val_fraction=0.1, val_per_class=2), dict(val_fraction=1.0), dict(val_fraction=0.0),
     dict(val_per_class=7), dict(val_per_class=0), dict(seed=-1)],
)
def test_train_val_bad_options(kwargs):
    with pytest.raises(ConfigError):
        train_val_split(LABELS, **kwargs)


@pytest.mark.parametrize(
    "split",
    [
        lambda s: stratified_fraction(LABELS, 0.3, seed=s),
        lambda s: stratified_count(LABELS, 50, seed=s),
        lambda s: train_val_split(LABELS, val_fraction=0.2, seed=s)[1],
        lambda s: halves(torch.arange(len(LABELS)), seed=s)[0],
        lambda s: halves(torch.arange(len(LABELS)), seed=s, labels=LABELS)[0],
    ],
)
def test_fixed_by_seed_and_differing_by_seed(split):
    assert torch.equal(split(0), split(0))
    assert not torch.equal(split(0), split(1))


def test_halves_disjoint_and_sized():
    train, _ = train_val_split(LABELS, seed=0)
    first, second = halves(train, seed=0)
    assert set(first.tolist()).isdisjoint(second.tolist())
    assert sorted(first.tolist() + second.tolist()) == sorted(train.tolist())
    assert len(first) - len(second) in (0, 1)


def test_halves_stratified_with_labels():
    train, _ = train_val_split(LABELS, seed=0)
    first, second = halves(train, seed=4, labels=LABELS)
    assert set(first.tolist()).isdisjoint(second.tolist())
    assert len(first) + len(second) == len(train) and len(first) - len(second) in (0, 1)
    diff = np.subtract(per_class(first), per_class(second))
    assert np.abs(diff).max() <= 1


def test_inputs_accepted_as_list_array_tensor_and_not_mutated():
    as_list = LABELS.tolist()
    copy = LABELS.clone()
    results = [stratified_count(x, 30, seed=2) for x in (as_list, np.array(as_list), LABELS)]
    assert all(torch.equal(results[0], r) for r in results)
    assert torch.equal(LABELS, copy)


@pytest.mark.parametrize("labels", [[[0, 1], [1, 0]], [0.5, 1.0], [-1, 0, 1]])
def test_bad_labels(labels):
    with pytest.raises(ConfigError):
        stratified_fraction(labels, 0.5, seed=0)


def test_halves_index_out_of_range():
    with pytest.raises(ConfigError):
        halves([0, 1, 999], seed=0, labels=LABELS)
