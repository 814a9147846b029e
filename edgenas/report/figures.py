"""The one way a figure is made and saved: matplotlib on the Agg backend, written atomically as PNG.

Every plot of edgenas goes through these two functions, so a machine without
matplotlib (``pip install 'edgenas[plot]'``) gets no plot instead of an error.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["pyplot", "save_figure"]


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to the PNG ``path`` through a temporary file (never a half-written plot), then close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    tmp.replace(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
