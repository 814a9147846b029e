"""Fine-tuning throughput of the searched network and the baselines at 32x32 (training and evaluation images/s).

What sizes an evaluation protocol on a CPU: one training step (crop/flip,
forward, backward, SGD step) at batch 64 and one evaluation batch of 256,
channels-last, for each model, on the synthetic data.

    python benchmarks/finetune_throughput.py [--run RUN_DIR] [--threads 1] [--steps 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="A search run directory (its network is measured too).")
    parser.add_argument("--models", default="mobilenet_v2_035,mobilenet_v3_small,efficientnet_b0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    from edgenas.train.augment import crop_flip
    from edgenas.train.candidates import load_candidate

    torch.set_num_threads(args.threads)
    models = ([args.run] if args.run else []) + args.models.split(",")
    images = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.batch,))
    mean, std = (0.5,) * 3, (0.25,) * 3
    print(f"| model | params | MACs | train images/s | eval images/s |  ({args.threads} thread(s), batch {args.batch})")
    print("|---|---:|---:|---:|---:|")
    for name in models:
        c = load_candidate(name, "random", 10, 32)
        net = c.model.to(memory_format=torch.channels_last).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        g = torch.Generator().manual_seed(0)
        times = []
        for step in range(args.steps + 2):
            t0 = time.perf_counter()
            x = crop_flip(images, g, mean, std).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(net(x), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step >= 2:
                times.append(time.perf_counter() - t0)
        net.eval()
        x = crop_flip(torch.cat([images] * 4), g, mean, std).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            net(x)
            t0 = time.perf_counter()
            for _ in range(3):
                net(x)
            eval_s = (time.perf_counter() - t0) / 3
        times.sort()
        print(f"| {c.name if c.kind == 'baseline' else 'searched (' + Path(name).name + ')'} | {c.params:,} | "
              f"{c.macs / 1e6:.2f}M | {args.batch / times[len(times) // 2]:.0f} | {len(x) / eval_s:.0f} |")


if __name__ == "__main__":
    main()
