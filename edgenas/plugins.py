"""User plugins: Python modules that register custom ops, losses or baselines before a job runs.

A plugin is Python code: importing it runs it, with the user's rights. So a
plugin is imported only when the user names it (``--plugin``). A run directory
records the plugins its search imported (``config.yaml``), but opening a run
someone else made never imports them: a command that needs them asks for
``--plugin`` again, or for ``--trust-plugins``, which imports what the run recorded.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from edgenas.errors import ConfigError, EdgenasError

__all__ = ["import_plugins", "imported_plugins", "require_run_plugins"]

_IMPORTED: list[str] = []


def import_plugins(plugins: tuple[str, ...]) -> None:
    """Import (run) user modules, each a dotted name or a ``.py`` path, in order; each at most once.

    Raises:
        ConfigError: a missing file, or a module that failed while importing (in one line).
    """
    for plugin in plugins:
        if plugin in _IMPORTED:
            continue
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
        _IMPORTED.append(plugin)


def imported_plugins() -> tuple[str, ...]:
    """The plugins this process has imported, as they were named."""
    return tuple(_IMPORTED)


def require_run_plugins(recorded: tuple[str, ...], run: str | Path, trust: bool = False) -> None:
    """Make sure the plugins a run's search used are imported, without running code the user did not name.

    Args:
        recorded: the run's ``plugins`` (its ``config.yaml``).
        trust: import them (``--trust-plugins``); otherwise each must have been named with ``--plugin``.

    Raises:
        ConfigError: a recorded plugin the user has neither named nor trusted.
    """
    if trust:
        import_plugins(tuple(recorded))
        return
    missing = [p for p in recorded if p not in _IMPORTED]
    if missing:
        raise ConfigError(f"{run} was searched with plugin(s) {', '.join(missing)}, which are Python code: name each "
                          "with --plugin to import it, or pass --trust-plugins to import what the run recorded")
