"""Sweep records: the resume key of a measurement, the records file, CSV and plots.

A sweep is a JSONL file of bench records (docs/architecture.md), appended one record per
finished measurement. A measurement is identified by :func:`key`; re-running a
sweep skips every key already in the file, failures included (they are records
too, with an ``error``), unless asked to retry them.

Host-side; stdlib + numpy, matplotlib only for the plots.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.files import atomic_write_text, read_jsonl

__all__ = ["CSV_COLUMNS", "KEY_FIELDS", "done_keys", "key", "pareto_front", "plot_records", "write_csv"]

#: what makes two measurements the same measurement
KEY_FIELDS = ("device", "model", "format", "precision", "resolution", "batch", "threads", "runtime",
              "inference_precision")

CSV_COLUMNS = ("device", "model", "format", "precision", "resolution", "batch", "threads", "runtime",
               "inference_precision", "params", "macs", "p50_ms", "p90_ms", "p99_ms", "min_ms", "mean_ms",
               "std_ms", "cv", "load_ms", "peak_rss_mb", "accuracy", "artifact_bytes", "artifact", "error",
               "timestamp")


def key(fields: dict[str, Any]) -> tuple:
    """The resume key of a planned measurement, or of a record (from its ``plan``: what was asked,
    e.g. inference precision None, rather than what the runtime reported, e.g. "f32")."""
    fields = fields.get("plan") or fields
    return tuple(None if fields.get(f) is None else str(fields.get(f)) for f in KEY_FIELDS)


def done_keys(path: str | Path, retry_failed: bool = False) -> set[tuple]:
    """Keys of the records already in ``path`` (failed ones left out when ``retry_failed``)."""
    return {key(r) for r in read_jsonl(path) if not (retry_failed and "error" in r)}


def _row(record: dict) -> dict:
    meta = record.get("meta") or {}
    row = {c: record.get(c, meta.get(c)) for c in CSV_COLUMNS}
    return row


def write_csv(records: Iterable[dict], path: str | Path) -> Path:
    """The records as CSV (one row each, :data:`CSV_COLUMNS`), written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for record in records:
        writer.writerow(_row(record))
    return atomic_write_text(path, buffer.getvalue())


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten by another with lower latency and higher accuracy ((latency, accuracy) pairs)."""
    front, best = [], float("-inf")
    for lat, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((lat, acc))
            best = acc
    return front


def plot_records(records: list[dict], out_dir: str | Path, title: str = "") -> list[Path]:
    """PNG plots of the successful records: p50 latency vs MACs, and accuracy vs latency where known.

    One marker per (model, format, precision, threads, batch, resolution); the
    accuracy plot draws the Pareto front. Returns the files written ([] without matplotlib).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return []
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ok = [r for r in records if "error" not in r and r.get("p50_ms")]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def label(r: dict) -> str:
        return f"{r.get('format')}/{r.get('precision')}"

    def series(rs: list[dict]) -> dict[str, list[dict]]:
        groups: dict[str, list[dict]] = {}
        for r in rs:
            groups.setdefault(label(r), []).append(r)
        return groups

    with_macs = [r for r in ok if (r.get("meta") or {}).get("macs")]
    if with_macs:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, rs in sorted(series(with_macs).items()):
            ax.scatter([r["meta"]["macs"] / 1e6 for r in rs], [r["p50_ms"] for r in rs], label=name, alpha=0.8)
        for r in with_macs:
            ax.annotate(f"{r.get('model')}@{r.get('resolution')} t{r.get('threads')}",
                        (r["meta"]["macs"] / 1e6, r["p50_ms"]), fontsize=6, alpha=0.7)
        ax.set(xscale="log", yscale="log", xlabel="MACs (millions)", ylabel="p50 latency (ms)",
               title=title or "latency vs MACs")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(plain)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(out_dir / "latency_vs_macs.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)

    with_acc = [r for r in ok if r.get("accuracy") is not None]
    if with_acc:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, rs in sorted(series(with_acc).items()):
            ax.scatter([r["p50_ms"] for r in rs], [r["accuracy"] for r in rs], label=name, alpha=0.8)
        for r in with_acc:
            ax.annotate(str(r.get("model")), (r["p50_ms"], r["accuracy"]), fontsize=7, alpha=0.8)
        front = pareto_front([(r["p50_ms"], r["accuracy"]) for r in with_acc])
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="k", lw=1, alpha=0.6,
                label="Pareto front")
        ax.set(xscale="log", xlabel="p50 latency (ms)", ylabel="top-1 accuracy (%)",
               title=title or "accuracy vs latency")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(out_dir / "accuracy_vs_latency.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written
