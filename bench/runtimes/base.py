"""The runner interface shared by the exporters' parity checks and the bench harness.

A :class:`Runner` loads one artifact and maps a float32 input batch (in the
artifact's own layout, already normalised) to float32 outputs. For integer
(INT8/UINT8) inputs the runner quantizes with the input's scale and zero point
and dequantizes integer outputs, so callers always see float32.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.errors import ArtifactError, DuplicateNameError, UnknownRuntimeError
from bench.registry import Registry

@dataclass(frozen=True)
class RuntimeEntry:
    """What the registry knows of a runtime before importing it.

    Attributes:
        target: ``"module:Class"`` of its :class:`Runner`, imported only when used (so a
            missing runtime only matters when asked for, and it may live in a package only the device has).
        format: the artifact format it runs, as manifests and records name it ("onnx", "tflite").
        extensions: file suffixes this runtime is the default for (``runtime_for``).
        opens: every suffix it can load (OpenVINO also reads ONNX); empty: trusted with any file.
        built_from: the export format it builds its own artifacts from where it runs (TensorRT's
            engines, specific to a GPU, from ONNX); None: it runs an export as it is.
    """

    target: str
    format: str
    extensions: tuple[str, ...] = ()
    opens: frozenset[str] = frozenset()
    built_from: str | None = None


RUNTIMES: Registry[RuntimeEntry] = Registry("runtime", UnknownRuntimeError)


def register_runtime(name: str, target: str, extensions: tuple[str, ...] = (), format: str | None = None,
                     opens: tuple[str, ...] | None = None, built_from: str | None = None) -> None:
    """Make a :class:`Runner` subclass available as ``name``.

    Args:
        target: ``"module:Class"``, imported only when the runtime is used.
        extensions: file suffixes (``".engine"``) this runtime opens by default.
        format: the format name its records carry (default: ``name``).
        opens: every suffix it can load (default: ``extensions``).
        built_from: the export format its artifacts are built from on the device (see :class:`RuntimeEntry`).

    Raises:
        DuplicateNameError: ``name`` is registered, or an extension already has a default runtime.
        ValueError: ``target`` is not ``module:Class``.
    """
    if ":" not in target:
        raise ValueError(f"target must be 'module:Class', got {target!r}")
    extensions = tuple(ext.lower() for ext in extensions)
    claimed = {ext: other for other, entry in RUNTIMES.items() for ext in entry.extensions}
    for ext in extensions:
        if ext in claimed:
            raise DuplicateNameError(f"{ext} files already run in {claimed[ext]!r} by default; register "
                                     f"{name!r} without that extension and ask for it with runtime={name!r}")
    RUNTIMES.register(name, RuntimeEntry(target, format or name, extensions,
                                         frozenset(ext.lower() for ext in (opens if opens is not None
                                                                           else extensions)),
                                         built_from))


register_runtime("ort", "bench.runtimes.ort:OrtRunner", (".onnx",), format="onnx")
register_runtime("litert", "bench.runtimes.litert:LiteRTRunner", (".tflite",), format="tflite")
register_runtime("openvino", "bench.runtimes.openvino:OpenVinoRunner", (".xml",), format="openvino",
                 opens=(".xml", ".onnx"))
# Engines are built where they run: the tensorrt runtime also opens an .onnx and builds one on its GPU.
register_runtime("tensorrt", "bench.runtimes.tensorrt:TensorRTRunner", (".engine", ".plan"), format="tensorrt",
                 opens=(".engine", ".plan", ".onnx"), built_from="onnx")


def known_extensions() -> dict[str, str]:
    """File suffix -> the runtime that runs it by default."""
    return {ext: name for name, entry in RUNTIMES.items() for ext in entry.extensions}


def format_of_runtime(runtime: str) -> str:
    """The artifact format ``runtime`` runs ("ort" -> "onnx"); raises :class:`UnknownRuntimeError`."""
    return RUNTIMES.get(runtime).format


def runtime_of_format(fmt: str) -> str:
    """The runtime that runs artifacts of format ``fmt`` by default ("onnx" -> "ort")."""
    for name, entry in RUNTIMES.items():
        if entry.format == fmt and entry.extensions:
            return name
    raise UnknownRuntimeError(f"no runtime runs format {fmt!r} (known formats: "
                              f"{', '.join(sorted({e.format for _, e in RUNTIMES.items()}))})")


def export_format_of(fmt: str) -> str:
    """The export format that artifacts of format ``fmt`` come from: "onnx" for "tensorrt" (engines are built
    from an ONNX export on the device that runs them), else ``fmt`` itself."""
    for _, entry in RUNTIMES.items():
        if entry.format == fmt and entry.built_from:
            return entry.built_from
    return fmt


@dataclass(frozen=True)
class RunnerOptions:
    """How to run an artifact.

    Attributes:
        threads: intra-op threads (1 = single-threaded latency, the default for edge numbers).
        inference_precision: OpenVINO only: None = the artifact's own precision
            (f32 for an FP32 IR, which a CPU with bf16 would otherwise run in bf16), or "bf16"/"f16"/"f32".
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

    def _feed(self, x: np.ndarray) -> np.ndarray:
        """``x`` as the runtime takes it: quantized with :attr:`input_quantization`, else cast to :attr:`input_dtype`.

        Raises:
            ArtifactError: its shape does not fit :attr:`input_shape` (-1 matches any size).
        """
        x = np.asarray(x)
        quant = self.input_quantization
        if quant is not None:
            feed = quantize(x.astype(np.float32), *quant, self.input_dtype)
        else:
            feed = np.ascontiguousarray(x, dtype=self.input_dtype)
        expected = self.input_shape
        if len(feed.shape) != len(expected) or any(e not in (-1, s) for e, s in zip(expected, feed.shape)):
            raise ArtifactError(f"{self.path.name} takes input {expected}, got {tuple(feed.shape)}")
        return feed

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


def runtime_for(path: str | Path) -> str:
    """The default runtime of an artifact, from its extension."""
    suffix = Path(path).suffix.lower()
    extensions = known_extensions()
    if suffix not in extensions:
        raise ArtifactError(
            f"cannot tell the runtime of {path}: unknown extension {suffix or '(none)'} "
            f"(known: {', '.join(sorted(extensions))})"
        )
    return extensions[suffix]


def open_runner(path: str | Path, runtime: str | None = None, options: RunnerOptions = RunnerOptions()) -> Runner:
    """Load ``path`` in ``runtime`` (default: by extension).

    Raises:
        UnknownRuntimeError: ``runtime`` is not registered (close matches listed).
        RuntimeMissingError: the runtime's package is not installed.
        ArtifactError: the file is missing, corrupt, not loadable, or of a format ``runtime`` does not run.
    """
    name = runtime or runtime_for(path)
    entry = RUNTIMES.get(name)
    suffix = Path(path).suffix.lower()
    extensions = known_extensions()
    if entry.opens and suffix in extensions and suffix not in entry.opens:
        raise ArtifactError(f"runtime {name} does not run {suffix} files "
                            f"(it runs {', '.join(sorted(entry.opens))}; {suffix} runs in {extensions[suffix]})")
    module, cls = entry.target.split(":")
    return getattr(importlib.import_module(module), cls)(path, options)


def first_line(exc: BaseException) -> str:
    """The first line of a runtime's error message (at most 300 characters), for one-line errors."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """Affine quantization ``round(x / scale) + zero_point``, saturated to ``dtype``."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)
