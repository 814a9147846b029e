"""The transports behind :func:`devices.transport.open_transport`, one module each.

``ssh`` imports paramiko only when a connection is opened, so this package loads without it.
"""

from devices.transports.local import LocalTransport
from devices.transports.ssh import SshTransport

__all__ = ["LocalTransport", "SshTransport"]
