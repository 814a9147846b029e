"""The runner interface shared by the exporters' parity checks and the bench harness.

A :class:`Runner` loads one artifact and maps a float32 input batch (in the
artifact's own layout, already normalised) to float32 outputs. For integer
(INT8/UINT8) inputs the runner quantizes with the input's scale and zero point
and dequantizes integer outputs, so callers always see float32.
"""

from __future__ import annotations

import difflib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.errors import ArtifactError, UnknownRuntimeError

#: runtime name -> "module:Class" (imported lazily, so a missing runtime only matters when used)
RUNTIMES: dict[str, str] = {
    "ort": "bench.runtimes.ort:OrtRunner",
    "litert": "bench.runtimes.litert:LiteRTRunner",
    "openvino": "bench.runtimes.openvino:OpenVinoRunner",
}

EXTENSIONS = {".onnx": "ort", ".tflite": "litert", ".xml": "openvino"}

#: runtime name -> the file suffixes it can load (OpenVINO also reads ONNX); a runtime not listed here
#: (registered without extensions) is trusted with any file
OPENS: dict[str, set[str]] = {"ort": {".onnx"}, "litert": {".tflite"}, "openvino": {".xml", ".onnx"}}


@dataclass(frozen=True)
class RunnerOptions:
    """How to run an artifact.

    Attributes:
        threads: intra-op threads (1 = single-threaded latency, the default for edge numbers).
        inference_precision: OpenVINO only: None = the artifact's own precision
            (f32 for an FP32 IR, which this CPU would otherwise run in bf16), or "bf16"/"f16"/"f32".
        extra: runtime-specific settings as (key, value) pairs, recorded with each measurement.
    """

    threads: int = 1
    inference_precision: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())


class Runner(ABC):
    """One loaded artifact in one runtime."""

    #: registry name, e.g. "ort"
    name: str = ""

    def __init__(self, path: str | Path, options: RunnerOptions = RunnerOptions()) -> None:
        self.path = Path(path)
        self.options = options
        if not self.path.is_file():
            raise ArtifactError(f"artifact {self.path} does not exist")

    @property
    @abstractmethod
    def input_name(self) -> str: ...

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    @abstractmethod
    def input_dtype(self) -> str:
        """numpy dtype name of the model input: 'float32', 'float16', 'int8' or 'uint8'."""

    @property
    def input_quantization(self) -> tuple[float, int] | None:
        """(scale, zero_point) of an integer input, else None."""
        return None

    @abstractmethod
    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one batch. ``x``: float32 in the input's layout; returns float32 outputs."""

    def prepare(self, x: np.ndarray) -> Callable[[], object]:
        """A zero-argument call that runs the model once on ``x``, every input conversion done beforehand.

        This is what the bench times: the runtime's own inference call, not the
        quantization of inputs or the conversion of outputs around it. The
        default wraps :meth:`run`; runtimes override it to bind the input once.
        """
        return lambda: self.run(x)

    @property
    def metadata(self) -> dict:
        """The artifact's own metadata (what the exporter wrote into it); {} when none."""
        return {}

    @property
    def version(self) -> str:
        """The runtime package's version."""
        return "unknown"

    def close(self) -> None:
        """Release the runtime's resources (idempotent)."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def register_runtime(name: str, target: str, extensions: tuple[str, ...] = ()) -> None:
    """Make a :class:`Runner` subclass available as ``name``.

    Args:
        target: ``"module:Class"``, imported only when the runtime is used (so it
            may live in a package that only the device has).
        extensions: file suffixes (``".engine"``) this runtime opens by default.
    """
    if ":" not in target:
        raise ValueError(f"target must be 'module:Class', got {target!r}")
    RUNTIMES[name] = target
    for ext in extensions:
        EXTENSIONS[ext.lower()] = name
        OPENS.setdefault(name, set()).add(ext.lower())


def runtime_for(path: str | Path) -> str:
    """The default runtime of an artifact, from its extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise ArtifactError(
            f"cannot tell the runtime of {path}: unknown extension {suffix or '(none)'} "
            f"(known: {', '.join(sorted(EXTENSIONS))})"
        )
    return EXTENSIONS[suffix]


def open_runner(path: str | Path, runtime: str | None = None, options: RunnerOptions = RunnerOptions()) -> Runner:
    """Load ``path`` in ``runtime`` (default: by extension).

    Raises:
        UnknownRuntimeError: ``runtime`` is not registered (close matches listed).
        RuntimeMissingError: the runtime's package is not installed.
        ArtifactError: the file is missing, corrupt, not loadable, or of a format ``runtime`` does not run.
    """
    name = runtime or runtime_for(path)
    if name not in RUNTIMES:
        close = difflib.get_close_matches(name, list(RUNTIMES), n=2)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownRuntimeError(f"unknown runtime {name!r}{hint} (known: {', '.join(sorted(RUNTIMES))})")
    suffix = Path(path).suffix.lower()
    if OPENS.get(name) and suffix in EXTENSIONS and suffix not in OPENS[name]:
        raise ArtifactError(f"runtime {name} does not run {suffix} files "
                            f"(it runs {', '.join(sorted(OPENS[name]))}; {suffix} runs in {EXTENSIONS[suffix]})")
    module, cls = RUNTIMES[name].split(":")
    return getattr(importlib.import_module(module), cls)(path, options)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """Affine quantization ``round(x / scale) + zero_point``, saturated to ``dtype``."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)
