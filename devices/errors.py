"""Errors of the ``devices`` package.

``devices`` runs without edgenas and without torch, so its errors derive from
:class:`DevicesError`, a member of the one family rooted in
:class:`bench.errors.EdgenasError`; the CLI turns them into one-line messages.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from bench.errors import EdgenasError


class DevicesError(EdgenasError):
    """Base class of every error the ``devices`` package raises on purpose."""


class DeviceProfileError(DevicesError, ValueError):
    """A device profile file is unreadable, malformed or has out-of-range values."""


class UnknownDeviceError(DevicesError, KeyError):
    """No device profile has this name."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


def close_matches(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'a', 'b'?"`` for the names close to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""


class TransportError(DevicesError):
    """Reaching a device, copying to it or running the bench worker there failed."""


class HostSpecError(TransportError, ValueError):
    """A ``USER@HOST[:PORT]`` string is malformed, or an SSH device has no host at all."""


class HostUnreachableError(TransportError):
    """No connection to ``host:port`` (refused, unresolvable, no answer) or the connection was lost."""


class HostKeyError(TransportError):
    """The device's host key is unknown, or differs from the one in known_hosts."""


class AuthenticationError(TransportError):
    """The device refused the key (or the key file is missing or encrypted)."""


class RemoteTimeoutError(TransportError):
    """A command on the device ran past its timeout; it was killed."""


class RemoteError(TransportError):
    """The bench worker crashed, could not start, or rejected its job."""


class MissingRuntimeError(RemoteError):
    """The device's python lacks numpy or the runtime a job or profile needs."""
