"""Reader of CIFAR-10 in torchvision's on-disk layout (``<root>/cifar-10-batches-py``).

Why not ``torchvision.datasets.CIFAR10``: with ``download=False`` it still
checks the md5 of every batch file and answers any mismatch or absence with
"Dataset not found or corrupted", which cannot say which file is wrong, and it
runs a full ``pickle.load``. This reader follows the documented format
(https://www.cs.toronto.edu/~kriz/cifar.html: each batch a pickled dict with
``data``, uint8 [10000, 3072] in R, G, B planes of 32x32 row-major, and
``labels``; ``batches.meta`` with ``label_names``), checks shapes and ranges,
not checksums, and unpickles through an allow-list of the few numpy
constructors those files use, so a crafted file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from edgenas.errors import DataError

BASE_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
LAYOUT = f"<root>/{BASE_FOLDER}/{{{', '.join(TRAIN_FILES[:1])}..5, test_batch, batches.meta}}"

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that builds numpy arrays and plain containers, nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            # latin1: the original files were written by Python 2 (byte strings).
            content = _ArrayUnpickler(handle, encoding="latin1").load()
    except FileNotFoundError:
        raise DataError(f"CIFAR-10 file {path} is missing; expected the layout {LAYOUT}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"CIFAR-10 file {path} is not a CIFAR python batch: {err}") from None
    if not isinstance(content, dict):
        raise DataError(f"CIFAR-10 file {path} holds a {type(content).__name__}, expected a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in content.items()}


def find_batches_dir(root: str | Path) -> Path:
    """``root/cifar-10-batches-py``, or ``root`` itself if it is that folder.

    Raises:
        DataError: neither holds ``batches.meta``.
    """
    root = Path(root).expanduser()
    for candidate in (root / BASE_FOLDER, root):
        if (candidate / META_FILE).is_file():
            return candidate
    raise DataError(f"CIFAR-10 not found under {root}: no {BASE_FOLDER}/{META_FILE}; expected the layout {LAYOUT}")


def read_class_names(batches_dir: Path) -> list[str]:
    meta = _load(batches_dir / META_FILE)
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise DataError(f"{batches_dir / META_FILE} has no list of 10 label_names")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def read_batches(batches_dir: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """All images and labels of the training (5 files) or test (1 file) split.

    Returns:
        images uint8 [N, 3, 32, 32] and labels int64 [N].

    Raises:
        DataError: a file is missing or not in the documented format.
    """
    images, labels = [], []
    for name in TRAIN_FILES if train else TEST_FILES:
        path = batches_dir / name
        batch = _load(path)
        data, batch_labels = batch.get("data"), batch.get("labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{path}: 'data' must be uint8 [N, 3072]")
        batch_labels = np.asarray(batch_labels, dtype=np.int64) if batch_labels is not None else None
        if batch_labels is None or batch_labels.shape != (data.shape[0],):
            raise DataError(f"{path}: 'labels' must hold one label per image")
        if batch_labels.size and (batch_labels.min() < 0 or batch_labels.max() > 9):
            raise DataError(f"{path}: labels must lie in 0..9")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)
