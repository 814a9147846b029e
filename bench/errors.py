"""The one error family of the four packages, rooted here because every package may import ``bench``.

``bench`` is the package shipped to the boards, with numpy and a runtime only,
so the root of the family (:class:`EdgenasError`) and the errors of the shared
registry live in this torch-free module; ``edgenas``, ``exporters`` and
``devices`` derive their own errors from it. The CLI turns every
:class:`EdgenasError` into a one-line message and exit code 2.
"""

from __future__ import annotations


class EdgenasError(Exception):
    """Base class of every error edgenas, exporters, bench and devices raise on purpose."""


class UnknownNameError(EdgenasError, KeyError):
    """A name (op, space, runtime, exporter, transport, ...) is not registered."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(EdgenasError, ValueError):
    """A name was registered twice in the same registry."""


class CorruptFileError(EdgenasError):
    """A file a job reads (a summary, a manifest, a record file) is not what it should be."""


class BenchError(EdgenasError):
    """Base of every error the bench raises on purpose."""


class UnknownRuntimeError(BenchError, UnknownNameError):
    """No runtime of that name is registered."""


class ArtifactError(BenchError):
    """An artifact is missing, corrupt, or cannot be loaded by its runtime."""


class RuntimeMissingError(BenchError, ImportError):
    """The runtime's Python package is not installed; the message names the extra."""
