"""Barlow Twins views: shapes, ranges, determinism, and equality with torchvision's ops."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from edgenas.data import colour_ops
from edgenas.data.view_params import sample_crop_boxes
from edgenas.data.views import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    SOLARIZE_THRESHOLD,
    AugmentConfig,
    BarlowTwinsViews,
    ReferenceBarlowTwinsViews,
    apply_view,
    channel_stats,
    normalize_batch,
)
from edgenas.errors import ConfigError


def batch(n: int = 16, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shapes_dtypes_and_normalised_range():
    views = BarlowTwinsViews(resolution=32, mean=CIFAR10_MEAN, std=CIFAR10_STD)
    v1, v2 = views(batch(), gen(0))
    low = (0.0 - torch.tensor(CIFAR10_MEAN)) / torch.tensor(CIFAR10_STD)
    high = (1.0 - torch.tensor(CIFAR10_MEAN)) / torch.tensor(CIFAR10_STD)
    for v in (v1, v2):
        assert v.shape == (16, 3, 32, 32) and v.dtype == torch.float32
        per_channel = v.transpose(0, 1).reshape(3, -1)
        assert (per_channel.min(dim=1).values >= low - 1e-5).all()
        assert (per_channel.max(dim=1).values <= high + 1e-5).all()
    assert not torch.allclose(v1, v2)


def test_output_resolution_may_differ_from_input():
    v1, v2 = BarlowTwinsViews(resolution=24)(batch(size=32), gen(0))
    assert v1.shape == v2.shape == (16, 3, 24, 24)


def test_deterministic_given_generator():
    views = BarlowTwinsViews()
    x = batch()
    a, b = views(x, gen(5)), views(x, gen(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = views(x, gen(6))
    assert not torch.equal(a[0], c[0])


def test_input_not_mutated_and_checked():
    x = batch()
    copy = x.clone()
    BarlowTwinsViews()(x, gen(0))
    assert torch.equal(x, copy)
    with pytest.raises(ConfigError):
        BarlowTwinsViews()(x.float(), gen(0))


@pytest.mark.parametrize("view", [0, 1])
def test_batched_equals_torchvision_functional_per_image(view):
    """Same parameters through torchvision's functional ops, image by image, give the same pixels."""
    views = BarlowTwinsViews(resolution=32)
    x = batch(32, seed=view).float() / 255.0
    params = views.sample(32, 32, 32, view, gen(3))
    kernel = views.augment.blur_kernel_size(32)
    out = apply_view(x.clone(), params, 32, kernel)
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for i in range(32):
        top, left, h, w = params.boxes[i].tolist()
        ref = TF.resized_crop(x[i], top, left, h, w, [32, 32], antialias=True)
        if params.flip[i]:
            ref = TF.horizontal_flip(ref)
        if params.jitter[i]:
            for op in params.order[i].tolist():
                ref = ops[op](ref, float(params.factors[i, op]))
        if params.grayscale[i]:
            ref = TF.rgb_to_grayscale(ref, num_output_channels=3)
        if params.blur_sigma[i] > 0:
            ref = TF.gaussian_blur(ref, [kernel, kernel], [float(params.blur_sigma[i])] * 2)
        if params.solarize[i]:
            ref = TF.solarize(ref, SOLARIZE_THRESHOLD)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue"])
def test_colour_ops_match_torchvision(name):
    x = batch(8).float() / 255.0
    factors = torch.linspace(-0.5, 0.5, 8) if name == "adjust_hue" else torch.linspace(0.0, 2.0, 8)
    ours = getattr(colour_ops, name)(x.clone(), factors)
    for i in range(8):
        torch.testing.assert_close(ours[i], getattr(TF, name)(x[i], float(factors[i])), atol=2e-6, rtol=0)


def test_large_blur_matches_torchvision():
    x = batch(4).float() / 255.0
    sigma = torch.tensor([0.5, 1.0, 2.0, 3.0])
    ours = colour_ops.gaussian_blur(x, sigma, 9)
    for i in range(4):
        ref = TF.gaussian_blur(x[i], [9, 9], [float(sigma[i])] * 2)
        torch.testing.assert_close(ours[i], ref, atol=1e-5, rtol=0)


def test_crop_boxes_fit_and_respect_scale():
    boxes = sample_crop_boxes(500, 32, 40, (0.2, 1.0), (3 / 4, 4 / 3), gen(0))
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 40).all()
    area = (h * w).float() / (32 * 40)
    assert area.min() > 0.15 and area.max() <= 1.0


def test_forced_grayscale_gives_equal_channels():
    views = BarlowTwinsViews(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), augment=AugmentConfig(grayscale_p=1.0))
    v1, v2 = views(batch(), gen(0))
    for v in (v1, v2):
        assert torch.allclose(v[:, 0], v[:, 1]) and torch.allclose(v[:, 1], v[:, 2])


def test_identity_augment_is_a_plain_normalisation():
    augment = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
                            grayscale_p=0.0, blur_p=(0.0, 0.0), solarize_p=(0.0, 0.0))
    x = batch()
    v1, v2 = BarlowTwinsViews(augment=augment)(x, gen(0))
    expected = normalize_batch(x)
    torch.testing.assert_close(v1, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(v2, expected, atol=1e-5, rtol=0)


def test_reference_pipeline_shapes_and_determinism():
    ref = ReferenceBarlowTwinsViews(resolution=32)
    x = batch(4)
    a, b = ref(x, gen(1)), ref(x, gen(1))
    assert a[0].shape == (4, 3, 32, 32) and a[0].dtype == torch.float32
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_normalize_batch_and_channel_stats():
    x = batch(8)
    out = normalize_batch(x, CIFAR10_MEAN, CIFAR10_STD)
    mean_t, std_t = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    expected = (x.float() / 255 - mean_t) / std_t
    torch.testing.assert_close(out, expected)
    mean, std = channel_stats(x, chunk=3)
    flat = x.float().div(255).transpose(0, 1).reshape(3, -1)
    as_double = torch.tensor((mean, std), dtype=torch.float64)
    expected_stats = torch.stack([flat.mean(1), flat.std(1, unbiased=False)]).double()
    torch.testing.assert_close(as_double, expected_stats, rtol=0, atol=1e-6)


def test_blur_is_scaled_to_resolution():
    augment = AugmentConfig()
    assert augment.blur_sigma(224) == (0.1, 2.0)
    assert augment.blur_kernel_size(32) == 3 and augment.blur_kernel_size(224) == 13


@pytest.mark.parametrize(
    "kwargs",
    [dict(crop_scale=(0.0, 1.0)), dict(crop_scale=(0.5, 0.2)), dict(flip_p=1.5), dict(hue=0.6),
     dict(brightness=1.0), dict(blur_p=(1.0,)), dict(blur_sigma_224=(0.0, 1.0))],
)
def test_bad_augment_config(kwargs):
    with pytest.raises(ConfigError):
        AugmentConfig(**kwargs)


def test_bad_views_arguments():
    with pytest.raises(ConfigError):
        BarlowTwinsViews(std=(0.0, 1.0, 1.0))
    with pytest.raises(ConfigError):
        BarlowTwinsViews(resolution=4)


def test_augment_config_round_trip():
    config = AugmentConfig(crop_scale=(0.3, 1.0), solarize_p=(0.1, 0.3))
    assert AugmentConfig.from_dict(config.to_dict()) == config


def test_threads_setting_is_restored_and_result_unchanged():
    before = torch.get_num_threads()
    x = batch()
    one = BarlowTwinsViews(threads=1)(x, gen(2))
    assert torch.get_num_threads() == before
    untouched = BarlowTwinsViews(threads=None)(x, gen(2))
    torch.testing.assert_close(one[0], untouched[0])
    torch.testing.assert_close(one[1], untouched[1])
    with pytest.raises(ConfigError):
        BarlowTwinsViews(threads=0)
