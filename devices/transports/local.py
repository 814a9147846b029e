"""Run the bench worker in a subprocess on this machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from devices.errors import RemoteError, RemoteTimeoutError, TransportError
from devices.profiles import DeviceProfile
from devices.transport import Transport

__all__ = ["LocalTransport", "bench_root"]


def bench_root() -> str:
    """The directory holding the ``bench`` package (what the worker's PYTHONPATH needs)."""
    import bench

    return str(Path(bench.__file__).resolve().parent.parent)


class LocalTransport(Transport):
    """A fresh ``python -m bench.worker`` process per job on this machine.

    Job file paths stay where they are (made absolute); the job JSON goes to a
    temporary directory removed afterwards. The child runs in the directory of
    the ``bench`` package so that no other ``bench`` on the current directory shadows it.

    Args:
        python: interpreter that runs the worker (default: the one running this code).
    """

    name = "local"

    def __init__(self, python: str | None = None) -> None:
        super().__init__(python or sys.executable, "local")
        self._root = bench_root()

    @classmethod
    def from_profile(cls, profile: DeviceProfile, host: str | None = None, key: str | None = None,
                     known_hosts: str | None = None, python: str | None = None,
                     connect_timeout: float = 10) -> LocalTransport:
        """This machine; SSH options are refused (they would be silently ignored)."""
        given = [flag for flag, value in (("--host", host), ("--key", key), ("--known-hosts", known_hosts)) if value]
        if given:
            raise TransportError(f"device {profile.name!r} runs on this machine, so it takes no {', '.join(given)} "
                                 f"(those are for SSH devices)")
        return cls(python or profile.python or None)

    def _worker(self, args: list[str], timeout: float) -> tuple[int, str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (self._root, env.get("PYTHONPATH")) if p)
        argv = [self.python, "-m", "bench.worker", *args]
        try:
            done = subprocess.run(argv, cwd=self._root, env=env, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:  # subprocess.run has killed the child
            raise RemoteTimeoutError(f"the bench worker on {self.address} did not finish within {timeout:g} s; "
                                     f"it was killed") from None
        except OSError as exc:
            raise RemoteError(f"cannot run python {self.python!r} on {self.address}: {exc.strerror or exc}") from None
        return done.returncode, done.stdout, done.stderr

    def _run_job(self, job: dict[str, Any], timeout: float) -> tuple[int, str, str]:
        from bench.worker import job_files, localize

        # The child runs elsewhere, so relative paths are made absolute (the files are not copied).
        names = {path: os.path.abspath(path) for path in job_files(job)}
        tmp = tempfile.mkdtemp(prefix="edgenas-job-")
        try:
            job_path = os.path.join(tmp, "job.json")
            with open(job_path, "w", encoding="utf-8") as fh:
                json.dump(localize(job, names), fh)
            return self._worker([job_path], timeout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
