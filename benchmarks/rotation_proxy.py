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
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rotation_score(spec, data, steps: int, batch: int, lr: float, seed: int) -> dict:
    """Train ``spec`` (4-way head) on turned pool images; rotation accuracy (%) at 1/3, 2/3 and all steps."""
    import torch
    import torch.nn.functional as F

    from edgenas.data.views import normalize_batch
    from edgenas.models import build
    from edgenas.ssl.rotation import rotate_batch
    from edgenas.train.augment import crop_flip

    pool = data.pool.images
    perm = torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))
    held = normalize_batch(pool[perm[:1000]], data.mean, data.std)
    held = [torch.rot90(held, k, dims=(2, 3)) for k in range(4)]
    rows = perm[1000:]
    torch.manual_seed(seed)
    net = build(dataclasses.replace(spec, num_classes=4, projector=())).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.25, anneal_strategy="linear")
    g = torch.Generator().manual_seed(2)
    out, t0 = {}, time.perf_counter()
    for step in range(1, steps + 1):
        x = crop_flip(pool[rows[torch.randint(0, len(rows), (batch,), generator=g)]], g, data.mean, data.std)
        x, k = rotate_batch(x, g)
        net.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(net(x.contiguous(memory_format=torch.channels_last)), k)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step in (steps // 3, 2 * steps // 3, steps):
            net.eval()
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                right = sum((net(turned[j:j + 250]).argmax(1) == k).sum().item()
                            for k, turned in enumerate(held) for j in range(0, 1000, 250))
            out[f"rot_acc_{step}"] = right / 40.0
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


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
