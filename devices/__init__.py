"""Device profiles, and transports (local, SSH) that run the bench worker on a device.

Imports only the stdlib (paramiko only when an SSH connection is opened, bench
when a job runs): this package is usable where torch and edgenas are not
installed. Errors derive from :class:`devices.errors.DevicesError`.
"""

from __future__ import annotations

from devices.errors import (
    AuthenticationError,
    DeviceProfileError,
    DevicesError,
    HostKeyError,
    HostSpecError,
    HostUnreachableError,
    MissingRuntimeError,
    RemoteError,
    RemoteTimeoutError,
    TransportError,
    UnknownDeviceError,
)
from devices.profiles import (
    DeviceProfile,
    SshSettings,
    list_profiles,
    load_profile,
    load_profile_file,
    profile_dirs,
)
from devices.transport import Reach, Transport, open_device, open_transport, parse_host

__all__ = [
    "AuthenticationError",
    "DeviceProfile",
    "DeviceProfileError",
    "DevicesError",
    "HostKeyError",
    "HostSpecError",
    "HostUnreachableError",
    "MissingRuntimeError",
    "RemoteError",
    "Reach",
    "RemoteTimeoutError",
    "SshSettings",
    "Transport",
    "TransportError",
    "UnknownDeviceError",
    "list_profiles",
    "load_profile",
    "load_profile_file",
    "open_device",
    "open_transport",
    "parse_host",
    "profile_dirs",
]
