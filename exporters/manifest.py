"""The export manifest (``exports/manifest.json``, docs/architecture.md "Export manifest") and ``labels.txt``.

One entry per artifact, enough for a mobile developer to wire the model from
the manifest alone: file, checksum, size; input name, shape, dtype, layout and
normalisation (``x = (pixel * scale - mean) / std``); quantization of an
integer input; class labels; output names and meaning; parity with PyTorch;
export time; the source architecture; tool versions. A failed artifact is listed
with ``"status": "failed"`` and its one-line error, and no file.

Example entry (abridged)::

    {"format": "onnx", "precision": "int8", "status": "ok", "path": "model-int8.onnx",
     "sha256": "...", "bytes": 130759, "input": {"name": "input", "shape": [1, 3, 32, 32],
     "dtype": "float32", "layout": "NCHW", "quantization": null}, ...}
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from exporters.errors import ExportError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
LABELS_NAME = "labels.txt"

__all__ = ["LABELS_NAME", "MANIFEST_NAME", "SCHEMA_VERSION", "ArtifactEntry", "Manifest", "Source",
           "atomic_write_text", "file_record", "merge", "read_manifest", "sha256_of", "write_manifest"]


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: Path, root: Path) -> dict[str, Any]:
    """``{"path": relative to root, "sha256", "bytes"}`` of one file."""
    return {"path": path.relative_to(root).as_posix(), "sha256": sha256_of(path), "bytes": path.stat().st_size}


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temp file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the manifest ships with the artifacts
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class Source:
    """Where the exported network came from.

    Attributes:
        kind: "arch" (an ArchSpec, searched network), "baseline" or "module" (any nn.Module).
        name: run directory, baseline name or class name.
        arch_sha256: SHA-256 of the ArchSpec (kind "arch"), else None.
        weights: "preserved" (a search run's weights.pt), "fine-tuned" (a fine-tuning directory's), "random", or
            the weights file used.
        fine_tuned: where the weights were fine-tuned, when they were (``dir``, ``labels``, ``init``,
            ``holdout_acc``); None when unknown or never (a search's SSL weights: an untrained classifier).
    """

    kind: str = "module"
    name: str = ""
    arch_sha256: str | None = None
    weights: str = "unknown"
    fine_tuned: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArtifactEntry:
    """One artifact of the manifest (see the module docstring for the meaning of each field).

    ``providers``: onnxruntime's execution providers the artifact was measured on, in order (a deploy
    bundle's entry; empty in an export, which runs on the CPU provider).

    ``bytes`` is the total of all ``files`` (e.g. OpenVINO's .xml + .bin);
    ``sha256`` is that of the main file ``path``. A failed entry has
    ``status == "failed"``, ``error`` set and no path.
    """

    format: str
    precision: str
    status: str = "ok"
    runtime: str = ""
    providers: tuple[str, ...] = ()
    path: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    files: tuple[dict[str, Any], ...] = ()
    input: dict[str, Any] = field(default_factory=dict)
    normalisation: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    labels_file: str | None = None
    outputs: tuple[dict[str, Any], ...] = ()
    parity: dict[str, Any] | None = None
    export_time_s: float | None = None
    tool_versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    warning: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ("ok", "failed"):
            raise ExportError(f"artifact status must be 'ok' or 'failed', got {self.status!r}")

    @property
    def key(self) -> tuple[str, str]:
        return (self.format, self.precision)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactEntry:
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        for name in ("files", "labels", "outputs", "providers"):
            kwargs[name] = tuple(kwargs.get(name) or ())
        return cls(**kwargs)


@dataclass(frozen=True)
class Manifest:
    """All artifacts of one export directory.

    Attributes:
        artifacts: one entry per (format, precision), in export order.
        source: the network's origin; created: Unix time of the last write.
    """

    artifacts: tuple[ArtifactEntry, ...] = ()
    source: Source = Source()
    created: float = 0.0
    schema_version: int = SCHEMA_VERSION

    def get(self, fmt: str, precision: str) -> ArtifactEntry | None:
        return next((a for a in self.artifacts if a.key == (fmt, precision)), None)

    @property
    def failed(self) -> tuple[ArtifactEntry, ...]:
        return tuple(a for a in self.artifacts if a.status == "failed")

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "created": self.created, "source": self.source.to_dict(),
                "artifacts": [a.to_dict() for a in self.artifacts]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ExportError(f"manifest schema version {version!r} is not {SCHEMA_VERSION}")
        src = data.get("source") or {}
        return cls(tuple(ArtifactEntry.from_dict(a) for a in data.get("artifacts", [])),
                   Source(**{k: v for k, v in src.items() if k in Source.__dataclass_fields__}),
                   float(data.get("created", 0.0)), version)


def merge(old: Manifest, new: Manifest) -> Manifest:
    """``old`` with the entries of ``new`` added; an entry of the same (format, precision) is replaced.

    The source of ``new`` wins; old entries of a different source are dropped
    (their files describe another network).
    """
    same_source = old.source == new.source
    keep = [a for a in old.artifacts if same_source and new.get(*a.key) is None]
    return replace(new, artifacts=tuple(keep) + new.artifacts)


def write_manifest(manifest: Manifest, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/manifest.json`` (and ``labels.txt`` when there are labels), atomically.

    A manifest with ``created == 0`` is stamped with the current time.

    Returns:
        The manifest's path.
    """
    out = Path(out_dir)
    labels = next((a.labels for a in manifest.artifacts if a.labels), ())
    if labels:
        atomic_write_text(out / LABELS_NAME, "\n".join(labels) + "\n")
    if not manifest.created:
        manifest = replace(manifest, created=time.time())
    return atomic_write_text(out / MANIFEST_NAME, json.dumps(manifest.to_dict(), indent=2) + "\n")


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read a manifest from its file or from the export directory holding it.

    Raises:
        ExportError: missing, not JSON, or of another schema version (one line).
    """
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ExportError(f"no export manifest at {p}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportError(f"cannot read manifest {p}: {exc}") from None
    if not isinstance(data, dict):
        raise ExportError(f"manifest {p} is not a JSON object")
    try:
        return Manifest.from_dict(data)
    except TypeError as exc:
        raise ExportError(f"manifest {p} is malformed: {exc}") from None
