"""Atomic file writes and JSON-lines files (stdlib only: used on the host and by edgenas' run directory).

Every file is written to a temporary file in the same directory and renamed
into place, so an interrupted job never leaves a half-written file. JSONL files
are appended a line at a time; a torn last line (a kill mid-write) is ended
before the next record is appended, so no later record is lost with it, and
lines that do not parse are skipped with a warning naming them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.errors import CorruptFileError

__all__ = ["append_jsonl", "atomic_write_bytes", "atomic_write_text", "read_json", "read_jsonl", "rewrite_jsonl"]


def _atomic(path: str | os.PathLike, write: Callable[[Any], None], mode: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file + rename."""
    return _atomic(path, lambda fh: fh.write(text), "w")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic(path, lambda fh: fh.write(data), "wb")


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON object as a line.

    A file whose last line was torn (no final newline: a kill mid-write) gets that
    newline first, so the torn line stays one unreadable line and this record its own.
    """
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(path, "ab+") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                line = "\n" + line
        fh.write(line.encode())
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | os.PathLike, warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, in order; a line that is not one is skipped and reported.

    Args:
        warn: called with a one-line message for each skipped line (default: printed to stderr),
            except a torn last line, which a kill mid-write leaves and which is expected.
    """
    p = Path(path)
    if not p.exists():
        return []
    out = []
    lines = p.read_bytes().decode("utf-8", errors="replace").split("\n")
    torn = lines[-1] != ""  # the file does not end with a newline: its last line was cut
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            out.append(obj)
        elif not (torn and number == len(lines)):
            message = f"warning: {p}:{number}: skipped a line that is not a JSON object"
            (warn or (lambda m: print(m, file=sys.stderr)))(message)
    return out


def read_json(path: str | os.PathLike, what: str = "file") -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises:
        CorruptFileError: missing, unreadable, not JSON, or not an object (one line, naming the file).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise CorruptFileError(f"{p}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{p}: cannot read the {what}: {getattr(exc, 'strerror', None) or exc}") from None
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"{p} is not a valid {what}: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise CorruptFileError(f"{p} is not a valid {what}: it holds a {type(data).__name__}, not an object")
    return data


def rewrite_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    """Replace a JSONL file atomically (used to drop events newer than a resumed checkpoint)."""
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
