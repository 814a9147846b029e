"""SyntheticShapes: determinism, shapes, balance, levels, mixing, materialize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from edgenas.data.shapes import CLASSES, gaussian_blur, grating_textures, pixel_grid
from edgenas.data.synthetic import LEVELS, SyntheticConfig, SyntheticShapes, materialize
from edgenas.errors import ConfigError, DataError


def stack(ds: SyntheticShapes, n: int) -> torch.Tensor:
    return torch.stack([ds[i][0] for i in range(n)])


@pytest.mark.parametrize("level", LEVELS)
def test_items_are_uint8_chw_with_int_labels(level):
    ds = SyntheticShapes(20, level=level, resolution=32)
    image, label = ds[3]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    assert isinstance(label, int) and 0 <= label < 10
    assert ds.classes == list(CLASSES) and len(ds.classes) == 10


def test_other_resolutions_render_at_that_size():
    for res in (16, 48):
        assert SyntheticShapes(4, level=4, resolution=res)[0][0].shape == (3, res, res)


@pytest.mark.parametrize("level", LEVELS)
def test_same_seed_same_pixels_any_order_any_size(level):
    a = SyntheticShapes(50, level=level, seed=7)
    b = SyntheticShapes(12, level=level, seed=7)  # a smaller set: item i unchanged
    for i in (11, 0, 5):  # out of order
        assert torch.equal(a[i][0], b[i][0]) and a[i][1] == b[i][1]
    assert torch.equal(a[-1][0], a[49][0])


def test_seeds_and_splits_differ():
    base = stack(SyntheticShapes(8, level=2, seed=0), 8)
    assert not torch.equal(base, stack(SyntheticShapes(8, level=2, seed=1), 8))
    assert not torch.equal(base, stack(SyntheticShapes(8, level=2, seed=0, split="test"), 8))


def test_labels_balanced_and_match_items():
    ds = SyntheticShapes(1000, level=1, seed=3)
    counts = torch.bincount(ds.labels, minlength=10)
    assert counts.tolist() == [100] * 10
    assert all(ds[i][1] == int(ds.labels[i]) for i in range(30))
    uneven = torch.bincount(SyntheticShapes(1005, seed=3).labels, minlength=10)
    assert int(uneven.max() - uneven.min()) <= 1
    # Shuffled, not a cycle: the first 10 items are not 0..9 in order for most seeds.
    assert ds.labels[:20].tolist() != list(range(10)) * 2


def test_labels_do_not_depend_on_level():
    assert torch.equal(SyntheticShapes(100, level=1).labels, SyntheticShapes(100, level=4).labels)


def _high_frequency_energy(images: torch.Tensor) -> float:
    x = images.float()
    return float((x[..., 1:] - x[..., :-1]).abs().mean())


def test_levels_differ():
    n = 40
    per_level = {lvl: stack(SyntheticShapes(n, level=lvl, seed=5), n) for lvl in LEVELS}
    for a in LEVELS:
        for b in LEVELS:
            if a < b:
                assert not torch.equal(per_level[a], per_level[b])
    # Level 1 is flat colours; textures and noise add fine detail from level 2 on.
    colours = len(torch.unique(per_level[1][0].reshape(3, -1).T, dim=0))
    assert colours < 80
    assert _high_frequency_energy(per_level[2]) > 2 * _high_frequency_energy(per_level[1])


def test_mixed_levels_even_and_same_pictures():
    mix = SyntheticShapes(400, level=(1, 3), seed=2)
    assert mix.levels == (1, 3)
    assert torch.bincount(mix.item_levels, minlength=4)[[1, 3]].tolist() == [200, 200]
    singles = {lvl: SyntheticShapes(400, level=lvl, seed=2) for lvl in (1, 3)}
    for i in range(12):
        lvl = int(mix.item_levels[i])
        assert torch.equal(mix[i][0], singles[lvl][i][0])


@pytest.mark.parametrize(
    "kwargs",
    [dict(size=0), dict(size=5, level=5), dict(size=5, level=()), dict(size=5, resolution=4),
     dict(size=5, seed=-1), dict(size=5, split="val")],
)
def test_bad_arguments_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        SyntheticShapes(**kwargs)


def test_index_out_of_range():
    ds = SyntheticShapes(5)
    with pytest.raises(IndexError):
        ds[5]
    assert len(list(iter(ds))) == 5  # the legacy iteration protocol stops on IndexError


def test_config_round_trip():
    config = SyntheticConfig(size=10, levels=(2, 4), resolution=24, seed=3, split="test")
    assert SyntheticConfig.from_dict(config.to_dict()) == config


def test_works_in_dataloader_workers():
    ds = SyntheticShapes(64, level=3, seed=4)
    images, labels = next(iter(DataLoader(ds, batch_size=64, num_workers=2)))
    assert torch.equal(images, stack(ds, 64)) and torch.equal(labels, ds.labels)


def test_materialize_matches_items():
    ds = SyntheticShapes(30, level=2, seed=1)
    images, labels = materialize(ds)
    assert images.shape == (30, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images, stack(ds, 30)) and torch.equal(labels, ds.labels)


def test_materialize_rejects_non_tensor_items():
    with pytest.raises(DataError):
        materialize([(np.zeros((3, 4, 4), np.uint8), 0)])


def test_grating_textures_match_direct_formula():
    # The separable (matrix product) form equals sin of the rotated projection.
    bases = np.array([[0.2, 0.4, 0.6]], dtype=np.float32)
    angle, res = 0.3, 16
    fast = grating_textures(np.random.default_rng(1), res, bases, angle)[0]
    rng = np.random.default_rng(1)
    freq = rng.uniform(np.pi, 6 * np.pi, (1, 3))[0]
    theta = rng.uniform(0, np.pi, (1, 3))[0]
    phase = rng.uniform(0, 2 * np.pi, (1, 3))[0]
    dirs = rng.uniform(-0.22, 0.22, (1, 3, 3))[0] / 3**0.5
    xs, ys = pixel_grid(res)
    c, s = np.cos(angle), np.sin(angle)
    rx, ry = xs * c - ys * s, xs * s + ys * c
    slow = bases[0][:, None, None] + sum(
        dirs[:, k, None, None] * np.sin(freq[k] * (np.cos(theta[k]) * rx + np.sin(theta[k]) * ry) + phase[k])
        for k in range(3)
    )
    np.testing.assert_allclose(fast, slow, atol=1e-5)


def test_blur_keeps_constant_images_and_smooths_noise():
    flat = np.full((3, 16, 16), 0.3, dtype=np.float32)
    np.testing.assert_allclose(gaussian_blur(flat, 1.0), flat, atol=1e-6)
    noisy = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
    blurred = gaussian_blur(noisy, 1.0)
    assert blurred.std() < noisy.std()


def test_materialize_large_shows_progress_and_uses_workers(capsys):
    items = [(torch.full((3, 2, 2), i % 256, dtype=torch.uint8), i % 10) for i in range(2100)]
    images, labels = materialize(items)  # above the progress threshold: the bar path runs
    assert images.shape == (2100, 3, 2, 2) and int(images[300, 0, 0, 0]) == 44
    assert capsys.readouterr().out == ""  # the bar goes to stderr, never stdout
    ds = SyntheticShapes(40, level=2)
    images_w, labels_w = materialize(ds, num_workers=2, batch_size=16)
    assert torch.equal(images_w, materialize(ds)[0]) and torch.equal(labels_w, ds.labels)
