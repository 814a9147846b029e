"""Facts about the machine this process runs on (stdlib only).

Fills the hardware fields a ``probe_host = true`` profile leaves unset (the
shipped ``local`` profile). The readers live in :mod:`bench.fingerprint`, which
the bench worker also runs on the device to fingerprint every record.
"""

from bench.fingerprint import probe_host

__all__ = ["probe_host"]
