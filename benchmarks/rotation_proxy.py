"""A label-free *trained* proxy: does a short rotation-prediction training rank networks like few-label fine-tuning?

The zero-cost proxies do not rank stage networks that fill the same budget
(docs/performance.md: Spearman 0.10-0.21 over 24). This study trains each of
the same random architectures (``benchmarks/proxy_correlation.py``'s sample,
same ``--seed`` and budgets) for ``--steps`` steps to tell by how much an
unlabelled image was turned (0/90/180/270 degrees, Gidaris et al. 2018; flip
and 4 px translate first, batch ``--batch``, one-cycle SGD, bf16 autocast),
measures the rotation accuracy on 1,000 held-out unlabelled pool images
(x4 turns) at a third, two thirds and all of the steps, and prints the rank
correlation with the accuracy each architecture reached in the few-label
fine-tuning of the proxy study under the same ``--out`` (run that first; its
fine-tunings are reused, never redone here). No label is read by the proxy.

    python benchmarks/proxy_correlation.py --space stages-cnn --data-root ~/.cache/edgenas/cifar10-jpg/train \\
        --n 24 --epochs 20 --threads 1 --out runs/stage-study-w
    python benchmarks/rotation_proxy.py --data-root ~/.cache/edgenas/cifar10-jpg/train --n 24 \\
        --out runs/stage-study-w

Resumable: each architecture's scores are appended to ``OUT/rotation.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rotation_score(spec, data, steps: int, batch: int, lr: float, seed: int) -> dict:
    """:func:`edgenas.search.race.rotation_accuracy` of ``spec`` on the pool's images (no label is read)."""
    from edgenas.search.race import rotation_accuracy

    return rotation_accuracy(spec, data.pool.images, data.mean, data.std, steps, batch, lr, seed)


def main() -> None:
    from proxy_correlation import add_study_args, kendall, sample

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_args(p)
    p.set_defaults(space="stages-cnn", epochs=20)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from bench.files import append_jsonl, read_jsonl
    from bench.latency_table import spearman
    from edgenas.train.data import load_protocol_data

    out = Path(args.out)
    specs = sample(args)
    data = load_protocol_data(args.data, args.data_root, specs[0].resolution)
    done = {r["sha256"]: r for r in read_jsonl(out / "rotation.jsonl") if r.get("steps") == args.steps}
    rows = []
    for i, spec in enumerate(specs):
        result = out / "finetune" / f"arch-{i:02d}" / "result.json"
        if not result.exists():
            sys.exit(f"error: {result} is missing: run benchmarks/proxy_correlation.py with the same --out first")
        sha = spec.sha256()
        if sha not in done:
            done[sha] = {"sha256": sha, "arch": i, "steps": args.steps,
                         **rotation_score(spec, data, args.steps, args.batch, args.lr, seed=i)}
            append_jsonl(out / "rotation.jsonl", done[sha])
        rows.append({**done[sha], "shape": spec.describe(),
                     "accuracy": json.loads(result.read_text())["final_acc"]})
        print(f"arch {i}: {rows[-1]['shape']}: rotation {rows[-1][f'rot_acc_{args.steps}']:.2f}% "
              f"({rows[-1]['seconds']} s), fine-tuned {rows[-1]['accuracy']:.2f}%", flush=True)
    acc = [r["accuracy"] for r in rows]
    print(f"\n{'score':22} {'Spearman':>9} {'Kendall':>8}   ({len(rows)} architectures)")
    for key in (f"rot_acc_{args.steps // 3}", f"rot_acc_{2 * args.steps // 3}", f"rot_acc_{args.steps}"):
        v = [r[key] for r in rows]
        print(f"{key:22} {spearman(v, acc):9.3f} {kendall(v, acc):8.3f}")
    best = max(range(len(rows)), key=lambda i: rows[i][f"rot_acc_{args.steps}"])
    below = sum(a < acc[best] for a in acc)
    print(f"the rotation pick: arch {best}, {acc[best]:.2f}%, percentile {100 * below / (len(acc) - 1):.1f}")


if __name__ == "__main__":
    main()
