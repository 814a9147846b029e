"""The errors of edgenas, in the one family of the four packages.

Every error a user can cause derives from :class:`EdgenasError` (defined in
:mod:`bench.errors`, the package every other one may import, so that
``exporters``, ``bench`` and ``devices`` raise members of the same family);
the CLI turns these into a one-line message and a non-zero exit. ``assert`` is
kept for internal invariants only.
"""

from __future__ import annotations

from bench.errors import DuplicateNameError, EdgenasError, UnknownNameError

__all__ = ["ArchSpecError", "BudgetError", "CheckpointError", "ConfigError", "DataError", "DuplicateNameError",
           "EdgenasError", "ExportFailedError", "UnknownNameError"]


class ConfigError(EdgenasError, ValueError):
    """An option or config value is out of range or inconsistent."""


class DataError(EdgenasError):
    """A data set is missing, unreadable or in an unexpected layout."""


class BudgetError(EdgenasError):
    """No network in the space can meet the budget, or the result broke it."""


class ArchSpecError(EdgenasError, ValueError):
    """An ``arch.json`` is malformed or names something unknown."""


class CheckpointError(EdgenasError):
    """A checkpoint or run directory cannot be resumed."""


class ExportFailedError(EdgenasError):
    """Some artifacts of an export failed; the message names them and where the manifest is."""
