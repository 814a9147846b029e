"""Does the search search? Its network against random architectures of the same space and budget.

For each strategy of ``--strategies`` (``darts``: the sampled supernet;
``proxy``: the zero-cost ranking), runs ``edgenas search`` on the unlabelled
images at the default budgets, then fine-tunes the network it finds and
``--n`` random architectures of the same space, each widened or narrowed to
fill the same budget, under the same protocol and seed, all from a random
start (so the architectures alone differ; the searched network's preserved
start is reported too). Prints each searched network's percentile among the
random ones; a strategy below the median is no default.

    python benchmarks/search_vs_random.py --data-root ~/.cache/edgenas/cifar10-jpg/train --n 20 \\
        --epochs 12 --threads 1 --amp bf16 --out runs/proxy-study

The random architectures and their fine-tunings are those of
``benchmarks/proxy_correlation.py`` with the same ``--out``, ``--n``, ``--seed``
and protocol options: either script reuses what the other finished.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from proxy_correlation import add_study_args, sample

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_args(p)
    p.add_argument("--strategies", default=None, help="default: darts,proxy (cells), proxy (stages-cnn)")
    p.add_argument("--subset", type=int, default=5000, help="unlabelled images the searches see")
    p.add_argument("--search-epochs", type=int, default=3)
    p.add_argument("--proxy-samples", type=int, default=500)
    p.add_argument("--race", type=int, default=None,
                   help="proxy: N candidates raced on rotation prediction (0: the zero-cost ranking alone) "
                        "[default: the search's, 8 on enough images]")
    p.add_argument("--race-steps", type=int, default=None, help="default: the search's (200; 1,000 for small candidates)")
    p.add_argument("--race-from", default="sample", choices=("top", "sample"))
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from edgenas.search.config import SearchConfig
    from edgenas.search.runner import run_search
    from edgenas.train import FinetuneConfig, run_finetune
    from edgenas.train.data import load_protocol_data

    out = Path(args.out)
    ops = tuple(["zero", *args.ops.split(",")])
    specs = sample(args)
    data = load_protocol_data(args.data, args.data_root, specs[0].resolution)

    def finetune(model: str, name: str, init: str = "random") -> float:
        cfg = FinetuneConfig(model=model, init=init, out=str(out / "finetune" / name), data=args.data,
                             data_root=args.data_root, fraction=args.fraction, epochs=args.epochs,
                             min_steps=args.min_steps, seed=args.finetune_seed, threads=args.threads, amp=args.amp,
                             progress=False)
        return run_finetune(cfg, data=data).result["final_acc"]

    random_acc = []
    for i, spec in enumerate(specs):
        arch = out / "archs" / f"arch-{i:02d}.json"
        arch.parent.mkdir(parents=True, exist_ok=True)
        spec.save(arch)
        random_acc.append(finetune(str(arch), f"arch-{i:02d}"))
        print(f"random {i}: {random_acc[-1]:.2f}%", flush=True)
    rows = []
    strategies = args.strategies or ("proxy" if args.space == "stages-cnn" else "darts,proxy")
    for strategy in strategies.split(","):
        space = ("stages-cnn" if args.space == "stages-cnn" else "darts-light") if strategy == "proxy" else "auto"
        cfg = SearchConfig(out="unused", strategy=strategy, space=space, data=args.data, data_root=args.data_root,
                           subset=args.subset, epochs=args.search_epochs, max_params=args.max_params,
                           **({} if space == "stages-cnn" else {"ops": ops}),
                           max_macs=args.max_macs, proxy_samples=args.proxy_samples, threads=args.threads,
                           **({"race": args.race, "race_steps": args.race_steps, "race_from": args.race_from}
                              if strategy == "proxy" else {}),
                           amp="none" if args.amp == "auto" else args.amp, progress=False)  # search: none or bf16
        raced = cfg.race_for(args.subset) if strategy == "proxy" else 0
        name = f"{strategy}-race{raced}{'' if args.race_from == 'top' else '-sample'}" if raced else strategy
        run = out / "searched" / name
        cfg = cfg.replace(out=str(run))
        result = run_search(cfg)
        acc = finetune(str(run / "arch.json"), f"searched-{name}")
        preserved = finetune(str(run), f"searched-{name}-preserved", init="preserved")
        below = sum(a < acc for a in random_acc)
        rows.append({"strategy": name, "params": result.params, "macs": result.macs, "accuracy": acc,
                     "preserved_accuracy": preserved, "percentile": round(100 * below / len(random_acc), 1),
                     "search_min": round(result.summary["elapsed_s"] / 60, 1)})
        print(json.dumps(rows[-1]), flush=True)
    ranked = sorted(random_acc)
    median = ranked[len(ranked) // 2] if len(ranked) % 2 else (ranked[len(ranked) // 2 - 1] + ranked[len(ranked) // 2]) / 2
    summary = {"random_accuracy": random_acc, "random_median": median, "searched": rows,
               "fraction": args.fraction, "epochs": args.epochs}
    (out / "search_vs_random.json").write_text(json.dumps(summary, indent=1))
    print(f"\n{len(random_acc)} random architectures: {min(random_acc):.2f}-{max(random_acc):.2f}%, median "
          f"{median:.2f}% ({args.fraction:g} of the labels, {args.epochs} epochs, random starts)")
    print(f"{'strategy':9} {'params':>9} {'MACs':>7} {'acc %':>7} {'preserved %':>12} {'percentile':>11} "
          f"{'search min':>11}")
    for r in rows:
        print(f"{r['strategy']:9} {r['params']:9,} {r['macs'] / 1e6:6.1f}M {r['accuracy']:7.2f} "
              f"{r['preserved_accuracy']:12.2f} {r['percentile']:11.1f} {r['search_min']:11.1f}")


if __name__ == "__main__":
    main()
