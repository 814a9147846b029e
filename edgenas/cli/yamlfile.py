"""Options from a YAML experiment file (``--config``), which options on the command line override."""

from __future__ import annotations

from typing import Any

import click

from edgenas.errors import ConfigError

__all__ = ["merge_options", "read_yaml_options"]


def read_yaml_options(path: str) -> dict[str, Any]:
    """The mapping in ``path``.

    Raises:
        ConfigError: unreadable file, invalid YAML, or not a mapping.
    """
    import yaml

    try:
        with open(path) as fh:
            loaded = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read --config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"--config {path} must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in loaded.items()}


def merge_options(ctx: click.Context, from_file: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``from_file`` updated with every command-line option given explicitly (or missing from the file)."""
    values = dict(from_file)
    for name, value in options.items():
        explicit = ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
        if explicit or name not in values:
            values[name] = value
    return values
