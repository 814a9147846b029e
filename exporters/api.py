"""``exporters.export``: freeze once, then export, verify and list every (format, precision) artifact.

Each artifact is written in a staging directory inside ``out_dir``, loaded in
its runtime for the parity check there, and only then moved into ``out_dir``
by atomic renames; the manifest is rewritten (atomically) after every artifact,
so an interruption never leaves a half-written file or an unlisted artifact.
One artifact's failure is recorded and the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from exporters.base import Exporter, check_precision, get_exporter, publish, staging
from exporters.errors import ArtifactsFailedError, ExportError, MissingDependencyError, UnsupportedError
from exporters.freeze import freeze
from exporters.manifest import (
    LABELS_NAME,
    ArtifactEntry,
    Manifest,
    Source,
    file_record,
    merge,
    read_manifest,
    write_manifest,
)
from exporters.parity import check_parity
from exporters.spec import PRECISIONS, InputSpec

#: random parity inputs used when none are given (seeded standard normal, already "normalised")
DEFAULT_PARITY_SAMPLES = 32

__all__ = ["DEFAULT_PARITY_SAMPLES", "export", "parse_names", "validate_request"]


def parse_names(names: str | Sequence[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    """``"onnx,tflite"`` or ``["onnx", "tflite"]`` -> ``("onnx", "tflite")``, validated, order kept, no repeats.

    Raises:
        UnsupportedError: empty, or a name not in ``known`` (the known ones are listed).
    """
    items = names.split(",") if isinstance(names, str) else list(names)
    out = tuple(dict.fromkeys(n.strip().lower() for n in items if n.strip()))
    if not out:
        raise UnsupportedError(f"no {what} given (known: {', '.join(known)})")
    unknown = [n for n in out if n not in known]
    if unknown:
        raise UnsupportedError(f"unknown {what} {', '.join(map(repr, unknown))} (known: {', '.join(known)})")
    return out


def validate_request(formats: str | Sequence[str], precisions: str | Sequence[str]) -> tuple[tuple[str, ...],
                                                                                    tuple[str, ...]]:
    """Check format and precision names, and each format's support of each precision, without exporting.

    Returns:
        (formats, precisions) as tuples of names.

    Raises:
        UnsupportedError: an unknown name, or a precision a (loadable) format does not support.
    """
    from exporters.spec import FORMATS

    fmts = parse_names(formats, FORMATS, "format")
    precs = parse_names(precisions, PRECISIONS, "precision")
    for exporter in _load_exporters(fmts).values():
        if isinstance(exporter, Exporter):
            for prec in precs:
                check_precision(exporter, prec)
    return fmts, precs


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_exporters(formats: tuple[str, ...]) -> dict[str, Exporter | ExportError]:
    """Exporter per format; a format whose module cannot be imported maps to the error (recorded per artifact)."""
    out: dict[str, Exporter | ExportError] = {}
    for fmt in formats:
        try:
            out[fmt] = get_exporter(fmt)
        except ImportError as exc:
            out[fmt] = MissingDependencyError(f"the {fmt} exporter cannot be loaded: {_one_line(exc)}")
    return out


def export(model, spec: InputSpec, formats: str | Sequence[str], precisions: str | Sequence[str],
           out_dir: str | Path, calib: np.ndarray | None = None, parity_inputs: np.ndarray | None = None,
           parity_labels: np.ndarray | None = None, source: Source | None = None,
           strict_parity: bool = True) -> Manifest:
    """Freeze ``model`` and export it to every format x precision, each artifact verified and listed.

    Args:
        model: ``nn.Module`` mapping ``[N, C, H, W]`` float32 (normalised) to ``[N, classes]`` logits.
        spec: the input spec (shape, normalisation, names, labels, dynamic batch).
        formats, precisions: names or comma-joined strings, e.g. ``"onnx,tflite"``, ``("fp32", "int8")``.
        out_dir: the export directory (created); an existing manifest there is merged.
        calib: INT8: ``[N, C, H, W]`` float32 normalised calibration inputs from the training data.
        parity_inputs: ``[M, C, H, W]`` float32 held-out inputs (default: 32 seeded random normal ones).
        parity_labels: ``[M]`` integer labels of ``parity_inputs`` (adds accuracy figures).
        source: where the model came from (recorded; default: its class name).
        strict_parity: an FP32 artifact below 99.9% top-1 agreement fails (else it is listed with a warning).

    Returns:
        The manifest as written to ``out_dir/manifest.json``.

    Raises:
        UnsupportedError: unknown format or precision, a precision a format does not support,
            or INT8 without calibration inputs; raised before anything is written.
        ConversionError: the model cannot be frozen or run on the spec's input.
        ArtifactsFailedError: some artifacts failed; ``.manifest`` lists them and the successes.
    """
    fmts, precs = validate_request(formats, precisions)
    if "int8" in precs and (calib is None or len(calib) == 0):
        raise UnsupportedError("INT8 export needs calibration inputs (calib)")
    by_format = _load_exporters(fmts)

    out = Path(out_dir)
    frozen = freeze(model)
    classes = _output_classes(frozen, spec)
    source = source or Source(kind="module", name=type(model).__name__)
    origin = "supplied" if parity_inputs is not None else "random normal (seed 0)"
    if parity_inputs is None:
        rng = np.random.default_rng(0)
        parity_inputs = rng.standard_normal((DEFAULT_PARITY_SAMPLES, *spec.shape[1:])).astype(np.float32)
        parity_labels = None
    try:
        previous = read_manifest(out)
    except ExportError:
        previous = Manifest()
    if previous.source != source:
        # Another network's artifacts: the manifest must describe this one only, so its files go.
        for entry in previous.artifacts:
            _remove_stale(entry, out)
        previous = Manifest()

    entries: list[ArtifactEntry] = []
    for fmt in fmts:
        for prec in precs:
            exporter = by_format[fmt]
            try:
                if isinstance(exporter, ExportError):
                    raise exporter
                entry = _export_one(exporter, frozen, spec, prec, out, calib, (parity_inputs, parity_labels, origin),
                                    classes, strict_parity)
            except (ExportError, *_RUNTIME_ERRORS) as exc:
                entry = _failed(fmt, prec, exc)
            if entry.status == "failed":
                _remove_stale(previous.get(fmt, prec), out)
            entries.append(entry)
            manifest = merge(previous, Manifest(tuple(entries), source, created=time.time()))
            write_manifest(manifest, out)
    failed = [e for e in entries if e.status == "failed"]
    if failed:
        causes = "; ".join(f"{e.format}/{e.precision}: {e.error}" for e in failed)
        raise ArtifactsFailedError(f"{len(failed)} of {len(entries)} artifacts failed: {causes}", manifest)
    return manifest


def _runtime_errors() -> tuple[type[BaseException], ...]:
    from bench.errors import BenchError

    # BenchError: the runner could not load or run the artifact. The builtin ones: a
    # converter that leaked its own error; the artifact is recorded as failed either way.
    return (BenchError, RuntimeError, ValueError, TypeError, NotImplementedError, OSError, ImportError)


_RUNTIME_ERRORS = _runtime_errors()


def _failed(fmt: str, prec: str, exc: BaseException) -> ArtifactEntry:
    from bench.errors import BenchError

    cause = _one_line(exc)
    if not isinstance(exc, (ExportError, BenchError)):  # a leaked converter error: name its type
        cause = f"{type(exc).__name__}: {cause}"
    return ArtifactEntry(format=fmt, precision=prec, status="failed", error=cause[:500])


def _remove_stale(entry: ArtifactEntry | None, out: Path) -> None:
    """Delete the files of an earlier successful export of the same (format, precision): they are outdated."""
    if entry is None or entry.status != "ok":
        return
    root = out.resolve()
    for f in entry.files:
        path = (out / f["path"]).resolve()
        if path.parent == root:  # never follow a manifest's path outside the export directory
            path.unlink(missing_ok=True)


def _output_classes(frozen, spec: InputSpec) -> int:
    import torch

    from exporters.errors import ConversionError

    try:
        with torch.inference_mode():
            y = frozen(torch.zeros(spec.shape))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ConversionError(f"the model does not run on input {spec.shape}: {_one_line(exc)}") from None
    if y.ndim != 2 or y.shape[0] != spec.shape[0]:
        raise ConversionError(f"the model must return [N, classes] logits, got shape {tuple(y.shape)}")
    if spec.labels and len(spec.labels) != y.shape[1]:
        raise ConversionError(f"{len(spec.labels)} labels for {y.shape[1]} outputs")
    return int(y.shape[1])


def _export_one(exporter: Exporter, frozen, spec: InputSpec, prec: str, out: Path, calib,
                parity_set: tuple[np.ndarray, np.ndarray | None, str], classes: int,
                strict_parity: bool) -> ArtifactEntry:
    """Export, check and publish one artifact; ``parity_set`` is (inputs, labels or None, where they came from)."""
    from bench.runtimes import open_runner

    parity_inputs, parity_labels, origin = parity_set
    stem = f"model-{prec}"
    with staging(out) as stage:
        start = time.perf_counter()
        files = exporter.export(frozen, spec, prec, stage, stem, calib=calib if prec == "int8" else None)
        seconds = time.perf_counter() - start
        with open_runner(files[0], exporter.runtime) as runner:
            parity = check_parity(frozen, runner, parity_inputs, parity_labels, prec, strict=strict_parity)
            parity["inputs"] = origin
            io = {"name": runner.input_name, "shape": list(runner.input_shape), "dtype": runner.input_dtype,
                  "layout": getattr(exporter, "layout", "NCHW"), "dynamic_batch": spec.dynamic_batch}
            quant = runner.input_quantization
            io["quantization"] = {"scale": quant[0], "zero_point": quant[1]} if quant else None
            # an integer output (TFLite INT8) needs its scale and zero point in the app
            out_dtype = (getattr(runner, "output_dtypes", None) or ["float32"])[0]
            out_quant = (getattr(runner, "output_quantization", None) or [None])[0]
            versions = {**exporter.tool_versions(), f"runtime:{runner.name}": runner.version}
        published = publish(files, out)
    records = [file_record(p, out) for p in published]
    batch = -1 if spec.dynamic_batch else spec.shape[0]
    return ArtifactEntry(
        format=exporter.format, precision=prec, runtime=exporter.runtime,
        path=records[0]["path"], sha256=records[0]["sha256"], bytes=sum(r["bytes"] for r in records),
        files=tuple(records), input=io,
        normalisation={"mean": list(spec.mean), "std": list(spec.std), "scale": spec.scale,
                       "formula": "(pixel * scale - mean) / std", "pixel_range": [0, 255], "channels": "RGB",
                       "resize": "centre square crop, then bilinear to the input's height and width"},
        labels=tuple(spec.labels), labels_file=LABELS_NAME if spec.labels else None,
        outputs=({"name": spec.output_name, "meaning": "logits", "shape": [batch, classes],
                  "dtype": out_dtype,
                  "quantization": {"scale": out_quant[0], "zero_point": out_quant[1]} if out_quant else None},),
        parity=parity, export_time_s=round(seconds, 4), tool_versions=versions, warning=parity.get("warning"),
    )
