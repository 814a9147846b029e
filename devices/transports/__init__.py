"""The transports behind :func:`devices.transport.open_transport`, one module each.

:data:`TRANSPORTS` names them; each module is imported only when a profile asks for it
(``ssh`` imports paramiko only when a connection is opened).
"""

from bench.registry import Registry

#: transport name (a profile's ``transport``) -> "module:Class" of its :class:`devices.transport.Transport`
TRANSPORTS: Registry[str] = Registry("transport")
TRANSPORTS.register("local", "devices.transports.local:LocalTransport")
TRANSPORTS.register("ssh", "devices.transports.ssh:SshTransport")

__all__ = ["TRANSPORTS"]
