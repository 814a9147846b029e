"""Search throughput, data pipeline throughput and peak memory of the default space.

Each configuration runs in a fresh process (so that peak RSS is its own) and
prints one JSON line; the parent prints a table. Reproduce the README figures:

    .venv/bin/python benchmarks/search_throughput.py            # batch 64, 32x32
    .venv/bin/python benchmarks/search_throughput.py --batch 32 --steps 6

A "search step" is one first-order DARTS step: an architecture step on one
batch of the arch half and a weights step on one batch of the weights half,
each a forward and backward of both views (2 x batch images), so one step
processes 4 x batch images. images/s counts those.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from edgenas.search.bilevel import ssl_loss
    from edgenas.search.config import SearchConfig
    from edgenas.search.darts import DartsSearch

    cfg = SearchConfig(out="/tmp/edgenas-bench-unused", subset=max(4 * args.batch, 512), batch_size=args.batch,
                       progress=False, device=args.device)
    s = DartsSearch(cfg)
    s.prepare()
    fmt = torch.channels_last if args.layout == "nhwc" else torch.contiguous_format
    s.net.to(memory_format=fmt)
    s.memory_format = fmt
    rss_after_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # data pipeline alone: two views of a batch
    g = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    n_aug = 20
    for i in range(n_aug):
        s.views(s.images[s.w_idx[:args.batch]], g)
    aug_pairs_per_s = n_aug * args.batch / (time.perf_counter() - t)

    times = []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        s.a_opt.zero_grad(set_to_none=True)
        loss = ssl_loss(s.net, s.criterion, *s._batch_views(s.a_idx[:args.batch], step)) + s.penalty()
        loss.backward()
        s.a_opt.step()
        s.w_opt.zero_grad(set_to_none=True)
        loss = ssl_loss(s.net, s.criterion, *s._batch_views(s.w_idx[:args.batch], 10_000 + step))
        loss.backward()
        s.w_opt.step()
        if s.device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps({
        "threads": args.threads, "layout": args.layout, "batch": args.batch, "device": str(s.device),
        "step_s_median": round(median, 3), "images_per_s": round(4 * args.batch / median, 1),
        "aug_pairs_per_s": round(aug_pairs_per_s), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_after_setup_mb": round(rss_after_setup),
        "supernet_params": sum(p.numel() for p in s.net.weight_parameters()),
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    p.add_argument("--layouts", nargs="*", default=["nhwc", "nchw"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", action="store_true")
    p.add_argument("--layout", default="nhwc")
    args = p.parse_args()
    if args.child:
        args.threads = args.threads[0]
        child(args)
        return
    rows = []
    for layout in args.layouts:
        for threads in args.threads:
            cmd = [sys.executable, __file__, "--child", "--batch", str(args.batch), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--threads", str(threads), "--layout", layout, "--device", args.device]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
            print(out, flush=True)
    print()
    print(f"default space (C=8, 3 cells, 3 nodes, 7 ops), batch {args.batch} x 2 views, 32x32, first-order step")
    print(f"{'device':8} {'layout':6} {'threads':>7} {'step s':>7} {'images/s':>9} {'aug pairs/s':>11} {'peak RSS MB':>11}")
    for r in rows:
        print(f"{r['device']:8} {r['layout']:6} {r['threads']:>7} {r['step_s_median']:>7} {r['images_per_s']:>9} "
              f"{r['aug_pairs_per_s']:>11} {r['peak_rss_mb']:>11}")


if __name__ == "__main__":
    main()
