"""``edgenas devices``: list and show device profiles (see :mod:`devices.profiles`).

Errors of ``devices`` (``DevicesError``) are printed as one line by the root group.
"""

from __future__ import annotations

import json
from typing import Any

import click


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


@click.group("devices")
def devices() -> None:
    """List, show and check device profiles.

    \b
    Profiles are TOML files searched in, first match wins:
      $EDGENAS_DEVICES_DIR (os.pathsep-separated directories)
      ~/.config/edgenas/devices (or $XDG_CONFIG_HOME/edgenas/devices)
      the profiles shipped with edgenas
    """


@devices.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of profiles instead of a table.")
def list_cmd(as_json: bool) -> None:
    """List the known device profiles."""
    from devices.profiles import SHIPPED_DIR, list_profiles, load_profile

    profiles = [load_profile(name) for name in list_profiles()]
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in profiles]))
        return

    from rich.console import Console
    from rich.table import Table

    # A source column only when a user file overrides or adds a profile, so it is never hidden.
    show_source = any(not p.source.startswith(str(SHIPPED_DIR)) for p in profiles)
    table = Table()
    for column in ("name", "arch", "cores", "runtime", "transport", "description"):
        table.add_column(column)
    if show_source:
        table.add_column("source")
    for p in profiles:
        row = [p.name, _text(p.arch), _text(p.cores), p.runtime, p.transport, p.description]
        if show_source:
            row.append(p.source)
        table.add_row(*row)
    Console().print(table)


@devices.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def show_cmd(name: str, as_json: bool) -> None:
    """Show every field of the device profile NAME."""
    from devices.profiles import load_profile

    profile = load_profile(name)
    data = profile.to_dict()
    if as_json:
        click.echo(json.dumps(data))
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title=profile.name, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in data.items():
        if key == "ssh":
            for sub, sub_value in value.items():
                table.add_row(f"ssh.{sub}", _text(sub_value))
        elif key == "notes":
            table.add_row(key, "\n".join(f"- {note}" for note in value) or "-")
        elif key == "probed":
            table.add_row(key, ", ".join(value) or "-")
        else:
            table.add_row(key, _text(value))
    Console().print(table)


@devices.command("check")
@click.argument("name")
@click.option("--host", default=None, help="USER@HOST[:PORT] of an SSH device (overrides the profile's [ssh]).")
@click.option("--key", type=click.Path(dir_okay=False), default=None,
              help="SSH private key file. [default: ssh-agent and ~/.ssh keys]")
@click.option("--known-hosts", type=click.Path(dir_okay=False), default=None,
              help="known_hosts file to verify the host key against. [default: ~/.ssh/known_hosts]")
@click.option("--python", "python", default=None, help="Python on the device. [default: the profile's]")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds for connecting, and again for the probe.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def check_cmd(name: str, host: str | None, key: str | None, known_hosts: str | None, python: str | None,
              timeout: float, as_json: bool) -> None:
    """Reach device NAME and report its python and runtimes.

    Runs the bench worker's probe there (python, numpy and runtime versions,
    hardware fingerprint) over the profile's transport. Exits with 2 and one line when the device cannot be reached, its python has
    no numpy, or the profile's default runtime is not installed there.
    """
    from devices.check import check_device
    from devices.errors import MissingRuntimeError
    from devices.profiles import load_profile

    result = check_device(load_profile(name), host, key, known_hosts, python, timeout)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        _print_check(result.profile, result.transport, result.address, result.probe, result.problem,
                     list(result.warnings))
    if result.problem:
        raise MissingRuntimeError(result.problem)


def _print_check(profile, transport: str, address: str, probe: dict, problem: str | None,
                 warnings: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    from devices.transport import RUNTIME_PACKAGES

    table = Table(title=f"{profile.name}: reachable", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("transport", transport if address == transport else f"{transport} ({address})")
    table.add_row("python", f"{_text(probe.get('python'))} ({_text(probe.get('executable'))})")
    packages = probe.get("packages") or {}
    for package, version in packages.items():
        table.add_row(package, _text(version) if version else "[red]not installed[/red]"
                      if package == "numpy" else "not installed")
    wanted = " or ".join(RUNTIME_PACKAGES[profile.runtime])
    status = "[red]missing[/red]" if problem else "[green]installed[/green]"
    table.add_row("default runtime", f"{profile.runtime} ({wanted}): {status}")
    for key, value in (probe.get("fingerprint") or {}).items():
        if key == "python":
            continue  # shown above
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:g}" for k, v in value.items()) or None
        table.add_row(key, _text(value))
    console = Console()
    console.print(table)
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
