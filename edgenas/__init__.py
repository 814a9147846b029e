"""edgenas: self-supervised, hardware-aware architecture search for tiny edge networks.

The public Python API mirrors the CLI: ``edgenas.search(config)`` runs a search
and returns the run directory; ``edgenas.models.build(spec)`` rebuilds a network
from its ``arch.json``. Heavy modules (torch) are imported on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "search"]


def search(config, console=None, on_step=None):
    """Run (or resume) a search into ``config.out``; see :func:`edgenas.search.runner.run_search`.

    Args:
        config: an :class:`edgenas.search.config.SearchConfig`.
        console: a ``rich.console.Console`` for the progress bar (default: stderr).
        on_step: called with the global step number after every step.
    """
    from edgenas.search.runner import run_search

    return run_search(config, console=console, on_step=on_step)
