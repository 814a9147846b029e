"""Inference runtimes behind one small interface (numpy + the runtime only, never torch).

``open_runner(path)`` picks the runtime from the artifact's extension
(.onnx -> onnxruntime, .tflite -> LiteRT, .xml -> OpenVINO) unless ``runtime`` is given.
Each runtime lives in its own module and imports its package only when used.
"""

from bench.runtimes.base import (
    RUNTIMES,
    Runner,
    RunnerOptions,
    format_of_runtime,
    open_runner,
    register_runtime,
    runtime_for,
    runtime_of_format,
)

__all__ = ["RUNTIMES", "Runner", "RunnerOptions", "format_of_runtime", "open_runner", "register_runtime",
           "runtime_for", "runtime_of_format"]
