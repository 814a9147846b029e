"""Whether this machine can build and run TensorRT engines: the probe the TensorRT tests skip on."""

from __future__ import annotations

import functools

__all__ = ["tensorrt_gpu"]


@functools.cache
def tensorrt_gpu() -> bool:
    """True where TensorRT (8.5+), polygraphy, a CUDA driver and an NVIDIA GPU are all present."""
    try:
        from bench.runtimes.tensorrt import _import_tensorrt

        _import_tensorrt()
        from polygraphy import cuda

        cuda.Stream().free()
        return True
    except Exception:  # no tensorrt, no polygraphy, no CUDA driver or no GPU
        return False
