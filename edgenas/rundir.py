"""Atomic file writes and the run directory layout (DESIGN.md: 'Run directory').

Every artifact is written to a temporary file in the same directory and
renamed into place, so an interrupted job never leaves a half-written file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.files import (
    _atomic,
    append_jsonl,
    atomic_write_bytes,
    atomic_write_text,
    read_jsonl,
    rewrite_jsonl,
)

__all__ = ["append_jsonl", "atomic_torch_save", "atomic_write_bytes", "atomic_write_text", "load_checkpoint",
           "read_jsonl", "rewrite_jsonl"]


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temp file + rename."""
    import torch

    return _atomic(path, lambda fh: torch.save(obj, fh), "wb")




def load_checkpoint(path: Path, version: int, identity: dict[str, Any], what: str,
                    match: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it resumes the job whose options are ``identity`` (None when absent).

    Args:
        version: the checkpoint format this edgenas writes.
        what: the job, for messages ("a search", "a fine-tuning").
        match: other fields the checkpoint must hold (e.g. ``{"strategy": "evolve"}``).

    Raises:
        CheckpointError: unreadable, of another version or kind, or written with other options (named).
    """
    import torch

    from edgenas.errors import CheckpointError

    path = Path(path)
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} is unreadable ({exc}); delete it to start over") from None
    if not isinstance(ckpt, dict) or ckpt.get("version") != version or any(
            ckpt.get(k) != v for k, v in (match or {}).items()):
        raise CheckpointError(f"{path} is not {what} of this edgenas version; use another --out")
    if ckpt["config"] != identity:
        diff = sorted(k for k in set(ckpt["config"]) | set(identity) if ckpt["config"].get(k) != identity.get(k))
        raise CheckpointError(f"{path.parent} holds {what} with other options ({', '.join(diff)}); "
                              "use the same options to resume, or another --out")
    return ckpt
