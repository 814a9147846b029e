"""The supervised augmentation: random crop of the reflection-padded image, horizontal flip."""

import torch
import torch.nn.functional as F

from edgenas.data.views import normalize_batch
from edgenas.train.augment import crop_flip, pad_for

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _images(n=6, size=12):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test_pad_scales_with_resolution():
    assert pad_for(32) == 4 and pad_for(96) == 12 and pad_for(8) == 1 and pad_for(4) == 1


def test_every_output_is_a_window_of_the_padded_image_maybe_flipped():
    images = _images()
    out = crop_flip(images, torch.Generator().manual_seed(0), MEAN, STD, pad=2)
    assert out.shape == (6, 3, 12, 12) and out.dtype == torch.float32
    padded = F.pad(normalize_batch(images, MEAN, STD), (2, 2, 2, 2), mode="reflect")
    for i in range(len(images)):
        windows = [padded[i, :, dy:dy + 12, dx:dx + 12] for dy in range(5) for dx in range(5)]
        candidates = windows + [w.flip(2) for w in windows]
        assert min(float((out[i] - w).abs().max()) for w in candidates) < 1e-6


def test_reproducible_and_varied():
    images = _images(32)
    a = crop_flip(images, torch.Generator().manual_seed(5), MEAN, STD)
    b = crop_flip(images, torch.Generator().manual_seed(5), MEAN, STD)
    c = crop_flip(images, torch.Generator().manual_seed(6), MEAN, STD)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_no_padding_is_normalisation_and_flips():
    images = _images()
    out = crop_flip(images, torch.Generator().manual_seed(0), MEAN, STD, pad=0)
    plain = normalize_batch(images, MEAN, STD)
    assert all(torch.equal(o, p) or torch.equal(o, p.flip(2)) for o, p in zip(out, plain))
