"""Errors of the exporters package (it does not import edgenas internals)."""

from __future__ import annotations

from bench.errors import EdgenasError, UnknownNameError


class ExportError(EdgenasError):
    """Base of every error an exporter raises on purpose; the CLI prints it as one line."""


class UnsupportedError(ExportError, ValueError):
    """Unknown format or precision, or a combination a format does not support."""


class UnknownFormatError(UnsupportedError, UnknownNameError):
    """No exporter of that format is registered."""


class ConversionError(ExportError):
    """The converter could not express the model; the message names artifact and cause."""


class ParityError(ExportError):
    """An artifact disagrees with PyTorch beyond the tolerance of its precision."""


class MissingDependencyError(ExportError, ImportError):
    """A converter package is not installed; the message names the extra: pip install 'edgenas[export]'."""


class ArtifactsFailedError(ExportError):
    """Some artifacts of an export failed; the others were written and listed in the manifest.

    Attributes:
        manifest: the :class:`exporters.manifest.Manifest` as written (successes and failures).
    """

    def __init__(self, message: str, manifest=None) -> None:
        super().__init__(message)
        self.manifest = manifest
