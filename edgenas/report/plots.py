"""PNG plots of a run's report: data efficiency, accuracy vs latency (Pareto), alpha over the search, curves.

Each function returns the file it wrote, or None when it had nothing to plot or
matplotlib is missing (``pip install 'edgenas[plot]'``).
"""

from __future__ import annotations

from pathlib import Path

from edgenas.report.figures import pyplot, save_figure
from edgenas.report.tables import RunRecords, _order, aggregate, budget_label, model_label
from edgenas.rundir import read_jsonl

__all__ = ["alpha_evolution", "data_efficiency", "finetune_curves", "pareto", "write_plots"]


def data_efficiency(results: list[dict], out: Path) -> Path | None:
    """Accuracy vs labelled share (and vs labelled count), one line per model, std over seeds as error bars."""
    plt = pyplot()
    agg = aggregate(results)
    if plt is None or not agg:
        return None
    from matplotlib.ticker import FuncFormatter, NullFormatter

    kinds = sorted({k[0] for cells in agg.values() for k in cells})
    fig, axes = plt.subplots(1, len(kinds), figsize=(6.5 * len(kinds), 4.5), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for who in sorted(agg, key=_order):
            points = sorted((k[1], v) for k, v in agg[who].items() if k[0] == kind)
            if not points:
                continue
            x = [100 * p if kind == 0 else p for p, _ in points]
            ax.errorbar(x, [v["mean"] for _, v in points], yerr=[v["std"] for _, v in points], marker="o",
                        capsize=3, lw=2 if who[0] == "searched" else 1.2, label=model_label(*who))
        ax.set(xscale="log", xlabel="labelled images (% of the training set)" if kind == 0 else "labelled images",
               ylabel="top-1 accuracy (%)", title="data efficiency")
        ticks = sorted({100 * k[1] if kind == 0 else k[1] for cells in agg.values() for k in cells if k[0] == kind})
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = save_figure(fig, out / "data_efficiency.png")
    return path


def pareto(records: RunRecords, out: Path) -> Path | None:
    """Accuracy at the largest label budget vs measured p50 latency (vs MACs where nothing was measured)."""
    from bench.sweep import pareto_front
    from edgenas.report.tables import _latency

    plt = pyplot()
    agg = aggregate(records.results)
    if plt is None or not agg:
        return None
    budget = max(k for cells in agg.values() for k in cells if k[0] == 0) if any(
        k[0] == 0 for cells in agg.values() for k in cells) else max(k for cells in agg.values() for k in cells)
    latency = _latency(records.compare)
    points = []
    for who in sorted(agg, key=_order):
        if budget not in agg[who]:
            continue
        m = latency.get(who[0]) or (latency.get(records.run.name) if who[0] == "searched" else None)
        points.append((model_label(*who), m["p50_ms"] if m else None, agg[who][budget]["macs"] / 1e6,
                       agg[who][budget]["mean"]))
    measured = all(p[1] is not None for p in points)
    xs = [p[1] if measured else p[2] for p in points]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, _, _, acc), x in zip(points, xs):
        ax.scatter([x], [acc], s=50, label=name, zorder=3)
        ax.annotate(name, (x, acc), fontsize=7, xytext=(4, 4), textcoords="offset points")
    front = pareto_front([(x, p[3]) for x, p in zip(xs, points)])
    ax.step([f[0] for f in front], [f[1] for f in front], where="post", color="k", lw=1, alpha=0.6,
            label="Pareto front")
    device = sorted({str(r.get("device")) for r in records.compare})
    from matplotlib.ticker import FuncFormatter

    ax.set(xscale="log", ylabel=f"top-1 accuracy (%), {budget_label(budget)}",
           xlabel=f"measured p50 latency (ms, {', '.join(device)})" if measured else "MACs (millions)",
           title="accuracy vs latency" if measured else "accuracy vs MACs (no latency measured yet)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = save_figure(fig, out / "pareto.png")
    return path


def alpha_evolution(run: Path, out: Path) -> Path | None:
    """Heat map per cell type: each op's softmax(alpha), averaged over the edges, epoch by epoch."""
    plt = pyplot()
    alphas = read_jsonl(run / "alpha.jsonl")
    if plt is None or not alphas:
        return None
    import numpy as np

    ops = alphas[-1]["ops"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(ops) + 2), constrained_layout=True)
    for ax, kind in zip(axes, ("normal", "reduce")):
        grid = np.array([np.mean(a[kind], axis=0) for a in alphas]).T  # [ops, epochs]
        im = ax.imshow(grid, aspect="auto", cmap="viridis")
        ax.set_yticks(range(len(ops)), ops)
        ax.set_xticks(range(len(alphas)), [str(a["epoch"] + 1) for a in alphas])
        ax.set(xlabel="epoch", title=f"{kind} cell: mean softmax(alpha) per op")
        fig.colorbar(im, ax=ax)
    path = save_figure(fig, out / "alpha_evolution.png")
    return path


def finetune_curves(records: RunRecords, out: Path) -> Path | None:
    """Training loss and selection accuracy per epoch of every fine-tuning at the largest label budget (seed 0 or the first)."""
    plt = pyplot()
    if plt is None or not records.results:
        return None
    from edgenas.report.tables import budget_key

    budget = max(budget_key(r) for r in records.results)
    chosen: dict[tuple, dict] = {}
    for r in records.results:
        if budget_key(r) == budget and ((r["model"], r["init"]) not in chosen or r["seed"] == 0):
            chosen[(r["model"], r["init"])] = r
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for who in sorted(chosen, key=_order):
        epochs = read_jsonl(records.run / "eval" / chosen[who]["protocol"] / "jobs" / chosen[who]["job"]
                            / "metrics.jsonl")
        epochs = [e for e in epochs if e.get("event") == "epoch"]
        if not epochs:
            continue
        loss_ax.plot([e["epoch"] for e in epochs], [e["train_loss"] for e in epochs], label=model_label(*who))
        if epochs[0].get("select_acc") is not None:
            acc_ax.plot([e["epoch"] for e in epochs], [e["select_acc"] for e in epochs], label=model_label(*who))
    loss_ax.set(xlabel="epoch", ylabel="training loss", title=f"fine-tuning, {budget_label(budget)}")
    acc_ax.set(xlabel="epoch", ylabel="accuracy on the selection split (%)", title="model selection")
    for ax in (loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = save_figure(fig, out / "finetune.png")
    return path


def write_plots(records: RunRecords) -> list[Path]:
    """Every plot the run's files allow, into ``RUN/plots/``."""
    out = records.run / "plots"
    out.mkdir(exist_ok=True)
    made = [data_efficiency(records.results, out), pareto(records, out), alpha_evolution(records.run, out),
            finetune_curves(records, out)]
    return [p for p in made if p is not None]
