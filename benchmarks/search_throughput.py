"""Search step time and peak memory at deployment size, against one SSL step of the network it derives.

Each configuration runs in a fresh process (so that peak RSS is its own) and
prints one JSON line; the parent prints a table and, last, the ratio of the
default supernet's step to the derived network's SSL step::

    .venv/bin/python benchmarks/search_throughput.py                    # batch 64, 32x32, 1 thread
    .venv/bin/python benchmarks/search_throughput.py --supernets sampled --steps 10

The layout is the one ``edgenas search`` chooses from the default budgets (or
``--channels/--cells``). A *search step* is what one step of ``edgenas search``
does (:meth:`edgenas.search.darts.DartsSearch.step`): an architecture step
every ``--arch-every`` steps and a weights step, each a forward and backward of
both views. Its time is averaged over ``--arch-every`` consecutive steps. The
derived network's *SSL step* is a forward and backward of both views of the
same batch through the network the supernet derives at that step (the argmax
of its alphas), as a refinement step does.
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
    from edgenas.search.config import SearchConfig
    from edgenas.search.darts import DartsSearch
    from edgenas.search.derive import spec_from_supernet, transfer_weights

    cfg = SearchConfig(strategy="darts", out="/tmp/edgenas-bench-unused", subset=max(8 * args.batch, 1024), batch_size=args.batch,
                       progress=False, device=args.device, supernet=args.supernet, channels=args.channels,
                       cells=args.cells, arch_every=args.arch_every, amp=args.amp, threads=args.threads,
                       recompute=args.recompute)
    s = DartsSearch(cfg)
    s.prepare()
    s.total_steps = 1000
    rss_after_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    micro = [(s.w_idx[:args.batch], s.a_idx[:args.batch])]

    def search_step(i: int) -> None:
        s.step(micro, 0, i, i, cfg.lr, arch_step=i % cfg.arch_interval == 0)

    def timed(fn, n: int) -> float:
        times = []
        for i in range(args.warmup + n):
            t0 = time.perf_counter()
            fn(i)
            if s.device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        return sum(times) / len(times)

    s.net.train()
    steps = args.steps - args.steps % cfg.arch_interval or cfg.arch_interval
    search_s = timed(search_step, steps)
    peak_search = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    spec = spec_from_supernet(s.net.cpu(), resolution=cfg.resolution, num_classes=s.num_classes)
    derived = transfer_weights(s.net, spec).to(s.device, memory_format=s.memory_format).train()
    opt = torch.optim.SGD(derived.parameters(), lr=0.01, momentum=0.9)

    def ssl_step(i: int) -> None:
        from edgenas.accelerator import autocast

        v1, v2 = s._batch_views(s.w_idx[:args.batch], 10_000 + i)
        opt.zero_grad(set_to_none=True)
        with autocast(cfg, s.device):
            z1, z2 = derived.project(torch.cat([v1, v2])).chunk(2)
        s.criterion(z1.float(), z2.float()).backward()
        opt.step()

    derived_s = timed(ssl_step, args.steps)
    print(json.dumps({
        "supernet": args.supernet, "threads": args.threads, "batch": args.batch, "device": str(s.device),
        "amp": args.amp, "channels": s.layout.channels, "cells": s.layout.cells, "arch_every": cfg.arch_interval,
        "recompute": cfg.recomputes,
        "search_step_s": round(search_s, 3), "derived_ssl_step_s": round(derived_s, 3),
        "ratio": round(search_s / derived_s, 2), "peak_rss_mb": round(peak_search),
        "rss_after_setup_mb": round(rss_after_setup),
        "supernet_params": sum(p.numel() for p in s.net.weight_parameters()),
        "derived_params": sum(p.numel() for p in derived.parameters()),
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="none", choices=["none", "bf16"])
    p.add_argument("--channels", type=int, default=0, help="0: the layout the default budgets give")
    p.add_argument("--cells", type=int, default=0)
    p.add_argument("--arch-every", type=int, default=None, help="[default: the search's]")
    p.add_argument("--supernets", default="full,sampled")
    p.add_argument("--recompute", action=argparse.BooleanOptionalAction, default=None,
                   help="recompute each edge's op in the backward pass [default: the search's: sampled only]")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.supernet = args.child
        args.arch_every = args.arch_every or 0
        child(args)
        return
    rows = []
    for supernet in args.supernets.split(","):
        cmd = [sys.executable, __file__, "--child", supernet, "--batch", str(args.batch), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--threads", str(args.threads), "--device", args.device, "--amp",
               args.amp, "--channels", str(args.channels), "--cells", str(args.cells)]
        if args.recompute is not None:
            cmd.append("--recompute" if args.recompute else "--no-recompute")
        if args.arch_every:
            cmd += ["--arch-every", str(args.arch_every)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'supernet':9} {'C':>4} {'cells':>5} {'every':>5} {'search s':>9} {'derived s':>9} {'ratio':>6} "
          f"{'peak MB':>8} {'params':>10} recompute")
    for r in rows:
        print(f"{r['supernet']:9} {r['channels']:4d} {r['cells']:5d} {r['arch_every']:5d} {r['search_step_s']:9.3f} "
              f"{r['derived_ssl_step_s']:9.3f} {r['ratio']:6.2f} {r['peak_rss_mb']:8d} {r['supernet_params']:10,} "
              f"{r['recompute']}")
    default = next((r for r in rows if r["supernet"] == "sampled"), rows[-1])
    print(f"supernet/derived step time ratio: {default['ratio']}")


if __name__ == "__main__":
    main()
