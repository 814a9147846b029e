"""Data-parallel scaling of the search step: images/s with 1 and N processes (torchrun), same global batch.

Each process count runs under ``torchrun --standalone`` (gloo on the CPU, NCCL on
GPUs); rank 0 times ``--steps`` DARTS steps (arch + weights step, both views) of
the default space after ``--warmup`` steps and prints one JSON line. On the CPU
every process gets ``cores / N`` threads, so 1 process x 2 threads is compared
with 2 processes x 1 thread.

    python benchmarks/ddp_throughput.py --nprocs 1,2 --batch 64          # this CPU
    python benchmarks/ddp_throughput.py --nprocs 1 --batch 256 --device cuda   # a lent GPU
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from edgenas.search.config import SearchConfig
    from edgenas.search.darts import DartsSearch

    cfg = SearchConfig(strategy="darts", out="/tmp/edgenas-ddp-bench-unused", subset=max(4 * args.batch, 512), batch_size=args.batch,
                       progress=False, device=args.device, sync_bn=args.sync_bn, amp=args.amp)
    s = DartsSearch(cfg)
    s.prepare()
    times = []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        s.a_opt.zero_grad(set_to_none=True)
        (s._loss(*s._batch_views(s.a_idx[:args.batch], step)) + s.penalty()).backward()
        s.a_opt.step()
        s.w_opt.zero_grad(set_to_none=True)
        s._loss(*s._batch_views(s.w_idx[:args.batch], 10_000 + step)).backward()
        s.w_opt.step()
        if s.device.type == "cuda":
            torch.cuda.synchronize()
        s.world.barrier()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    if s.world.main:
        median = times[len(times) // 2]
        print(json.dumps({"processes": s.world.size, "threads_per_process": args.threads, "batch": args.batch,
                          "device": str(s.device), "step_s_median": round(median, 3),
                          "images_per_s": round(4 * args.batch / median, 1)}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nprocs", default="1,2")
    p.add_argument("--batch", type=int, default=64, help="Global batch (split among the processes).")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--sync-bn", action="store_true")
    p.add_argument("--amp", default="none")
    p.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    cores = os.cpu_count() or 1
    rows = []
    for n in (int(v) for v in args.nprocs.split(",")):
        threads = max(1, cores // n) if args.device == "cpu" else 1
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", __file__,
               "--child", "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--device", args.device, "--threads", str(threads), "--amp", args.amp] + \
            (["--sync-bn"] if args.sync_bn else [])
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CI": "true",
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("{")), None)
        if line is None:
            sys.exit(f"{n} process(es) failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(line))
        print(line)
    base = rows[0]["images_per_s"]
    print("\n| processes | threads each | global batch | s / step | images/s | vs first |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['processes']} | {r['threads_per_process']} | {r['batch']} | {r['step_s_median']} | "
              f"{r['images_per_s']} | {r['images_per_s'] / base:.2f}x |")


if __name__ == "__main__":
    main()
