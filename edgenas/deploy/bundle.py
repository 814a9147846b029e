"""The deploy bundle: which measured artifact ships, and the folder an app takes it from.

:func:`choose` ranks the bench records of every (format, precision) of one
network on one device: the reference is the FP32 network's accuracy on the
same held-out images (PyTorch's, measured by the deploy on the host), an
artifact is eligible when its accuracy is within ``max_drop`` points of it,
and the fastest eligible one (median latency; the smaller file on a tie) wins.
:func:`write_bundle` writes the bundle folder all at once (a temporary sibling
renamed into place, so a failure leaves no partial bundle and an older bundle
stays whole until the new one replaces it)::

    BUNDLE/
      model-int8.tflite      the chosen artifact (and its sidecar files)
      manifest.json          its manifest entry (exporters.manifest), the same schema as export's
      labels.txt             one class name per output index
      predict.py             torch-free: python predict.py IMAGE
      README.md              the model card: figures, every candidate measured, why the winner won
      latency_accuracy.png   the candidates' accuracy against latency (with matplotlib)
      deploy.json            the choice and the table, as data
      example.png            the first held-out image the candidates were measured on (its class in the card)
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgenas.deploy.bundle_predict import engine_file
from edgenas.errors import EdgenasError

__all__ = ["BUNDLE_MARK", "EXAMPLE_NAME", "Candidate", "Choice", "NoArtifactError", "choose", "model_card",
           "write_bundle"]

BUNDLE_MARK = "deploy.json"  # the file that says a folder is a bundle (and may be replaced by a newer one)
PLOT_NAME = "latency_accuracy.png"
EXAMPLE_NAME = "example.png"


class NoArtifactError(EdgenasError):
    """No measured artifact meets ``--max-drop`` (or none could be measured); ``choice`` holds the table."""

    def __init__(self, message: str, choice: Choice) -> None:
        super().__init__(message)
        self.choice = choice


@dataclass(frozen=True)
class Candidate:
    """One (format, precision) of the deployment: its bench record and what the choice made of it.

    ``verdict``: "chosen", "eligible" (within the drop, slower), "too inaccurate", "failed" or "no accuracy".
    """

    format: str
    precision: str
    record: dict
    verdict: str = ""
    drop: float | None = None

    @property
    def ok(self) -> bool:
        return "error" not in self.record

    def row(self) -> dict[str, Any]:
        """The candidate as one flat row (deploy.json, --json, the card's table)."""
        r = self.record
        if not self.ok:
            return {"format": self.format, "precision": self.precision, "verdict": self.verdict,
                    "error": r.get("error")}
        return {"format": self.format, "precision": self.precision, "verdict": self.verdict,
                "artifact": r.get("artifact"), "kib": round(r["artifact_bytes"] / 1024, 1),
                "runtime": f"{r.get('runtime')} {r.get('runtime_version')}", "threads": r.get("threads"),
                "p50_ms": r.get("p50_ms"), "p90_ms": r.get("p90_ms"), "p99_ms": r.get("p99_ms"),
                "peak_rss_mb": r.get("peak_rss_mb"), "accuracy": r.get("accuracy"),
                "accuracy_samples": r.get("accuracy_samples"),
                "drop_points": None if self.drop is None else round(self.drop, 3),
                "mj_per_inference": (r.get("energy") or {}).get("mj_per_inference")}


@dataclass(frozen=True)
class Choice:
    """Every candidate with its verdict, the FP32 reference accuracy, the drop allowed and the winner (or None)."""

    candidates: tuple[Candidate, ...]
    reference: float | None
    max_drop: float
    reason: str
    winner: Candidate | None = None

    def ordered(self) -> list[Candidate]:
        """The candidates fastest first, failures last (the card's and the command's tables)."""
        return sorted(self.candidates, key=lambda c: (not c.ok, c.record.get("p50_ms") or 0))

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": self.winner.row() if self.winner else None, "reason": self.reason,
                "reference_accuracy": self.reference, "max_drop_points": self.max_drop,
                "candidates": [c.row() for c in self.candidates]}


def _points(value: float) -> str:
    return f"{value:.2f} points" if abs(value - round(value)) > 1e-9 else f"{value:g} point{'' if value == 1 else 's'}"


def _speed(c: Candidate) -> tuple[float, int]:
    return (c.record["p50_ms"], c.record.get("artifact_bytes") or 0)


def choose(records: list[dict], max_drop: float, reference: float | None = None) -> Choice:
    """Rank the records of one network on one device (one per format x precision, failures included).

    ``reference`` is the FP32 accuracy to hold the artifacts to: the PyTorch
    network's on the same images (:func:`edgenas.deploy.deploy.run_deploy` measures
    it); without it, the best FP32 accuracy measured, else the best of any record.
    Artifacts within ``max_drop`` points of it are eligible; the one with the
    lowest median latency wins (the smaller file on a tie).
    """
    def key(r: dict) -> tuple[str, str]:
        plan = r.get("plan") or {}
        # the plan's format first: a failed TensorRT measurement's record names the ONNX file it was given
        return (plan.get("format") or r.get("format") or "?", plan.get("precision") or r.get("precision") or "?")

    ok = [r for r in records if "error" not in r]
    measured = [r for r in ok if r.get("accuracy") is not None]
    fp32 = [r["accuracy"] for r in measured if key(r)[1] == "fp32"]
    if reference is None:
        reference = max(fp32) if fp32 else (max(r["accuracy"] for r in measured) if measured else None)
    candidates = []
    for r in records:
        fmt, prec = key(r)
        if "error" in r:
            candidates.append(Candidate(fmt, prec, r, "failed"))
        elif r.get("accuracy") is None or reference is None:
            candidates.append(Candidate(fmt, prec, r, "no accuracy"))
        else:
            drop = reference - r["accuracy"]
            candidates.append(Candidate(fmt, prec, r, "eligible" if drop <= max_drop + 1e-9 else "too inaccurate",
                                        drop))
    eligible = [c for c in candidates if c.verdict == "eligible"]
    if not eligible:
        if not ok:
            reason = "no artifact could be measured"
        elif reference is None:
            reason = "no accuracy was measured (no labelled hold-out)"
        else:
            reason = f"no artifact is within {_points(max_drop)} of the FP32 accuracy {reference:.2f}%"
        return Choice(tuple(candidates), reference, max_drop, reason)
    best = min(eligible, key=_speed)
    winner = Candidate(best.format, best.precision, best.record, "chosen", best.drop)
    candidates = [winner if c is best else c for c in candidates]
    others = sorted((c for c in eligible if c is not best), key=_speed)
    reason = (f"{best.format} {best.precision} is the fastest of the {len(eligible)} artifacts within "
              f"{_points(max_drop)} of the FP32 accuracy ({reference:.2f}%): p50 {best.record['p50_ms']:.3f} ms")
    if others:
        runner_up = others[0]
        reason += (f", {runner_up.record['p50_ms'] / best.record['p50_ms']:.2f}x faster than the next, "
                   f"{runner_up.format} {runner_up.precision} ({runner_up.record['p50_ms']:.3f} ms)")
    faster = sorted((c for c in candidates if c.verdict == "too inaccurate" and _speed(c) < _speed(best)), key=_speed)
    if faster:
        reason += "; faster but too inaccurate: " + ", ".join(
            f"{c.format} {c.precision} ({c.record['p50_ms']:.3f} ms, {_points(c.drop)} lost)" for c in faster)
    return Choice(tuple(candidates), reference, max_drop, reason, winner)


def _fmt(value, spec: str, none: str = "-") -> str:
    return none if value is None else format(value, spec)


def candidates_table(choice: Choice) -> str:
    """The candidates as a Markdown table, fastest first, failures last."""
    energy = any(c.ok and c.record.get("energy") for c in choice.candidates)
    lines = ["| format | precision | p50 ms | p90 ms | p99 ms | peak RSS MB | accuracy % | drop | KiB | "
             + ("mJ/inference | " if energy else "") + "verdict |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | " + ("---: | " if energy else "")
             + "--- |"]
    for c in choice.ordered():
        row = c.row()
        if not c.ok:
            reason = " ".join(str(row.get("error") or "").split())[:120]
            lines.append(f"| {c.format} | {c.precision} | - | - | - | - | - | - | - | " + ("- | " if energy else "")
                         + f"failed: {reason} |")
            continue
        verdict = f"**{c.verdict}**" if c.verdict == "chosen" else c.verdict
        lines.append(f"| {c.format} | {c.precision} | {_fmt(row['p50_ms'], '.3f')} | {_fmt(row['p90_ms'], '.3f')} | "
                     f"{_fmt(row['p99_ms'], '.3f')} | {_fmt(row['peak_rss_mb'], '.0f')} | "
                     f"{_fmt(row['accuracy'], '.2f')} | {_fmt(row['drop_points'], '+.2f')} | {row['kib']:.0f} | "
                     + (f"{_fmt(row['mj_per_inference'], '.3f')} | " if energy else "") + f"{verdict} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class CardFacts:
    """What the model card says besides the choice."""

    name: str
    device: str
    device_address: str
    run: str
    params: int
    macs: int
    resolution: int
    source: dict = field(default_factory=dict)
    entry: dict = field(default_factory=dict)
    plot: bool = False
    example: str | None = None  # the class of example.png


def _energy_line(energy: dict | None) -> str:
    if not energy:
        return "not measured (the device exposes no readable power meter)"
    active = energy.get("active_mj_per_inference")
    return (f"{energy['mj_per_inference']:.3f} mJ per inference at {energy['power_w']:.2f} W"
            + (f" ({active:.3f} mJ above idle)" if active is not None else "") + f", {energy['scope']}")


def model_card(facts: CardFacts, choice: Choice) -> str:
    """The bundle's README.md."""
    w = choice.winner.row()
    record = choice.winner.record
    entry = facts.entry
    tuned = facts.source.get("fine_tuned") or {}
    trained = (f"fine-tuned ({tuned.get('init')} start, {tuned.get('labels')} of {tuned.get('data')}, "
               f"{tuned.get('holdout_acc')}% on its hold-out; {tuned.get('dir')})" if tuned
               else f"{facts.source.get('weights', 'unknown')} weights: the classifier was never fine-tuned")
    inp = entry.get("input", {})
    norm = entry.get("normalisation", {})
    quant = inp.get("quantization")
    out = (entry.get("outputs") or [{}])[0]
    fingerprint = record.get("fingerprint") or {}
    cpu = fingerprint.get("cpu") or fingerprint.get("cpu_model") or ""
    lines = [
        f"# {facts.name}: {w['format']} {w['precision']} for {facts.device}",
        "",
        f"Chosen by `edgenas deploy` on {time.strftime('%Y-%m-%d %H:%M', time.localtime())} from `{facts.run}`, "
        f"by measuring every candidate on {facts.device} ({facts.device_address}{', ' + cpu if cpu else ''}).",
        "",
        "| | |",
        "| --- | --- |",
        f"| artifact | `{entry.get('path')}` ({entry.get('bytes', 0) / 1024:.0f} KiB, "
        f"sha256 `{entry.get('sha256', '')[:16]}…`) |",
        f"| runtime | {w['runtime']}, {w['threads']} thread(s) |",
        f"| parameters | {facts.params:,} |",
        f"| MACs | {facts.macs / 1e6:.2f}M at {facts.resolution}x{facts.resolution} |",
        f"| accuracy | {w['accuracy']:.2f}% on {w['accuracy_samples']} labelled held-out images "
        f"(the FP32 network: {choice.reference:.2f}%) |",
        f"| latency | p50 {w['p50_ms']:.3f} ms, p90 {w['p90_ms']:.3f} ms, p99 {w['p99_ms']:.3f} ms (batch 1) |",
        f"| peak memory | {_fmt(w['peak_rss_mb'], '.0f')} MB resident, the whole measuring process |",
        f"| energy | {_energy_line(record.get('energy'))} |",
        f"| weights | {trained} |",
        "",
        "## Why this artifact",
        "",
        choice.reason + ".",
        "",
        "## Every candidate, measured on the device",
        "",
        candidates_table(choice),
        "",
    ]
    if facts.plot:
        lines += [f"![accuracy against latency]({PLOT_NAME})", ""]
    lines += [
        "## Use it",
        "",
        "```bash",
        "python predict.py IMAGE        # the top label and its score; --top 5, --json",
        "```",
        "",
        *([f"`{EXAMPLE_NAME}` is a held-out image of class `{facts.example}` (one the candidates were measured "
           f"on): `python predict.py {EXAMPLE_NAME}`.", ""] if facts.example else []),
        f"`predict.py` needs numpy, Pillow and the runtime "
        f"({record.get('runtime_package') or w['runtime'].split()[0]}"
        + (" and polygraphy; its first run builds the TensorRT engine for the GPU it runs on and keeps it as "
           f"`{engine_file(entry.get('path') or 'model.onnx').name}` beside it"
           if entry.get("runtime") == "tensorrt" else "")
        + "); never torch. Its "
        "preprocessing is the manifest's, which an app must repeat:",
        "",
        f"1. RGB, a centre square crop, a bilinear resize to {facts.resolution}x{facts.resolution};",
        f"2. `x = (pixel * {norm.get('scale', 1 / 255):.6g} - mean) / std` per channel, mean "
        f"`{norm.get('mean')}`, std `{norm.get('std')}`;",
        f"3. layout {inp.get('layout')}, shape `{inp.get('shape')}`, dtype {inp.get('dtype')}"
        + (f", quantized as `round(x / {quant['scale']:.6g}) + {quant['zero_point']}`" if quant else "") + ";",
        f"4. output `{out.get('name')}`: {out.get('meaning', 'logits')} of `{out.get('shape')}`"
        + (f" ({out.get('dtype')}, dequantize as `(q - {out['quantization']['zero_point']}) * "
           f"{out['quantization']['scale']:.6g}`)" if out.get("quantization") else "")
        + "; class names in `labels.txt`, one per output index.",
        "",
        "`manifest.json` holds all of it as data, with the parity check against PyTorch.",
        "",
    ]
    return "\n".join(lines)


def plot_choice(choice: Choice, path: Path, title: str) -> bool:
    """Accuracy against median latency of every measured candidate, the winner marked; False without matplotlib."""
    from edgenas.report.figures import pyplot, save_figure

    plt = pyplot()
    points = [c for c in choice.candidates if c.ok and c.record.get("accuracy") is not None]
    if plt is None or not points:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, c in enumerate(sorted(points, key=lambda c: c.record["p50_ms"])):
        colour = {"chosen": "tab:green", "eligible": "tab:blue"}.get(c.verdict, "tab:red")
        ax.scatter(c.record["p50_ms"], c.record["accuracy"], s=90 if c.verdict == "chosen" else 40, color=colour,
                   marker="*" if c.verdict == "chosen" else "o", zorder=3)
        ax.annotate(f"{c.format}/{c.precision}", (c.record["p50_ms"], c.record["accuracy"]),
                    textcoords="offset points", xytext=(5, 4 if i % 2 == 0 else -11), fontsize=8)
    if choice.reference is not None:
        ax.axhline(choice.reference - choice.max_drop, color="grey", linestyle="--", linewidth=1,
                   label=f"FP32 {choice.reference:.2f}% - {_points(choice.max_drop)}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("median latency (ms, batch 1)")
    ax.set_ylabel("accuracy on the hold-out (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def _is_bundle(path: Path) -> bool:
    return (path / BUNDLE_MARK).is_file()


def check_bundle_target(out: Path) -> None:
    """Refuse an ``out`` that holds something other than an earlier bundle (it would be replaced).

    Raises:
        OutputError: ``out`` is a file, or a non-empty folder without deploy.json.
    """
    from edgenas.outputs import OutputError

    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not _is_bundle(out):
        raise OutputError(f"{out} exists and is not an edgenas bundle (no {BUNDLE_MARK}); give --out another folder")


def write_bundle(out: Path, export_dir: Path, manifest, choice: Choice, facts: CardFacts,
                 extra: dict[str, Any], example: tuple | None = None) -> Path:
    """Write the bundle of ``choice.winner`` (an artifact of the export ``manifest`` in ``export_dir``) to ``out``.

    ``example``: (uint8 HWC image, its class name), written as ``example.png``.

    The folder is assembled as a hidden sibling and renamed into place; an earlier
    bundle at ``out`` is replaced only once the new one is complete.
    """
    from dataclasses import replace

    from edgenas.deploy import bundle_predict
    from exporters.manifest import LABELS_NAME, Manifest, atomic_write_text, write_manifest

    check_bundle_target(out)
    record = choice.winner.record
    entry = next(a for a in manifest.artifacts if a.sha256 == record.get("artifact_sha256"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for f in entry.files:
            shutil.copy2(export_dir / f["path"], tmp / Path(f["path"]).name)
        labels = entry.labels
        if not labels:  # an app still needs one line per output index
            labels = tuple(str(i) for i in range(int(entry.outputs[0]["shape"][-1]) if entry.outputs else 0))
        # the runtime that was measured ("tensorrt" for an ONNX file that predict.py builds into an engine) and
        # onnxruntime's providers, so that predict.py runs the artifact as it was measured
        entry = replace(entry, labels=tuple(labels), labels_file=LABELS_NAME,
                        files=tuple({**f, "path": Path(f["path"]).name} for f in entry.files),
                        path=Path(entry.path).name, runtime=record.get("runtime") or entry.runtime,
                        providers=tuple(record.get("providers") or ()))
        write_manifest(Manifest((entry,), manifest.source), tmp)
        shutil.copyfile(bundle_predict.__file__, tmp / "predict.py")
        os.chmod(tmp / "predict.py", 0o755)
        if example is not None:
            from PIL import Image

            Image.fromarray(example[0]).save(tmp / EXAMPLE_NAME)
            facts = replace(facts, example=example[1])
        facts = replace(facts, entry=entry.to_dict(), source=manifest.source.to_dict(),
                        plot=plot_choice(choice, tmp / PLOT_NAME, f"{facts.name} on {facts.device}"))
        atomic_write_text(tmp / "README.md", model_card(facts, choice))
        atomic_write_text(tmp / BUNDLE_MARK, json.dumps({**extra, **choice.to_dict(), "created": time.time()},
                                                        indent=2) + "\n")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out
