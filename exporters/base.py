"""One abstract exporter; one module per format registers a subclass in :data:`FORMATS`.

An exporter turns a frozen ``nn.Module`` (eval mode, batch norm folded) into
one artifact of one precision. It writes into a staging directory; only a
complete artifact is moved into ``--out`` (no half-written files).
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.registry import Registry
from exporters.errors import UnknownFormatError, UnsupportedError
from exporters.spec import FORMATS as FORMAT_NAMES
from exporters.spec import InputSpec

#: format name -> "module:Class", imported lazily (a missing converter matters only when used)
FORMATS: Registry[str] = Registry("format", UnknownFormatError)
FORMATS.register("onnx", "exporters.formats.onnx:OnnxExporter")
FORMATS.register("tflite", "exporters.formats.tflite:TFLiteExporter")
FORMATS.register("openvino", "exporters.formats.openvino:OpenVinoExporter")
assert set(FORMATS) == set(FORMAT_NAMES)


class Exporter(ABC):
    """Exports a frozen model to one format.

    Class attributes:
        format: registry name ("onnx", "tflite", "openvino").
        runtime: the bench runtime that loads its artifacts ("ort", "litert", "openvino").
        extension: file extension of the main artifact file (".onnx", ".tflite", ".xml").
        precisions: precisions this format supports, from ("fp32", "fp16", "int8").
    """

    format: str = ""
    runtime: str = ""
    extension: str = ""
    precisions: tuple[str, ...] = ()

    @abstractmethod
    def export(self, model, spec: InputSpec, precision: str, stage: Path, stem: str,
               calib: np.ndarray | None = None) -> list[Path]:
        """Write the artifact into the staging directory ``stage``.

        Args:
            model: frozen ``torch.nn.Module`` in eval mode, ``[N, C, H, W] float32 -> [N, classes]``.
            spec: the input spec (shape, normalisation, names, dynamic batch).
            precision: one of :attr:`precisions`.
            stage: an empty directory to write into.
            stem: file name without extension, e.g. "model-int8".
            calib: INT8 only: ``[N, C, H, W]`` float32 normalised calibration inputs.

        Returns:
            The files written (main artifact first; e.g. .xml then .bin).

        Raises:
            ConversionError: the converter failed (message: artifact and cause, one line).
            MissingDependencyError: the converter package is missing.
        """

    def tool_versions(self) -> dict[str, str]:
        """Versions of the converter packages used (recorded in the manifest)."""
        return {}


def get_exporter(name: str) -> Exporter:
    """Instantiate the exporter of format ``name``.

    Raises:
        UnsupportedError: unknown format (known ones listed).
    """
    module, cls = FORMATS.get(name).split(":")
    return getattr(importlib.import_module(module), cls)()


def check_precision(exporter: Exporter, precision: str) -> None:
    if precision not in exporter.precisions:
        raise UnsupportedError(
            f"format {exporter.format} does not support precision {precision!r} "
            f"(supported: {', '.join(exporter.precisions)})"
        )


@contextmanager
def staging(out_dir: Path) -> Iterator[Path]:
    """A temporary directory inside ``out_dir`` (same file system: renames are atomic), removed after."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(files: list[Path], out_dir: Path) -> list[Path]:
    """Move finished files from the staging directory into ``out_dir`` (each by atomic rename)."""
    moved = []
    for f in files:
        target = out_dir / f.name
        f.replace(target)
        moved.append(target)
    return moved
