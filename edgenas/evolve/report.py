"""The evolution run's section of ``report.md`` and ``plots/evolution.png`` (loss, size and every mutation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgenas.rundir import read_jsonl
from edgenas.space.evolved import EvolvedSpec

__all__ = ["evolution_section", "write_evolution_plot"]


def evolution_section(run_dir: Path, spec: EvolvedSpec, summary: dict[str, Any]) -> list[str]:
    """Markdown lines: summary, the grown network, the mutation history."""
    lines = [
        "| | |", "|---|---|",
        f"| strategy | evolve, SSL {summary['ssl']} |",
        f"| target | {summary.get('target') or '-'} |",
        f"| data | {summary['data']} ({summary['images']} images, labels unused) |",
        f"| params | {summary['params']:,} (budget {summary['max_params']:,}) |",
        f"| MACs at {spec.resolution}x{spec.resolution} | {summary['macs'] / 1e6:.2f}M "
        f"(budget {summary['max_macs'] / 1e6:.1f}M) |",
        f"| mutations | {summary['mutations_accepted']} kept of {summary['mutation_rounds']} rounds |",
        f"| epochs / steps | {summary['epochs']} / {summary['steps']} |",
        f"| wall time | {summary['elapsed_s']:.1f} s on {summary['device']} |",
    ]
    from edgenas.search.report import _latency_lines

    lines += _latency_lines(summary)
    lines += [f"| arch sha256 | `{summary['arch_sha256'][:16]}` |", "", "## Network", "",
              f"Stem: 3x3 conv to {spec.stem_channels} channels.", "",
              "| block | in | hidden | out | stride | kernel | residual |", "|---:|---:|---:|---:|---:|---:|---|"]
    for i, (c_in, b) in enumerate(zip(spec.inputs(), spec.blocks)):
        lines.append(f"| {i} | {c_in} | {b.hidden} | {b.out} | {b.stride} | {b.kernel} | "
                     f"{'yes' if spec.residual(i) else 'no'} |")
    events = read_jsonl(run_dir / "evolution.jsonl")
    rounds = [e for e in events if e.get("event") == "mutation"]
    if rounds:
        lines += ["", "## Mutations", "",
                  "Each round tried the most sensitive place of each kind for a few steps next to the unchanged "
                  "network; fitness is `-loss / loss_unchanged - cost_weight * cost`.", "",
                  "| step | candidates (fitness) | unchanged | kept | params before -> after |",
                  "|---:|---|---:|---|---|"]
        for e in rounds:
            tried = "; ".join(f"{c['what']} ({c['fitness']:.3f})" for c in e["candidates"])
            kept = e["chosen"]["what"] if e["accepted"] else "-"
            after = e["chosen"]["params_after"] if e["accepted"] else e["params_before"]
            lines.append(f"| {e['global_step']} | {tried} | {e['fitness_unchanged']:.3f} | {kept} | "
                         f"{e['params_before']:,} -> {after:,} |")
    prune = next((e for e in events if e.get("event") == "prune"), None)
    if prune and prune["removed_hidden"]:
        removed = ", ".join(f"block {b}: {n}" for b, n in prune["removed_hidden"].items())
        lines += ["", f"Sparse routing removed the pruned path of the hidden layers ({removed} channels) at step "
                      f"{prune['global_step']}: {prune['params_before']:,} -> {prune['params_after']:,} params."]
    elif prune:
        lines += ["", f"Sparse routing found no hidden layer to prune at step {prune['global_step']} (every "
                      "important path was the whole layer)."]
    return lines + [""]


def write_evolution_plot(run_dir: Path) -> Path | None:
    """Loss per step with the mutations marked, and the parameter count over the run (None without matplotlib)."""
    from edgenas.report.figures import pyplot, save_figure

    plt = pyplot()
    if plt is None:
        return None
    steps = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("event") == "step"]
    events = read_jsonl(run_dir / "evolution.jsonl")
    if not steps:
        return None
    fig, (ax, size_ax) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, constrained_layout=True)
    ax.plot([r["global_step"] for r in steps], [r["train_loss"] for r in steps], lw=1, color="0.3")
    for e in events:
        if e.get("event") == "mutation":
            color = "tab:green" if e["accepted"] else "tab:red"
            ax.axvline(e["global_step"], color=color, ls="--", lw=1)
            label = e["chosen"]["kind"] if e["accepted"] else "kept"
            ax.annotate(label, (e["global_step"], ax.get_ylim()[1]), fontsize=7, rotation=90, va="top", color=color)
        elif e.get("event") in ("curriculum", "prune"):
            ax.axvline(e["global_step"], color="tab:blue", ls=":", lw=1)
            ax.annotate(f"level {e['level']}" if e["event"] == "curriculum" else "prune",
                        (e["global_step"], ax.get_ylim()[0]), fontsize=7, rotation=90, va="bottom", color="tab:blue")
    ax.set(ylabel="SSL loss", title="evolution: green = mutation kept, red = none kept")
    points = [(0, None)]
    for e in events:
        if e.get("event") == "mutation":
            points.append((e["global_step"], e["chosen"]["params_after"] if e["accepted"] else e["params_before"]))
            if points[0][1] is None:
                points[0] = (0, e["params_before"])
        elif e.get("event") == "prune":
            points.append((e["global_step"], e["params_after"]))
    points = [p for p in points if p[1] is not None]
    if points:
        points.append((steps[-1]["global_step"], points[-1][1]))
        size_ax.step([p[0] for p in points], [p[1] for p in points], where="post")
    size_ax.set(xlabel="step", ylabel="parameters")
    size_ax.grid(True, alpha=0.3)
    return save_figure(fig, run_dir / "plots" / "evolution.png", dpi=110)
