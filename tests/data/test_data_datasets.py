"""load_dataset and the three loaders, on tiny fake trees built in tmp dirs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgenas.data.datasets import DATASETS, LabelledImages, load_dataset, resize_images
from edgenas.errors import ConfigError, DataError, UnknownNameError

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_FILE = 20


def write_fake_cifar(root: Path, byte_keys: bool = False) -> Path:
    """torchvision's layout with the documented pickle format, 20 images per batch file."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    key = (lambda k: k.encode()) if byte_keys else (lambda k: k)
    rng = np.random.default_rng(0)
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (PER_FILE, 3072), dtype=np.uint8)
        data[:, 0] = i  # first red pixel tells the file apart
        labels = [j % 10 for j in range(PER_FILE)]
        batch = {key("batch_label"): f"batch {i}", key("data"): data, key("labels"): labels}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({key("label_names"): CIFAR_CLASSES}, protocol=2))
    return folder


def write_fake_imagefolder(root: Path, classes=("cat", "dog", "emu"), per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.empty((30, 40, 3), dtype=np.uint8)  # H=30, W=40: not square
            pixels[..., 0] = 80 * c
            pixels[..., 1] = np.linspace(0, 250, 40, dtype=np.uint8)  # smooth: JPEG keeps red clean
            pixels[..., 2] = rng.integers(0, 256)
            fmt = "png" if i % 2 else "jpg"
            Image.fromarray(pixels).save(root / name / f"{i}.{fmt}")
    return root


def test_registry_names():
    assert {"synthetic", "cifar10", "imagefolder"} <= set(DATASETS.names())


def test_synthetic_through_factory():
    data = load_dataset("synthetic", size=40, level=3, resolution=16, seed=2)
    assert isinstance(data, LabelledImages) and len(data) == 40
    assert data.images.shape == (40, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.labels.dtype == torch.int64 and len(data.classes) == 10 and data.name == "synthetic"
    again = load_dataset("synthetic", size=40, level=3, resolution=16, seed=2)
    assert torch.equal(data.images, again.images)
    test = load_dataset("synthetic", train=False, size=40, level=3, resolution=16, seed=2)
    assert not torch.equal(data.images, test.images)


def test_cifar_layout(tmp_path):
    folder = write_fake_cifar(tmp_path)
    train = load_dataset("cifar10", tmp_path)
    assert train.images.shape == (5 * PER_FILE, 3, 32, 32) and train.classes == CIFAR_CLASSES
    raw = pickle.loads((folder / "data_batch_2").read_bytes())["data"]
    assert torch.equal(train.images[PER_FILE], torch.from_numpy(raw[0].reshape(3, 32, 32)))
    test = load_dataset("cifar10", folder, train=False)  # the batches folder itself works too
    assert len(test) == PER_FILE and int(test.images[0, 0, 0, 0]) == 5


def test_cifar_python2_style_byte_keys(tmp_path):
    write_fake_cifar(tmp_path, byte_keys=True)
    assert len(load_dataset("cifar10", tmp_path, train=False)) == PER_FILE


def test_cifar_subset_and_resize(tmp_path):
    write_fake_cifar(tmp_path)
    data = load_dataset("cifar10", tmp_path, size=30, resolution=16, seed=1)
    assert data.images.shape == (30, 3, 16, 16)
    assert torch.bincount(data.labels, minlength=10).tolist() == [3] * 10


def test_cifar_missing_root_and_files(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_dataset("cifar10", tmp_path / "nowhere")
    folder = write_fake_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3 is missing"):
        load_dataset("cifar10", tmp_path)


def test_cifar_malformed_and_malicious_pickles(tmp_path):
    folder = write_fake_cifar(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]}))
    with pytest.raises(DataError, match="uint8"):
        load_dataset("cifar10", tmp_path, train=False)
    (folder / "test_batch").write_bytes(pickle.dumps(os.system, protocol=2))  # a GLOBAL to a callable
    with pytest.raises(DataError, match="refusing"):
        load_dataset("cifar10", tmp_path, train=False)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError):
        load_dataset("cifar10", tmp_path, train=False)


def test_imagefolder_flat_tree(tmp_path):
    write_fake_imagefolder(tmp_path)
    data = load_dataset("imagefolder", tmp_path, resolution=16)
    assert data.images.shape == (12, 3, 16, 16) and data.classes == ["cat", "dog", "emu"]
    assert data.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # The red channel was 80 * class: decoding kept it (JPEG is lossy, so roughly).
    red = data.images[:, 0].float().mean(dim=(1, 2))
    assert torch.allclose(red, 80.0 * data.labels.float(), atol=6)


def test_imagefolder_subset_decodes_only_chosen(tmp_path, monkeypatch):
    write_fake_imagefolder(tmp_path, per_class=6)
    import edgenas.data.datasets as datasets

    opened = []
    real_decode = datasets._decode
    monkeypatch.setattr(datasets, "_decode", lambda path, res: opened.append(path) or real_decode(path, res))
    data = load_dataset("imagefolder", tmp_path, size=6, seed=3, resolution=8)
    assert len(opened) == 6 and torch.bincount(data.labels).tolist() == [2, 2, 2]


def test_a_size_beyond_the_data_is_refused_unless_it_is_a_ceiling(tmp_path):
    from edgenas.data.datasets import SubsetTooLarge, load_at_most

    write_fake_imagefolder(tmp_path, per_class=4)
    with pytest.raises(SubsetTooLarge, match="asked for 20 images but the data set holds only 12") as info:
        load_dataset("imagefolder", tmp_path, size=20, resolution=8)
    assert info.value.available == 12
    assert len(load_at_most("imagefolder", tmp_path, size=20, resolution=8)) == 12
    assert len(load_at_most("imagefolder", tmp_path, size=6, resolution=8)) == 6
    train_part = len(load_dataset("imagefolder", tmp_path, resolution=8, holdout="train"))
    assert len(load_at_most("imagefolder", tmp_path, size=20, resolution=8, holdout="train")) == train_part < 12


def test_imagefolder_split_layout(tmp_path):
    write_fake_imagefolder(tmp_path / "train")
    write_fake_imagefolder(tmp_path / "val", per_class=2)
    assert len(load_dataset("imagefolder", tmp_path)) == 12
    assert len(load_dataset("imagefolder", tmp_path, train=False)) == 6


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataError, match="needs a root"):
        load_dataset("imagefolder")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("imagefolder", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_dataset("imagefolder", tmp_path / "empty")
    write_fake_imagefolder(tmp_path / "tree")
    with pytest.raises(DataError, match="no val/ or test/"):
        load_dataset("imagefolder", tmp_path / "tree", train=False)
    (tmp_path / "tree" / "cat" / "9.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot decode"):
        load_dataset("imagefolder", tmp_path / "tree")


def test_factory_validation(tmp_path):
    with pytest.raises(UnknownNameError, match="cifar10"):
        load_dataset("cifar")
    with pytest.raises(ConfigError):
        load_dataset("synthetic", size=0)
    with pytest.raises(ConfigError):
        load_dataset("synthetic", size=10, resolution=4)
    write_fake_cifar(tmp_path)
    with pytest.raises(ConfigError, match="synthetic"):
        load_dataset("cifar10", tmp_path, level=2)
    with pytest.raises(ConfigError, match="asked for 10000 images but the data set holds only 100"):
        load_dataset("cifar10", tmp_path, size=10_000)


def test_labelled_images_checks_and_subset():
    images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 0, 1])
    data = LabelledImages(images, labels, ["a", "b"], "test")
    sub = data.subset([1, 3])
    assert len(sub) == 2 and sub.labels.tolist() == [1, 1] and sub.resolution == 8
    assert data[1][1] == 1
    with pytest.raises(DataError):
        LabelledImages(images.float(), labels, ["a", "b"], "test")
    with pytest.raises(DataError):
        LabelledImages(images, labels, ["a"], "test")


def test_resize_images():
    images = torch.full((3, 3, 20, 20), 77, dtype=torch.uint8)
    out = resize_images(images, 8)
    assert out.shape == (3, 3, 8, 8) and out.dtype == torch.uint8 and (out == 77).all()
    assert resize_images(images, 20) is images
