"""The bench worker: one measurement job per process, on the device, with the device's own python.

Shipped to a device as the files of the ``bench`` package (stdlib + numpy + one
runtime; never torch, never edgenas) and run as::

    python -m bench.worker JOB.json     # one measurement; prints one JSON record
    python -m bench.worker --probe      # python, fingerprint and runtime versions

The last line of stdout is one JSON object: the record, or
``{"error": "<one line>", "error_type": "<class>"}``. Exit codes: 0 success,
3 the measurement failed (the JSON says why), 2 a bad job file.

A job is a JSON object::

    {"artifact": "m.onnx", "runtime": null, "threads": 1, "batch": null,
     "warmup": 50, "runs": 300, "inference_precision": null, "extra": [],
     "data": null, "meta": {}}

Transports use :func:`job_files`, :func:`localize` and :func:`package_files` to
ship a job and the worker to another machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["JOB_KEYS", "job_files", "localize", "main", "make_job", "package_files"]

#: keys a job may hold, with their defaults
JOB_KEYS: dict[str, Any] = {
    "artifact": None,
    "runtime": None,
    "threads": 1,
    "batch": None,
    "warmup": 50,
    "runs": 300,
    "energy_seconds": 2.0,
    "inference_precision": None,
    "extra": [],
    "data": None,
    "meta": {},
}

EXIT_FAILED = 3
EXIT_BAD_JOB = 2


def make_job(artifact: str | Path, **fields: Any) -> dict[str, Any]:
    """A complete job for ``artifact`` (unknown keys rejected, defaults filled in)."""
    unknown = set(fields) - set(JOB_KEYS)
    if unknown:
        raise ValueError(f"unknown job keys: {', '.join(sorted(unknown))}")
    job = {**JOB_KEYS, **fields, "artifact": str(artifact)}
    job["extra"] = [list(pair) for pair in job["extra"]]
    job["meta"] = dict(job["meta"])
    return job


def job_files(job: dict) -> list[str]:
    """Local paths of every file ``job`` reads: the artifact, an OpenVINO .xml's .bin, the labelled data."""
    artifact = Path(job["artifact"])
    files = [str(artifact)]
    if artifact.suffix.lower() == ".xml":
        files.append(str(artifact.with_suffix(".bin")))
    if job.get("data"):
        files.append(str(job["data"]))
    return files


def localize(job: dict, names: dict[str, str]) -> dict:
    """A copy of ``job`` whose file paths are replaced through ``names`` (local path -> new path).

    An OpenVINO .bin must keep the .xml's stem: map both to the same stem.
    """
    out = dict(job)
    out["artifact"] = names.get(str(job["artifact"]), job["artifact"])
    if job.get("data"):
        out["data"] = names.get(str(job["data"]), job["data"])
    return out


def package_files() -> list[tuple[str, str]]:
    """(absolute path, path relative to the shipping root) of each .py file of the bench package."""
    package = Path(__file__).resolve().parent
    root = package.parent
    return [(str(p), p.relative_to(root).as_posix()) for p in sorted(package.rglob("*.py"))
            if "__pycache__" not in p.parts]


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _fail(message: str, error_type: str, code: int = EXIT_FAILED) -> int:
    _emit({"error": " ".join(str(message).split())[:500], "error_type": error_type})
    return code


def _probe() -> int:
    import platform

    from bench.fingerprint import fingerprint, package_versions

    packages = package_versions()
    info = {"python": platform.python_version(), "executable": sys.executable,
            "fingerprint": fingerprint(), "packages": packages}
    if packages.get("numpy") is None:
        info.update(error=f"numpy is not installed for {sys.executable}", error_type="RuntimeMissingError")
        _emit(info)
        return EXIT_FAILED
    _emit(info)
    return 0


def _run(job_path: str) -> int:
    try:
        job = json.loads(Path(job_path).read_text())
        if not isinstance(job, dict) or not job.get("artifact"):
            raise ValueError("a job is a JSON object with an 'artifact'")
        unknown = set(job) - set(JOB_KEYS)
        if unknown:
            raise ValueError(f"unknown job keys: {', '.join(sorted(unknown))}")
    except (OSError, ValueError) as exc:
        return _fail(f"bad job file {job_path}: {exc}", "JobError", EXIT_BAD_JOB)
    job = {**JOB_KEYS, **job}
    try:
        import numpy  # noqa: F401 - the one dependency besides the runtime
    except ImportError:
        return _fail(f"numpy is not installed for {sys.executable}", "RuntimeMissingError")

    from bench.errors import BenchError
    from bench.measure import MeasureConfig, measure
    from bench.runtimes.base import RunnerOptions

    try:
        options = RunnerOptions(threads=int(job["threads"]), inference_precision=job["inference_precision"],
                                extra=tuple((str(k), str(v)) for k, v in job["extra"]))
        config = MeasureConfig(warmup=int(job["warmup"]), runs=int(job["runs"]),
                               batch=None if job["batch"] is None else int(job["batch"]),
                               energy_seconds=float(job["energy_seconds"]))
        record = measure(job["artifact"], job["runtime"], options, config, job["data"], job["meta"])
    except BenchError as exc:
        return _fail(str(exc), type(exc).__name__)
    except (ValueError, TypeError) as exc:
        return _fail(f"bad job: {exc}", "JobError", EXIT_BAD_JOB)
    _emit(record)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--probe"]:
        return _probe()
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write("usage: python -m bench.worker JOB.json | --probe\n")
        return EXIT_BAD_JOB
    return _run(args[0])


if __name__ == "__main__":
    sys.exit(main())
