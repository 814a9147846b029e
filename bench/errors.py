"""Errors of the bench package (which imports neither torch nor edgenas)."""

from __future__ import annotations


class BenchError(Exception):
    """Base of every error the bench raises on purpose; the CLI prints it as one line."""


class UnknownRuntimeError(BenchError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ArtifactError(BenchError):
    """An artifact is missing, corrupt, or cannot be loaded by its runtime."""


class RuntimeMissingError(BenchError, ImportError):
    """The runtime's Python package is not installed; the message names the extra."""
