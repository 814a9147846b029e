"""One job per output directory: checked writable before any work, locked while the job runs, and left as
it was found when the job fails before its first durable result.

Every command that writes a run, sweep, export or table directory holds it with
:func:`job_output`::

    with job_output(run_dir, "search", durable=lambda: (run_dir / "search.ckpt").exists()):
        ...  # the job

* The location is made and a probe file written first, so a read-only or full
  disk fails in one line before any measurement or training.
* An advisory lock (``flock`` on ``<dir>/.edgenas.lock``, removed when the job
  ends) is held for the job: a second job on the same directory stops at once,
  naming the first (its command, pid and start time). The kernel drops the lock
  of a killed process, so a lock file left by ``kill -9`` never blocks the next run.
* If the job fails (an error, Ctrl-C) while ``durable()`` is false, what it
  created is removed: a directory it made, or the entries it added to one that
  existed. Once a durable result exists (a checkpoint, a record), nothing is
  removed: running the command again resumes.

Under ``torchrun`` only rank 0 locks and cleans up: the other ranks write nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from edgenas.errors import EdgenasError

__all__ = ["DirectoryLockedError", "OutputError", "check_writable", "job_output"]

LOCK_NAME = ".edgenas.lock"

_HELD: dict[Path, int] = {}  # lock path -> depth: a job's own nested steps (compare -> sweep) share its lock


class OutputError(EdgenasError):
    """The output location cannot be written (read-only, full, not a directory, no permission)."""


class DirectoryLockedError(EdgenasError):
    """Another job holds the output directory."""


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_writable(path: str | os.PathLike) -> list[Path]:
    """Make the directory ``path`` (and missing parents) and write a probe file in it.

    Returns:
        The directories it created, outermost first (for a caller that wants to undo them).

    Raises:
        OutputError: ``path`` is a file, or it cannot be made or written (the reason in one line).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a directory")
    created = []
    for parent in reversed([path, *path.parents]):
        if not parent.exists():
            created.append(parent)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".edgenas-write-probe-{os.getpid()}"
        with open(probe, "wb") as fh:
            fh.write(b"\0" * 4096)  # a full disk refuses a block, not an empty file
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            (path / f".edgenas-write-probe-{os.getpid()}").unlink(missing_ok=True)
        _remove_dirs(created)
        raise OutputError(f"{exc.filename or path}: {_os_reason(exc)}") from None
    return created


def _remove_dirs(dirs: list[Path]) -> None:
    for d in reversed(dirs):
        with contextlib.suppress(OSError):
            d.rmdir()


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") in ("", "0")


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or not info:
        return "another job"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"{info.get('command') or 'another job'} (pid {info.get('pid')} on {info.get('host')}, started {started})"


@contextlib.contextmanager
def _locked(directory: Path, what: str, name: str = LOCK_NAME) -> Iterator[None]:
    lock = (directory / name).resolve()
    if _HELD.get(lock):
        _HELD[lock] += 1
        try:
            yield
        finally:
            _HELD[lock] -= 1
        return
    fd = _acquire(lock, directory, what)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                                 "command": " ".join(["edgenas", *sys.argv[1:3]]) if sys.argv else what}).encode())
        _HELD[lock] = 1
        try:
            yield
        finally:
            del _HELD[lock]
            with contextlib.suppress(OSError):
                lock.unlink()  # no lock file is left behind; the next job makes its own
    finally:
        os.close(fd)  # closing releases the flock


def _acquire(lock: Path, directory: Path, what: str) -> int:
    """An open descriptor of ``lock`` holding its flock; the file is the one at that path (not one just removed)."""
    for _ in range(100):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DirectoryLockedError(f"{directory} is in use by {_holder(lock)}; wait for it to finish, "
                                       f"or give this {what} another output") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the file between our open and our lock: take the new one
    raise DirectoryLockedError(f"{directory}: could not take its lock file {lock}")


def _entries(directory: Path) -> set[Path]:
    return set(directory.rglob("*")) if directory.is_dir() else set()


@contextlib.contextmanager
def job_output(path: str | os.PathLike, what: str = "job", durable: Callable[[], bool] = lambda: False,
               lock_name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold the output directory ``path`` for one job (see the module docstring).

    Args:
        what: the job, for messages ("search", "sweep").
        durable: whether the job has written a result worth keeping (a checkpoint, a record);
            until it has, a failure removes what the job created.
        lock_name: the lock file in ``path``: jobs that each write their own file of a shared
            directory (latency tables in ``luts/``) lock that file's name instead of the directory.

    Raises:
        OutputError: the location cannot be written.
        DirectoryLockedError: another job holds it.
    """
    directory = Path(path)
    if not _is_main_process():
        yield directory
        return
    existed = directory.exists()
    created = check_writable(directory)
    try:
        lock = _locked(directory, what, lock_name)
        lock.__enter__()
    except BaseException:
        _remove_dirs(created)  # nothing of ours is in it yet
        raise
    before = _entries(directory)
    try:
        yield directory
    except BaseException as exc:
        if not durable():  # undone under the lock: no other job can have started in it yet
            _undo(directory, existed, created, before)
        lock.__exit__(type(exc), exc, exc.__traceback__)
        raise
    else:
        lock.__exit__(None, None, None)


def _undo(directory: Path, existed: bool, created: list[Path], before: set[Path]) -> None:
    """Remove what a failed job added: the directory it made, or the entries it added to an existing one."""
    if not existed:
        shutil.rmtree(directory, ignore_errors=True)
        _remove_dirs(created[:-1] if created and created[-1] == directory else created)
        return
    for entry in sorted(_entries(directory) - before, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
