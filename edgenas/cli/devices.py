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
    """List and show device profiles.

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
