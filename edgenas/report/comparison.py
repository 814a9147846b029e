"""The "Device comparison" section of ``report.md``: what ``edgenas compare`` measured, as a table."""

from __future__ import annotations

__all__ = ["BEGIN", "END", "comparison_markdown"]

BEGIN, END = "<!-- edgenas compare: begin -->", "<!-- edgenas compare: end -->"


def comparison_markdown(records: list[dict], device: str, plot: str | None) -> str:
    """The report section: one row per measured artifact, sorted by model then format/precision."""
    ok = [r for r in records if "error" not in r]
    lines = [BEGIN, f"## Device comparison ({device})", "",
             "Every model exported the same way and measured on the same device with the same settings "
             "(`edgenas compare`). Latency in ms over the timed runs; accuracy on held-out labelled images "
             "when `--data` was given, with the weights measured: a search run's classifier and the "
             "baselines are untrained unless fine-tuned weights are given (`--weights MODEL=PATH`).", "",
             "| model | params | MACs | format | precision | threads | p50 ms | p90 ms | peak RSS MB | accuracy % |",
             "|---|---:|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in sorted(ok, key=lambda r: (str(r.get("model")), str(r.get("format")), str(r.get("precision")))):
        meta = r.get("meta") or {}
        acc = "-" if r.get("accuracy") is None else f"{r['accuracy']:.2f}"
        lines.append(f"| {r.get('model')} | {meta.get('params', 0):,} | {meta.get('macs', 0) / 1e6:.2f}M | "
                     f"{r['format']} | {r['precision']} | {r['threads']} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | "
                     f"{r['peak_rss_mb']:.0f} | {acc} |")
    failed = [r for r in records if "error" in r]
    if failed:
        lines += ["", "Failed: " + "; ".join(f"{r.get('model')} {r.get('format')}/{r.get('precision')}: "
                                             f"{r['error']}" for r in failed)]
    if plot:
        lines += ["", f"![accuracy vs latency]({plot})"]
    fp = {(r["fingerprint"] or {}).get("cpu") for r in ok if r.get("fingerprint")}
    if fp:
        lines += ["", f"Device CPU: {', '.join(sorted(str(c) for c in fp))}."]
    lines.append(END)
    return "\n".join(lines) + "\n"
