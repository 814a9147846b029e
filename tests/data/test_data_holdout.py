"""The fixed validation hold-out: searches and fine-tuning never see its images."""

import numpy as np
import pytest
from PIL import Image

from edgenas.data import load_dataset
from edgenas.errors import ConfigError


@pytest.fixture
def tree(tmp_path):
    rng = np.random.default_rng(0)
    for c in range(3):
        (tmp_path / f"class{c}").mkdir()
        for i in range(20):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / f"class{c}" / f"{i:03d}.png")
    return tmp_path


def _keys(data):
    return {bytes(img.numpy().tobytes()) for img in data.images}


def test_train_and_val_parts_are_disjoint_and_fixed(tree):
    all_ = load_dataset("imagefolder", tree, resolution=8)
    train = load_dataset("imagefolder", tree, resolution=8, holdout="train", seed=1)
    val = load_dataset("imagefolder", tree, resolution=8, holdout="val", seed=1)
    assert len(val) == 6 and len(train) == 54 and len(all_) == 60
    assert not _keys(train) & _keys(val)
    assert _keys(train) | _keys(val) == _keys(all_)
    # the hold-out does not depend on the run's seed
    assert _keys(load_dataset("imagefolder", tree, resolution=8, holdout="val", seed=7)) == _keys(val)
    sub = load_dataset("imagefolder", tree, resolution=8, holdout="train", size=12, seed=1)
    assert len(sub) == 12 and _keys(sub) <= _keys(train)
    assert sorted(sub.labels.tolist()) == [0] * 4 + [1] * 4 + [2] * 4


def test_bad_holdout(tree):
    with pytest.raises(ConfigError, match="holdout"):
        load_dataset("imagefolder", tree, resolution=8, holdout="test")
    with pytest.raises(ConfigError, match="holds only 6"):
        load_dataset("imagefolder", tree, resolution=8, holdout="val", size=10)


def test_synthetic_holdout_is_the_test_stream():
    train = load_dataset("synthetic", size=40, holdout="train")
    val = load_dataset("synthetic", size=40, holdout="val")
    assert not _keys(train) & _keys(val)
