"""Atomic file writes and the run directory layout (docs/architecture.md, 'Run directory').

Every artifact is written to a temporary file in the same directory and
renamed into place, so an interrupted job never leaves a half-written file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.files import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_text,
    read_jsonl,
    rewrite_jsonl,
)

__all__ = ["append_jsonl", "atomic_torch_save", "atomic_write_bytes", "atomic_write_text", "load_checkpoint",
           "read_jsonl", "rewrite_jsonl"]


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temp file + rename.

    Serialised in memory first: torch's zip writer reports a full disk as a ``RuntimeError``,
    the plain write after it as the ``OSError`` (ENOSPC) it is.
    """
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())




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
        # weights_only: tensors, numbers, strings and containers of them; a checkpoint that holds
        # anything else (a pickled object, code) is refused before any of it runs
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt or crafted file fails anywhere inside unpickling
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CheckpointError(f"{path} is not a checkpoint edgenas can read safely ({type(exc).__name__}: "
                              f"{reason}); delete it to start over") from None
    if not isinstance(ckpt, dict) or ckpt.get("version") != version or any(
            ckpt.get(k) != v for k, v in (match or {}).items()):
        raise CheckpointError(f"{path} is not {what} of this edgenas version; use another --out")
    if ckpt["config"] != identity:
        diff = sorted(k for k in set(ckpt["config"]) | set(identity) if ckpt["config"].get(k) != identity.get(k))
        raise CheckpointError(f"{path.parent} holds {what} with other options ({', '.join(diff)}); "
                              "use the same options to resume, or another --out")
    return ckpt
