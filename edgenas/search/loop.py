"""What both search strategies share: their result, their base class and the target device they search for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgenas.errors import ConfigError
from edgenas.search.config import SearchConfig
from edgenas.space.spec import ArchSpec

__all__ = ["SearchLoop", "SearchResult", "resolve_target"]


@dataclass(frozen=True)
class SearchResult:
    """What a finished search produced."""

    run_dir: Path
    spec: ArchSpec
    params: int
    macs: int
    elapsed_s: float
    resumed: bool
    summary: dict[str, Any]


def resolve_target(target: str | None):
    """The device profile named by ``--target`` (None when not given)."""
    if target is None:
        return None
    from devices import load_profile
    from devices.errors import DevicesError

    try:
        return load_profile(target)
    except DevicesError as exc:
        raise ConfigError(str(exc)) from None


class SearchLoop:
    """What every strategy's search holds: its config, console, step hook, run directory and checkpoint path."""

    def __init__(self, cfg: SearchConfig, console=None, on_step: Callable[[int], None] | None = None) -> None:
        from rich.console import Console

        self.cfg = cfg
        self.console = console or Console(stderr=True)
        self.on_step = on_step
        self.run_dir = Path(cfg.out)
        self.ckpt_path = self.run_dir / "search.ckpt"
