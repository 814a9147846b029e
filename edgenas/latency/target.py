"""The target device of a search: its latency table, and the searched network measured there.

Both strategies use these: the table is ``--lut``, else the target's own on the
table path (:func:`edgenas.latency.files.find_table`); once the network is
found, it is measured on the target when the target is reachable without a
host given on the command line (a local device, or an SSH profile with a host).
"""

from __future__ import annotations

import dataclasses

from edgenas.errors import ConfigError
from edgenas.latency.files import find_table
from edgenas.latency.measure import measure_specs

__all__ = ["measure_on_target", "reachable", "target_table", "warn_if_estimated"]


def reachable(profile) -> bool:
    """Whether ``profile``'s device can be reached with what the profile alone says."""
    return profile is not None and (profile.transport == "local" or bool(profile.ssh.host))


def target_table(lut: str | None, profile, space: str, space_version: int | None = None, precision: str = "fp32"):
    """The latency table a search of ``space`` for ``profile`` uses, or None when there is none.

    Raises:
        LutError: a table file that is unreadable, or made for another device, runtime or space.
    """
    from bench.latency_table import LatencyTable

    if lut:
        table = LatencyTable.load(lut)
        if profile is not None:
            table.check(device=profile.name)
    elif profile is not None:
        path = find_table(profile.name, profile.runtime, precision, space=space)
        if path is None:
            return None
        table = LatencyTable.load(path)
        table.check(device=profile.name, runtime=profile.runtime)
    else:
        return None
    table.check(space=space, space_version=space_version)
    return table


def warn_if_estimated(table, console) -> None:
    """Say that a table was computed from an analytic model, and how to measure a real one."""
    if table is not None and table.estimated:
        console.print(f"[yellow]latency table {table.source or table.label} is estimated from an analytic model of "
                      f"{table.device}, not measured; replace it: {table.data.get('replace_with', '')}[/]")


def measure_on_target(spec, profile, table, console) -> dict:
    """``{measured_latency_ms, latency_measured_on}`` of the deployable ``spec`` on the target, or ``{}``.

    The table's runtime, precision and threads say how to measure (the profile's runtime and
    threads at FP32 without a table). Nothing is measured when the target cannot be reached;
    a failure is reported, not raised: the search's result stands.
    """
    if not reachable(profile):
        return {}
    runtime, precision, threads = ((table.runtime, table.precision, int(table.threads)) if table is not None
                                   else (profile.runtime, "fp32", int(profile.threads or 1)))
    from devices.errors import DevicesError
    from devices.transport import open_transport

    deployable = dataclasses.replace(spec, projector=())
    try:
        with open_transport(profile) as transport:
            (ms,) = measure_specs([deployable], transport.run_job, runtime, precision, threads)
    except (DevicesError, ConfigError) as exc:
        console.print(f"[yellow]could not measure the network on {profile.name}: {exc}[/]")
        return {}
    return {"measured_latency_ms": round(ms, 5), "latency_measured_on": profile.name}
