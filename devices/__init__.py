"""Device profiles and, later, transports (local, SSH) to run the bench on a board.

Imports only the stdlib: this package is usable where torch and edgenas are
not installed. Errors derive from :class:`devices.errors.DevicesError`.
"""

from __future__ import annotations

from devices.errors import DeviceProfileError, DevicesError, UnknownDeviceError
from devices.profiles import DeviceProfile, SshSettings, list_profiles, load_profile, load_profile_file, profile_dirs

__all__ = [
    "DeviceProfile",
    "DeviceProfileError",
    "DevicesError",
    "SshSettings",
    "UnknownDeviceError",
    "list_profiles",
    "load_profile",
    "load_profile_file",
    "profile_dirs",
]
