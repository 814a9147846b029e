"""One measurement of one artifact in its runtime: latency percentiles, load time, peak memory, accuracy.

``measure(path, ...)`` is the function behind ``edgenas bench`` and every sweep.
It runs in the process that calls it; peak memory (the RSS high-water mark) is
only meaningful in a fresh process, which is why the transports run each job
through :mod:`bench.worker` in a new process (locally or over SSH).

What is timed is the runtime's own inference call (:meth:`Runner.prepare`):
the input is converted (quantized for integer inputs) and bound once, then each
timed run is one call between two ``time.perf_counter_ns()`` readings. The same
loop around a no-op gives the harness overhead, reported in every record.

numpy and the runtimes only: never torch (this runs on the device).
"""

from __future__ import annotations

import hashlib
import math
import resource
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import ArtifactError, BenchError
from bench.fingerprint import fingerprint
from bench.runtimes.base import RUNTIMES, RunnerOptions, open_runner, runtime_for

__all__ = ["SCHEMA_VERSION", "MeasureConfig", "latency_stats", "measure", "peak_rss_mb", "preprocessing"]

#: version of the record layout (docs/architecture.md, "Bench record")
SCHEMA_VERSION = 1

@dataclass(frozen=True)
class MeasureConfig:
    """How many runs and on what.

    Attributes:
        warmup: untimed runs after the first (cold) run, to fill caches and let
            the runtime settle.
        runs: timed runs; the percentiles are over these.
        batch: batch size; None = the artifact's own (1 when its batch is dynamic).
        seed: seed of the random input.
        energy_seconds: length of the energy phase after the timed runs, where the device
            has a meter (:mod:`bench.energy`); 0: no energy phase.
    """

    warmup: int = 50
    runs: int = 300
    batch: int | None = None
    seed: int = 0
    energy_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise BenchError(f"warmup must be an int >= 0, got {self.warmup!r}")
        if not isinstance(self.runs, int) or self.runs < 1:
            raise BenchError(f"runs must be an int >= 1, got {self.runs!r}")
        if self.batch is not None and (not isinstance(self.batch, int) or self.batch < 1):
            raise BenchError(f"batch must be an int >= 1, got {self.batch!r}")
        if isinstance(self.energy_seconds, bool) or not isinstance(self.energy_seconds, (int, float)) \
                or not math.isfinite(self.energy_seconds) or self.energy_seconds < 0:
            raise BenchError(f"energy_seconds must be a number >= 0, got {self.energy_seconds!r}")


def peak_rss_mb() -> float:
    """This process's RSS high-water mark in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, the peak of this program's own
    memory map. ``ru_maxrss`` is not used there because Linux carries it over
    ``fork`` + ``exec``: a worker started by a parent that holds torch (800 MB)
    reported 834 MB for a model that needs 120. Elsewhere ``ru_maxrss``
    (KiB on Linux, bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def latency_stats(ns: np.ndarray) -> dict[str, float]:
    """min/p50/p90/p99/max/mean/std in milliseconds and the coefficient of variation of ``ns`` (nanoseconds)."""
    ms = np.asarray(ns, dtype=np.float64) / 1e6
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    return {
        "min_ms": round(float(ms.min()), 5),
        "p50_ms": round(p50, 5),
        "p90_ms": round(p90, 5),
        "p99_ms": round(p99, 5),
        "max_ms": round(float(ms.max()), 5),
        "mean_ms": round(mean, 5),
        "std_ms": round(std, 5),
        "cv": round(std / mean, 4) if mean > 0 else 0.0,
    }


def _time_calls(call, n: int) -> np.ndarray:
    """Nanoseconds of each of ``n`` calls of ``call``."""
    clock = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = clock()
        call()
        out[i] = clock() - t0
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(path: Path) -> list[Path]:
    """The artifact and its sidecar (an OpenVINO .xml's .bin)."""
    return [path, path.with_suffix(".bin")] if path.suffix.lower() == ".xml" else [path]


def _floats(value: Any) -> list[float] | None:
    if value is None or value == "":
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [float(v) for v in items]


def preprocessing(metadata: dict) -> dict[str, Any]:
    """Normalisation of an artifact's input from its metadata (any of our three formats).

    ONNX ``metadata_props`` and OpenVINO ``rt_info`` (keys under ``edgenas/``)
    hold comma-joined strings; the TFLite metadata JSON holds lists.

    Returns:
        ``{"mean": [...], "std": [...], "scale": float, "layout": "NCHW", "precision": str | None}``;
        mean/std None when the artifact does not say.
    """
    flat = {k.split("/", 1)[1] if k.startswith("edgenas/") else k: v for k, v in metadata.items()}
    scale = flat.get("input_scale_to_unit")
    return {
        "mean": _floats(flat.get("mean")),
        "std": _floats(flat.get("std")),
        "scale": float(scale) if scale not in (None, "") else 1 / 255,
        "layout": str(flat.get("input_layout") or "NCHW"),
        "precision": flat.get("precision") or None,
    }


def _energy(call, seconds: float) -> dict | None:
    """The energy phase (:mod:`bench.energy`): its record, or None where the device has no readable meter."""
    if seconds <= 0:
        return None
    from bench.energy import open_meter

    meter = open_meter()
    reading = meter.measure(call, seconds, idle_seconds=min(1.0, seconds / 2)) if meter is not None else None
    return reading.to_record() if reading is not None else None


def _accuracy(runner, data: Path, prep: dict, batch: int) -> tuple[float, int]:
    """Top-1 accuracy (%) of ``runner`` on a labelled ``.npz`` (``images`` uint8 NHWC, ``labels`` int)."""
    try:
        with np.load(data) as archive:
            images, labels = archive["images"], archive["labels"].astype(np.int64)
    except (OSError, ValueError, KeyError) as exc:
        raise BenchError(f"cannot read labelled data {data}: {exc}") from None
    if images.ndim != 4 or len(images) != len(labels) or len(images) == 0:
        raise BenchError(f"{data}: expected images [N,H,W,C] and N labels, got {images.shape} and {labels.shape}")
    if prep["mean"] is None or prep["std"] is None:
        raise BenchError(f"{runner.path.name} carries no mean/std metadata; cannot preprocess {data.name}")
    shape = runner.input_shape
    nchw = prep["layout"].upper() == "NCHW"
    want_hw = tuple(shape[2:4]) if nchw else tuple(shape[1:3])
    if tuple(images.shape[1:3]) != want_hw:
        raise BenchError(f"{data.name} holds {images.shape[1]}x{images.shape[2]} images; "
                         f"{runner.path.name} takes {want_hw[0]}x{want_hw[1]}")
    mean = np.asarray(prep["mean"], dtype=np.float32)
    std = np.asarray(prep["std"], dtype=np.float32)
    correct = 0
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch].astype(np.float32) * np.float32(prep["scale"])
        chunk = (chunk - mean) / std
        n = len(chunk)
        if n < batch:  # a static batch: pad the last chunk, count only the real images
            chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), np.float32)])
        if nchw:
            chunk = chunk.transpose(0, 3, 1, 2)
        logits = runner.run(np.ascontiguousarray(chunk))[0][:n]
        correct += int((logits.reshape(n, -1).argmax(1) == labels[start:start + n]).sum())
    return round(100.0 * correct / len(images), 3), len(images)


def measure(path: str | Path, runtime: str | None = None, options: RunnerOptions = RunnerOptions(),
            config: MeasureConfig = MeasureConfig(), data: str | Path | None = None,
            meta: dict | None = None) -> dict[str, Any]:
    """Measure one artifact: load time, cold first run, latency of timed runs, peak RSS, energy, accuracy.

    Args:
        path: ``.onnx``, ``.tflite`` or OpenVINO ``.xml`` (its ``.bin`` beside it).
        runtime: ``ort``/``litert``/``openvino``; default from the extension.
        options: threads, OpenVINO inference precision, runtime-specific settings.
        config: warm-up, timed runs, batch, input seed.
        data: optional labelled ``.npz`` (``images`` uint8 NHWC at the model's
            resolution, ``labels``); the artifact's own mean/std preprocess it.
        meta: free-form fields copied into the record (device name, model name, ...).

    Returns:
        One bench record (docs/architecture.md); latency figures carry their unit in the key.

    Raises:
        ArtifactError: missing/corrupt artifact, a batch its static shape cannot take.
        RuntimeMissingError / UnknownRuntimeError: the runtime is not there.
        BenchError: unreadable labelled data.
    """
    path = Path(path)
    name = runtime or runtime_for(path)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    finger = fingerprint()  # before loading: temperatures and clocks as the run begins

    t0 = time.perf_counter_ns()
    runner = open_runner(path, name, options)
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    with runner:
        shape = tuple(runner.input_shape)
        batch = config.batch or (shape[0] if shape[0] > 0 else 1)
        if shape[0] > 0 and batch != shape[0]:
            raise ArtifactError(f"{path.name} has a static batch of {shape[0]}; "
                                f"export it with a dynamic batch to measure batch {batch}")
        shape = (batch, *shape[1:])
        if any(s < 1 for s in shape):
            raise ArtifactError(f"{path.name} has a dynamic input shape {runner.input_shape} beyond the batch")
        x = np.random.default_rng(config.seed).standard_normal(shape).astype(np.float32)
        call = runner.prepare(x)

        first_ns = _time_calls(call, 1)[0]
        _time_calls(call, config.warmup)
        times = _time_calls(call, config.runs)
        overhead = _time_calls(lambda: None, max(config.runs, 100))
        rss = peak_rss_mb()  # before the labelled data is loaded, which is not the model's memory
        energy = _energy(call, config.energy_seconds)

        prep = preprocessing(runner.metadata)
        accuracy = samples = None
        if data is not None:
            accuracy, samples = _accuracy(runner, Path(data), prep, batch)
        stats = latency_stats(times)
        overhead_us = float(np.median(overhead)) / 1e3
        files = _files(path)
        record: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "timestamp": started,
            "fingerprint": finger,
            "runtime": name,
            "runtime_version": runner.version,
            "runtime_package": getattr(runner, "package", None),
            "providers": getattr(runner, "providers", None),
            "artifact": path.name,
            "artifact_sha256": _sha256(path),
            "artifact_bytes": sum(f.stat().st_size for f in files if f.is_file()),
            "format": RUNTIMES.get(name).format,
            "precision": prep["precision"] or runner.input_dtype,
            "inference_precision": getattr(runner, "inference_precision", None),
            "threads": options.threads,
            "options": {k: v for k, v in options.extra},
            "batch": batch,
            "input_shape": list(shape),
            "input_dtype": runner.input_dtype,
            "resolution": int(shape[2]) if prep["layout"].upper() == "NCHW" and len(shape) == 4 else int(shape[1]),
            "warmup": config.warmup,
            "runs": config.runs,
            "load_ms": round(load_ms, 3),
            "first_run_ms": round(first_ns / 1e6, 5),
            **stats,
            "overhead_us": round(overhead_us, 4),
            "overhead_pct": round(100 * overhead_us / 1e3 / stats["p50_ms"], 4) if stats["p50_ms"] else None,
            "peak_rss_mb": rss,
            "energy": energy,
            "accuracy": accuracy,
            "accuracy_samples": samples,
            "meta": dict(meta or {}),
        }
    if not all(math.isfinite(record[k]) for k in ("p50_ms", "mean_ms")):
        raise ArtifactError(f"{path.name}: timing produced non-finite figures")
    return record
