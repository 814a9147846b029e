"""What to measure: artifacts named on the command line, export manifests, run directories -> jobs.

Host-side and stdlib only (it reads JSON; it never loads a model). Each
:class:`Target` is one artifact with what the manifest says about it; jobs are
built by :func:`bench.worker.make_job` from a target plus the measurement options.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import ArtifactError
from bench.runtimes.base import known_extensions

__all__ = ["Target", "resolve_targets"]


@dataclass(frozen=True)
class Target:
    """One artifact to measure.

    Attributes:
        path: the .onnx/.tflite/.xml file.
        model: the model's name (the manifest's source name, else the file's stem).
        format, precision: from the manifest (None for a bare file: the record reads them from the artifact).
        resolution: input side in pixels when known without loading the artifact.
        info: manifest facts kept in the record's ``meta`` (parity accuracy, source, ...).
    """

    path: Path
    model: str
    format: str | None = None
    precision: str | None = None
    resolution: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _manifest_targets(manifest_path: Path) -> list[Target]:
    try:
        manifest = json.loads(manifest_path.read_text())
        artifacts = manifest["artifacts"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{manifest_path} is not an export manifest: {exc}") from None
    source = manifest.get("source") or {}
    model = source.get("name") or manifest_path.parent.name
    targets = []
    folder = manifest_path.parent.resolve()
    for entry in artifacts:
        if entry.get("status") != "ok":
            continue
        path = (folder / str(entry.get("path", ""))).resolve()
        if folder not in path.parents:  # a manifest only names its own folder's files (no ../, no /abs)
            raise ArtifactError(f"{manifest_path} names an artifact outside its folder ({entry.get('path')!r}); "
                                "refusing to read or upload it")
        shape = (entry.get("input") or {}).get("shape") or []
        parity = entry.get("parity") or {}
        targets.append(Target(
            path=path, model=model, format=entry.get("format"),
            precision=entry.get("precision"), resolution=int(shape[-1]) if len(shape) == 4 else None,
            info={"source": source, "parity_accuracy": parity.get("accuracy"),
                  "parity_top1_agreement": parity.get("top1_agreement")}))
    if not targets:
        raise ArtifactError(f"{manifest_path} lists no successfully exported artifact")
    return targets


def resolve_targets(items: list[str], formats: set[str] | None = None,
                    precisions: set[str] | None = None) -> list[Target]:
    """Targets of each item: an artifact file, a manifest.json, an export directory or a run directory.

    Args:
        items: paths as typed by the user.
        formats, precisions: keep only these (manifest entries; a bare file is always kept).

    Raises:
        ArtifactError: a path that does not exist, an unknown file type, a manifest without artifacts,
            or nothing left after filtering.
    """
    targets: list[Target] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            for candidate in (path / "manifest.json", path / "exports" / "manifest.json"):
                if candidate.is_file():
                    targets += _manifest_targets(candidate)
                    break
            else:
                raise ArtifactError(f"{path} holds no manifest.json or exports/manifest.json; "
                                    f"export it first (edgenas export {path})")
        elif path.name.endswith(".json") and path.is_file():
            targets += _manifest_targets(path)
        elif path.is_file():
            if path.suffix.lower() not in known_extensions():
                raise ArtifactError(f"{path}: unknown model format {path.suffix or '(none)'} "
                                    f"(known: {', '.join(sorted(known_extensions()))}, or a manifest.json)")
            targets.append(Target(path=path, model=path.stem))
        else:
            raise ArtifactError(f"{path} does not exist")
    kept = [t for t in targets if (t.format is None or not formats or t.format in formats)
            and (t.precision is None or not precisions or t.precision in precisions)]
    if not kept:
        raise ArtifactError("no artifact left to measure after the --format/--precision filters")
    return kept
