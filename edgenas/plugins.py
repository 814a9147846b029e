"""User plugins: Python modules that register custom ops, losses or baselines before a job runs.

A plugin is Python code: importing it runs it, with the user's rights. Only import
the plugins the user names on the command line.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from edgenas.errors import ConfigError, EdgenasError

__all__ = ["import_plugins"]


def import_plugins(plugins: tuple[str, ...]) -> None:
    """Import user modules (dotted names or .py paths) that register ops or losses."""
    for plugin in plugins:
        try:
            if plugin.endswith(".py"):
                path = Path(plugin)
                if not path.is_file():
                    raise ConfigError(f"plugin file {plugin} does not exist")
                spec = importlib.util.spec_from_file_location(f"edgenas_plugin_{path.stem}", path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(plugin)
        except EdgenasError:
            raise
        except Exception as exc:  # a user module can fail in any way; report it in one line
            raise ConfigError(f"cannot import plugin {plugin!r}: {type(exc).__name__}: {exc}") from None


