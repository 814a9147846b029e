"""Accuracy against fine-tuning compute: each start of the searched network at several epoch budgets.

Weight preservation is meant to save fine-tuning, so "preserved beats random at
the same fine-tuning budget" depends on the budget. This reads the fine-tunings
a run's ``edgenas evaluate`` commands recorded (``RUN/eval/results.jsonl``)
under protocols that differ only in ``--epochs`` (and nothing else: same data,
optimiser, norm reset, ...), and prints, for one label budget, the final
accuracy (mean ± std over seeds) and the process CPU minutes of every
(start, epochs); with matplotlib it plots accuracy against CPU minutes to
``RUN/plots/finetune_budget.png``.

    edgenas evaluate RUN --models searched --inits preserved,random --fractions 0.1 --epochs 10 ...
    edgenas evaluate RUN --models searched --inits preserved,random --fractions 0.1 --epochs 30 ...
    python benchmarks/finetune_budget.py RUN --fraction 0.1 [--protocol PID]

``--protocol`` names the protocol whose other options the compared ones must share
(default: the one of the most recent searched fine-tuning at that label budget).
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path


def _rest(options: dict) -> dict:
    """The protocol's options less the one this comparison varies."""
    from edgenas.evaluate.protocol import shared_options

    return shared_options(options, ("epochs",))


def budget_table(records: list[dict], fraction: float | None, samples: int | None,
                 protocol: str | None = None) -> tuple[str, dict[tuple[str, int], dict]]:
    """(reference protocol, {(init, epochs): {"acc": [...], "cpu_min": [...], "protocols": {...}}})."""
    mine = [r for r in records if r.get("model") == "searched" and "protocol_options" in r
            and not r.get("class_subset") and r.get("fraction") == fraction and r.get("samples") == samples]
    if not mine:
        raise SystemExit("no fine-tuning of the searched network at that label budget in the run's results")
    ref = protocol or mine[-1]["protocol"]
    base = next((r["protocol_options"] for r in mine if r["protocol"] == ref), None)
    if base is None:
        raise SystemExit(f"no fine-tuning of the searched network under protocol {ref} at that label budget")
    cells: dict[tuple[str, int], dict] = defaultdict(lambda: {"acc": [], "cpu_min": [], "protocols": set()})
    seen = set()
    for r in mine:
        if _rest(r["protocol_options"]) != _rest(base):
            continue
        key = (r["init"], r["epochs"], r["seed"])
        if key in seen:  # the same cell recorded under two protocols (a reused random start)
            continue
        seen.add(key)
        cell = cells[(r["init"], r["epochs"])]
        cell["acc"].append(r["final_acc"])
        cell["cpu_min"].append(r["cpu_s"] / 60)
        cell["protocols"].add(r.get("reused_from") or r["protocol"])
    return ref, dict(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--fraction", type=float)
    group.add_argument("--samples", type=int)
    parser.add_argument("--protocol", help="reference protocol id [default: the latest at that budget]")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    fraction = args.fraction if args.fraction is not None or args.samples is not None else 0.1

    from edgenas.rundir import read_jsonl

    path = args.run / "eval" / "results.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: run `edgenas evaluate {args.run}` first")
    ref, cells = budget_table(read_jsonl(path), fraction, args.samples, args.protocol)
    label = f"{100 * fraction:g}% labels" if args.samples is None else f"{args.samples} labels"
    print(f"{args.run}: searched network, {label}, protocols sharing {ref}'s options but the epochs\n")
    print("| start | epochs | seeds | final accuracy | CPU min |")
    print("|---|---:|---:|---:|---:|")
    for (init, epochs), c in sorted(cells.items()):
        acc = c["acc"]
        spread = f" ± {statistics.stdev(acc):.2f}" if len(acc) > 1 else ""
        print(f"| {init} | {epochs} | {len(acc)} | {statistics.mean(acc):.2f}{spread} | "
              f"{statistics.mean(c['cpu_min']):.1f} |")
    if args.no_plot:
        return
    from edgenas.report.plots import pyplot, save_figure

    plt = pyplot()
    if plt is None:
        print("\n(no matplotlib: no plot)")
        return
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for init in sorted({i for i, _ in cells}):
        points = sorted((e, c) for (i, e), c in cells.items() if i == init)
        x = [statistics.mean(c["cpu_min"]) for _, c in points]
        y = [statistics.mean(c["acc"]) for _, c in points]
        err = [statistics.stdev(c["acc"]) if len(c["acc"]) > 1 else 0.0 for _, c in points]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=init)
        for (epochs, _), xi, yi in zip(points, x, y):
            ax.annotate(f"{epochs} ep", (xi, yi), textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.set(xlabel="fine-tuning CPU minutes (per run)", ylabel="top-1 accuracy (%)",
           title=f"searched network, {label}: accuracy vs fine-tuning budget")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = args.run / "plots" / "finetune_budget.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out)
    plt.close(fig)
    print(f"\nplot: {out}")


if __name__ == "__main__":
    main()
