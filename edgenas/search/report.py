"""The DARTS and proxy searches' section of ``report.md`` and its plots (alpha heat map, loss curves).

:func:`edgenas.report.write_markdown` assembles the report from these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgenas.rundir import read_jsonl
from edgenas.space.spec import ArchSpec


def _genotype_lines(name: str, genotype) -> list[str]:
    lines = [f"**{name} cell**", ""]
    for i, node in enumerate(genotype.nodes):
        inputs = ", ".join(f"`{e.op}`({'c[k-2]' if e.input == 0 else 'c[k-1]' if e.input == 1 else f'n{e.input - 2}'})"
                           for e in node)
        lines.append(f"- n{i} = {inputs}")
    return lines + [""]


def search_section(spec, summary: dict[str, Any]) -> list[str]:
    """Markdown lines: the search's summary table, the architecture and any budget repairs."""
    lines = [
        "| | |", "|---|---|",
        f"| target | {summary.get('target') or '-'} |",
        f"| data | {summary['data']} ({summary['images']} images, labels unused) |",
        f"| params | {summary['params']:,} (budget {summary['max_params']:,}) |",
        f"| MACs at {spec.resolution}x{spec.resolution} | {summary['macs'] / 1e6:.2f}M (budget {summary['max_macs'] / 1e6:.1f}M) |",
        *_share_lines(summary),
        f"| epochs / steps | {summary['epochs']} / {summary['steps']} |",
        f"| wall time | {summary['elapsed_s']:.1f} s on {summary['device']} |",
        *([f"| search throughput | {summary['images_per_s_median']:.0f} images/s (median step) |"]
          if summary.get("images_per_s_median") else []),
        *_latency_lines(summary),
        *_refine_lines(summary),
        *_proxy_lines(summary),
        f"| arch sha256 | `{summary['arch_sha256'][:16]}` |", "",
        "## Architecture", "", *architecture_lines(spec),
    ]
    if summary.get("budget_repairs"):
        lines += ["## Budget repairs", "", "The argmax architecture broke the budget; these changes fixed it:", ""]
        lines += [f"- {c}" for c in summary["budget_repairs"]] + [""]
    return lines


def architecture_lines(spec) -> list[str]:
    """Markdown lines describing the network of a cell-space or stage-space spec."""
    if isinstance(spec, ArchSpec):
        return [f"C = {spec.channels}, {spec.num_cells} cells (reductions at {list(spec.reduction_cells)}), "
                f"{spec.nodes} nodes per cell, stem {spec.stem_channels} channels.", "",
                *_genotype_lines("Normal", spec.normal), *_genotype_lines("Reduction", spec.reduce)]
    lines = [f"Stage space (`{spec.space}`): stem {spec.stem_channels or 'none'}, then global max pooling after the "
             "last stage.", "", "| stage | width | kernel | 2x2 max pool | residual pairs | output side |",
             "|---|---|---|---|---|---|"]
    for i, (stage, side) in enumerate(zip(spec.stages, spec.sizes()[1:])):
        lines.append(f"| {i} | {stage.width} | {stage.kernel}x{stage.kernel} | {'yes' if stage.pool else 'no'} | "
                     f"{stage.residual} | {side} |")
    return lines + [""]


def _proxy_lines(summary: dict[str, Any]) -> list[str]:
    if summary.get("strategy") != "proxy":
        return []
    race = summary.get("race")
    if race:  # the zero-cost scores of a race from the sample are a record, not the choice
        pool = "sampled" if race["from"] == "sample" else f"the zero-cost best of {summary['proxy_samples']}"
        by = race.get("decided_by", "rotation")
        verdict = ("the best learner kept" if by == "rotation" else
                   "the best rank average of rotation and NASWOT kept" if by == "rotation+naswot" else
                   "none learned it (chance 25%), so the zero-cost ranking decided")
        if race.get("rotation_alone"):
            verdict += f" (rotation alone: {race['rotation_alone']})"
        best = race.get("best_rotation_acc", race.get("winner_rotation_acc"))
        return [f"| ranking | {race['candidates']} random networks ({pool}) raced {race['steps']} steps on rotation "
                f"prediction in {race['seconds']:.0f} s; best rotation accuracy {best:.1f}%, {verdict} |"]
    return [f"| proxy ranking | {summary['proxy_samples']} random networks scored by "
            f"{' + '.join(summary['proxies'])} in {summary['proxy_rank_s']:.0f} s |"]


def _share_lines(summary: dict[str, Any]) -> list[str]:
    share = summary.get("budget_share")
    if not share:
        return []
    widened = (f"; widened from C={summary['widened_from_channels']} to C={summary['channels']}"
               if summary.get("widened_from_channels") else "")
    layout = summary.get("layout") or {}
    chosen = (f"; searched at C={layout['channels']}, {layout['cells']} cells, chosen from the budgets"
              if layout.get("chosen_from_budgets") else "")
    return ["| budget used | " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in share.items()) + widened + chosen
            + " |"]


def _refine_lines(summary: dict[str, Any]) -> list[str]:
    r = summary.get("refine")
    if not r:
        return []
    return [f"| refinement | {r['epochs']} epochs, {r['steps']} steps on {r['rows']:,} images, "
            f"{r['elapsed_s']:.1f} s; SSL loss {r['first_loss']:.2f} -> {r['final_loss']:.2f} |"]


def _latency_lines(summary: dict[str, Any]) -> list[str]:
    if summary.get("predicted_latency_ms") is None:
        return []
    budget = f" (budget {summary['latency_budget_ms']:g} ms)" if summary.get("latency_budget_ms") else ""
    estimated = ", **estimated** table: measure a real one with `edgenas lut build`" \
        if summary.get("latency_table_estimated") else ""
    lines = [f"| latency predicted | {summary['predicted_latency_ms']:.4f} ms{budget}, "
             f"{summary['latency_table']}{estimated} |"]
    if summary.get("measured_latency_ms") is not None:
        error = 100 * (summary["predicted_latency_ms"] / summary["measured_latency_ms"] - 1)
        lines.append(f"| latency measured | {summary['measured_latency_ms']:.4f} ms on "
                     f"{summary['latency_measured_on']} (prediction {error:+.1f}%) |")
    for also in summary.get("latency_also", []):  # --latency-also: the other tables the network meets
        measured = (f"; measured {also['measured_latency_ms']:.4f} ms" if also.get("measured_latency_ms") is not None
                    else "")
        lines.append(f"| latency predicted, also | {also['predicted_latency_ms']:.4f} ms (budget "
                     f"{also['latency_budget_ms']:g} ms, {also['budget_share']:.0%} used), {also['latency_table']}"
                     f"{measured} |")
    return lines


def write_plots(run_dir: Path) -> list[Path]:
    """Alpha heat maps of the last epoch and the loss curve; [] without matplotlib."""
    from edgenas.report.figures import pyplot, save_figure

    plt = pyplot()
    if plt is None:
        return []
    out = []
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    alphas = read_jsonl(run_dir / "alpha.jsonl")
    if alphas:
        last = alphas[-1]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        for ax, kind in zip(axes, ("normal", "reduce")):
            # colour scale from the data: after a short search the weights differ by a few percent
            im = ax.imshow(last[kind], aspect="auto", cmap="viridis")
            for row, values in enumerate(last[kind]):
                col = max(range(len(values)), key=values.__getitem__)
                ax.text(col, row, f"{values[col]:.2f}", ha="center", va="center", fontsize=7, color="w")
            fig.colorbar(im, ax=ax)
            ax.set_xticks(range(len(last["ops"])), last["ops"], rotation=45, ha="right")
            ax.set_ylabel("edge")
            ax.set_title(f"{kind} cell: softmax(alpha), epoch {last['epoch'] + 1}")
        out.append(save_figure(fig, plots / "alpha.png", dpi=110))
    steps = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("event") == "step"]
    if steps:
        fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
        ax.plot([r["global_step"] for r in steps], [r["train_loss"] for r in steps], label="weights half")
        arch = [(r["global_step"], r["arch_loss"]) for r in steps
                if r.get("arch_loss") is not None and r["arch_loss"] == r["arch_loss"]]
        if arch:
            ax.plot(*zip(*arch), label="arch half (+ budget term)")
        ax.set_xlabel("step")
        ax.set_ylabel("SSL loss")
        ax.legend()
        out.append(save_figure(fig, plots / "loss.png", dpi=110))
    refined = [r for r in read_jsonl(run_dir / "refine" / "metrics.jsonl") if r.get("event") == "step"]
    two_stage = [r for r in read_jsonl(run_dir / "pretrain" / "refine" / "metrics.jsonl") if r.get("event") == "step"]
    if refined:
        fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
        for records, label in ((refined, "from the search's weights"),
                               (two_stage, "two-stage (after its own pre-training)")):
            if not records:
                continue
            x, y = [r["global_step"] for r in records], [r["train_loss"] for r in records]
            line, = ax.plot(x, y, alpha=0.25, linewidth=0.8)
            width = max(1, len(y) // 40)  # a running mean over 2.5% of the steps: the trend under the noise
            smooth = [sum(y[max(0, i - width + 1):i + 1]) / len(y[max(0, i - width + 1):i + 1]) for i in range(len(y))]
            ax.plot(x, smooth, color=line.get_color(), label=f"{label} (running mean of {width})")
        ax.set_xlabel("refinement step")
        ax.set_ylabel("SSL loss")
        ax.legend()
        ax.set_title("refinement of the derived network")
        out.append(save_figure(fig, plots / "refine_loss.png", dpi=110))
    return out
