"""Do label-free zero-cost proxies rank architectures the way few-label fine-tuning does?

Samples ``--n`` random architectures of ``--space``: of the cell space at the
layout the default budgets give, widened or narrowed to fill the budget (the
widest C within it), or of the stage space (``stages-cnn``), each scaled to
fill it as ``--strategy proxy --space stages-cnn`` does. Scores each untrained
network with every registered proxy (NASWOT on a batch of unlabelled training
images; SynFlow and Zen-score on none), fine-tunes each from a random start on
``--fraction`` of the labels with the fine-tuning protocol, and prints the
rank correlation (Spearman, Kendall) with the fine-tuned accuracy on the fixed
hold-out of each proxy, of the rank average of the search's default proxies,
of plain size (params, MACs) and, for the stage space, of the number of
stages (a post-hoc check, not a proxy). Resumable: each fine-tuning and each
score is kept under ``--out``.

    python benchmarks/proxy_correlation.py --data-root ~/.cache/edgenas/cifar10-jpg/train \\
        --n 24 --fraction 0.1 --epochs 30 --threads 1 --amp bf16 --out runs/proxy-study

Writes ``OUT/study.json`` (every architecture with its scores and accuracy)
and ``OUT/correlation.png`` (accuracy against each proxy).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def kendall(x: list[float], y: list[float]) -> float:
    n, s = len(x), 0
    for i in range(n):
        for j in range(i + 1, n):
            s += (1 if (x[i] - x[j]) * (y[i] - y[j]) > 0 else -1 if (x[i] - x[j]) * (y[i] - y[j]) < 0 else 0)
    return 2 * s / (n * (n - 1))


def sample(args) -> list:
    import dataclasses

    if args.space == "stages-cnn":
        from edgenas.space.stage_sampling import sample_stage_specs

        return sample_stage_specs(args.n, args.seed, args.max_params, args.max_macs)

    from edgenas.latency.keys import Layout
    from edgenas.latency.spaces import sample_specs
    from edgenas.search.config import SearchConfig
    from edgenas.search.layout import choose_layout
    from edgenas.search.widen import fill_budget, widened_spec

    ops = tuple(args.ops.split(","))
    cfg = SearchConfig(strategy="darts", ops=ops, max_params=args.max_params, max_macs=args.max_macs)
    layout = choose_layout(cfg, 10)
    specs = sample_specs(args.n, args.seed, [Layout(channels=layout.channels, cells=layout.cells, nodes=cfg.nodes,
                                                    resolution=cfg.resolution)], ops)
    out = []
    for spec in specs:
        spec = dataclasses.replace(spec, projector=())
        out.append(widened_spec(spec, fill_budget(spec, args.max_params, args.max_macs, least=4)))
    return out


def shape(spec) -> str:
    """A short name of the architecture: its stages, or its cells' width."""
    return spec.describe() if hasattr(spec, "describe") else f"C={spec.channels}"


def add_study_args(p: argparse.ArgumentParser) -> None:
    """The options of the random architectures and their fine-tuning protocol (shared with search_vs_random)."""
    p.add_argument("--data", default="imagefolder")
    p.add_argument("--data-root", required=True)
    p.add_argument("--space", default="cells", choices=("cells", "stages-cnn"))
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--seed", type=int, default=11, help="seed of the sampled architectures")
    p.add_argument("--ops", default="identity,se,ds_conv,ds_conv_se,irb_e3,irb_e6,full_conv3x3,full_conv5x5,"
                                    "res_conv,max_pool,mean_pool")
    p.add_argument("--max-params", type=int, default=1_000_000)
    p.add_argument("--max-macs", type=int, default=100_000_000)
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--min-steps", type=int, default=0,
                   help="the fine-tuning's step floor (0: exactly --epochs, as the studies in the docs ran)")
    p.add_argument("--finetune-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--amp", default="auto")
    p.add_argument("--out", default="runs/proxy-study")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_args(p)
    p.add_argument("--scores-only", action="store_true", help="score the architectures, fine-tune nothing")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from bench.files import append_jsonl, read_jsonl
    from bench.latency_table import spearman
    from edgenas.data.views import normalize_batch
    from edgenas.models import build
    from edgenas.profiler import count_macs, count_params
    from edgenas.space.registry import load_spec
    from edgenas.search.proxies import PROXIES, rank_average, score
    from edgenas.train import FinetuneConfig, run_finetune
    from edgenas.train.data import load_protocol_data

    out = Path(args.out)
    (out / "archs").mkdir(parents=True, exist_ok=True)
    specs = sample(args)
    data = load_protocol_data(args.data, args.data_root, specs[0].resolution)
    g = torch.Generator().manual_seed(0)
    images = normalize_batch(data.pool.images[torch.randperm(len(data.pool), generator=g)[:64]], data.mean,
                             data.std)  # unlabelled: the proxies never see a label
    names = PROXIES.names()
    scored = {}
    for r in read_jsonl(out / "scores.jsonl"):  # the last record of each network (a proxy added later: rescored)
        scored[r["sha256"]] = r
    scored = {sha: r for sha, r in scored.items() if all(n in r for n in names)}
    rows = []
    for i, spec in enumerate(specs):
        arch = out / "archs" / f"arch-{i:02d}.json"
        spec.save(arch)
        sha = spec.sha256()
        if sha not in scored:
            torch.manual_seed(i)
            net = build(spec)
            t0 = time.perf_counter()
            s = score(net, images, names)
            r = {"sha256": sha, "arch": str(arch), "params": count_params(net),
                 "macs": count_macs(net, spec.resolution), "shape": shape(spec), **s,
                 "score_s": round(time.perf_counter() - t0, 2)}
            append_jsonl(out / "scores.jsonl", r)
            scored[sha] = r
        rows.append(dict(scored[sha]))
        print(f"arch {i}: {shape(spec)}, params {rows[-1]['params']:,} MACs {rows[-1]['macs'] / 1e6:.1f}M "
              + " ".join(f"{n} {rows[-1][n]:.1f}" for n in names), flush=True)
    if args.scores_only:
        return
    for i, r in enumerate(rows):
        cfg = FinetuneConfig(model=r["arch"], init="random", out=str(out / "finetune" / f"arch-{i:02d}"),
                             data=args.data, data_root=args.data_root, fraction=args.fraction, epochs=args.epochs,
                             min_steps=args.min_steps, seed=args.finetune_seed, threads=args.threads, amp=args.amp,
                             progress=False)
        result = run_finetune(cfg, data=data).result
        r.update(accuracy=result["final_acc"], cpu_min=round(result["cpu_s"] / 60, 2))
        print(f"arch {i}: {r['accuracy']:.2f}% after {args.epochs} epochs ({r['cpu_min']} CPU min)", flush=True)
    acc = [r["accuracy"] for r in rows]
    avg = rank_average(rows, ("naswot", "synflow"))
    columns = {**{n: [r[n] for r in rows] for n in names},
               "rank average": [-a for a in avg], "params": [r["params"] for r in rows],
               "MACs": [r["macs"] for r in rows], "stages": [float(shape(load_spec(r["arch"])).count("|")) if
                                                             args.space == "stages-cnn" else 0.0 for r in rows]}
    if args.space != "stages-cnn":
        columns.pop("stages")
    table = {name: {"spearman": round(spearman(v, acc), 3), "kendall": round(kendall(v, acc), 3)}
             for name, v in columns.items()}
    best = max(range(len(rows)), key=lambda i: columns["rank average"][i])
    summary = {"n": len(rows), "fraction": args.fraction, "epochs": args.epochs, "correlation": table,
               "accuracy_range": [min(acc), max(acc)], "proxy_pick": rows[best]["arch"],
               "proxy_pick_accuracy": acc[best],
               "proxy_pick_percentile": round(100 * sum(a < acc[best] for a in acc) / (len(acc) - 1), 1),
               "archs": rows}
    (out / "study.json").write_text(json.dumps(summary, indent=1))
    print(f"\n{'score':14} {'Spearman':>9} {'Kendall':>8}   ({len(rows)} architectures, "
          f"accuracy {min(acc):.1f}-{max(acc):.1f}%)")
    for name, t in table.items():
        print(f"{name:14} {t['spearman']:9.3f} {t['kendall']:8.3f}")
    print(f"the proxies' pick: {acc[best]:.2f}%, percentile {summary['proxy_pick_percentile']} of the sample")
    from edgenas.report.figures import pyplot, save_figure

    plt = pyplot()
    if plt is not None:
        panels = [*names, "params"]
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
        for ax, name in zip(axes, panels):
            ax.scatter(columns[name], acc, s=14)
            ax.set(xlabel=name, ylabel="fine-tuned accuracy (%)",
                   title=f"Spearman {table[name]['spearman']:.2f}")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        save_figure(fig, out / "correlation.png")


if __name__ == "__main__":
    main()
