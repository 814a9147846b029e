"""The one error family of edgenas.

Every error a user can cause derives from :class:`EdgenasError`; the CLI turns
these into a one-line message and a non-zero exit. ``assert`` is kept for
internal invariants only.
"""

from __future__ import annotations


class EdgenasError(Exception):
    """Base class of every error edgenas raises on purpose."""


class ConfigError(EdgenasError, ValueError):
    """An option or config value is out of range or inconsistent."""


class UnknownNameError(EdgenasError, KeyError):
    """A name (op, space, device, dataset, ...) is not registered."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(EdgenasError, ValueError):
    """A name was registered twice in the same registry."""


class DataError(EdgenasError):
    """A data set is missing, unreadable or in an unexpected layout."""


class BudgetError(EdgenasError):
    """No network in the space can meet the budget, or the result broke it."""


class ArchSpecError(EdgenasError, ValueError):
    """An ``arch.json`` is malformed or names something unknown."""


class CheckpointError(EdgenasError):
    """A checkpoint or run directory cannot be resumed."""


class MissingDependencyError(EdgenasError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class ExportFailedError(EdgenasError):
    """An export could not be completed; the message names the artifacts and causes.

    Wraps ``exporters.errors.ExportError`` (the exporters do not import edgenas).
    """
