"""Inference runtimes behind one small interface (numpy + the runtime only, never torch).

``open_runner(path)`` picks the runtime from the artifact's extension
(.onnx -> onnxruntime, .tflite -> LiteRT, .xml -> OpenVINO) unless ``runtime`` is given.
Each runtime lives in its own module and imports its package only when used.
"""

from bench.runtimes.base import (
    RUNTIMES,
    Runner,
    RunnerOptions,
    open_runner,
    runtime_for,
)

__all__ = ["RUNTIMES", "Runner", "RunnerOptions", "open_runner", "runtime_for"]
