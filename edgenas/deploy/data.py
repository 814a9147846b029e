"""Labelled images for on-device accuracy: drawn on the host, shipped as a plain ``.npz``.

The device side (:mod:`bench.measure`) has neither torch nor an image decoder,
so the host draws the held-out images once, at the artifact's resolution, as
uint8 NHWC pixels; the worker normalises them with the artifact's own mean/std.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.files import atomic_write_bytes

__all__ = ["labelled_npz"]


def labelled_npz(name: str, root: str | None, resolution: int, samples: int, seed: int, out: str | Path,
                 level: int = 1) -> Path:
    """Write ``samples`` held-out labelled images of data set ``name`` to ``out`` (``images``, ``labels``, ``classes``).

    Held-out means the fixed validation part of the training split (``holdout="val"``),
    the same images the exporters' parity check uses: never the calibration images.
    ``level`` is the synthetic set's difficulty (the one the network was trained on).

    Raises:
        ConfigError, DataError, UnknownNameError: from :func:`edgenas.data.load_dataset`.
    """
    import io

    from edgenas.data import load_dataset

    data = load_dataset(name, root, train=True, resolution=resolution, size=samples, seed=seed, holdout="val",
                        level=level)
    images = data.images.numpy().transpose(0, 2, 3, 1)  # NCHW -> NHWC uint8
    buffer = io.BytesIO()
    np.savez(buffer, images=np.ascontiguousarray(images), labels=data.labels.numpy().astype(np.int64),
             classes=np.array(list(data.classes)))
    return atomic_write_bytes(out, buffer.getvalue())
