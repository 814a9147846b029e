"""Real CIFAR-10 JPEG tree (ImageFolder layout); skips cleanly when it is not extracted.

To run: ``mkdir -p ~/.cache/edgenas && tar -xzf ../shared/datasets/cifar10-train-jpg.tar.gz
-C ~/.cache/edgenas`` (or set ``$EDGENAS_DATA`` to the folder holding ``cifar10-jpg``).
"""

from __future__ import annotations

import pytest
import torch

from edgenas.data.datasets import DEFAULT_DATA_ROOT, load_dataset
from edgenas.data.splits import train_val_split

TREE = DEFAULT_DATA_ROOT / "cifar10-jpg"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not (TREE / "train").is_dir(), reason=f"CIFAR-10 JPEG tree not extracted at {TREE}"),
]


def test_loads_500_stratified_images():
    data = load_dataset("imagefolder", TREE, size=500, seed=0)
    assert data.images.shape == (500, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.classes == CLASSES
    assert torch.bincount(data.labels, minlength=10).tolist() == [50] * 10
    # Real photographs: not flat, not saturated.
    mean = data.images.float().mean() / 255
    assert 0.3 < float(mean) < 0.7 and float(data.images.float().std()) > 30
    again = load_dataset("imagefolder", TREE, size=500, seed=0)
    assert torch.equal(data.images, again.images)
    other = load_dataset("imagefolder", TREE, size=500, seed=1)
    assert not torch.equal(data.labels, other.labels) or not torch.equal(data.images, other.images)


def test_validation_split_of_the_tree():
    data = load_dataset("imagefolder", TREE, size=1000, seed=0, resolution=16)
    train, val = train_val_split(data.labels, val_per_class=10, seed=0)
    assert len(val) == 100 and len(train) == 900
    assert data.subset(val).images.shape == (100, 3, 16, 16)
