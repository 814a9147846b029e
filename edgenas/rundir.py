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

__all__ = ["append_jsonl", "atomic_torch_save", "atomic_write_bytes", "atomic_write_text", "read_jsonl",
           "rewrite_jsonl"]


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temp file + rename."""
    import torch

    return _atomic(path, lambda fh: torch.save(obj, fh), "wb")


