"""edgenas: self-supervised, hardware-aware architecture search for tiny edge networks.

The public Python API mirrors the CLI: ``edgenas.search(config)`` runs a search
and returns the run directory; ``edgenas.models.build(spec)`` rebuilds a network
from its ``arch.json``. Heavy modules (torch) are imported on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "search"]


def search(config, **kwargs):
    """Run a search; see :func:`edgenas.search.runner.run_search`."""
    from edgenas.search.runner import run_search

    return run_search(config, **kwargs)
