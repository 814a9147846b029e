"""Throughput of the data pipeline at batch 64, 32x32, on this machine's CPU.

Measures:
  * synthetic rendering, images/s per level (one process, numpy);
  * Barlow Twins two-view augmentation, pairs/s: batched vs per-image torchvision v2;
  * JPEG decoding through load_dataset("imagefolder"), images/s, if the CIFAR-10
    JPEG tree is extracted (see /work/shared/datasets/README.md).

Run: ``python benchmarks/data_throughput.py [--threads 1] [--json out.json]``.
Figures depend on load: other processes on a 2-core machine slow torch's
multi-threaded small ops a lot, so the thread count used is printed.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from edgenas.data.datasets import DEFAULT_DATA_ROOT, load_dataset
from edgenas.data.synthetic import LEVELS, SyntheticShapes
from edgenas.data.views import BarlowTwinsViews, ReferenceBarlowTwinsViews

BATCH = 64
RESOLUTION = 32


def _seconds(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e9


def synthetic_rate(level: int, batches: int) -> dict:
    dataset = SyntheticShapes(BATCH * (batches + 1), level=level, resolution=RESOLUTION, seed=0)
    for i in range(BATCH):  # warm-up: caches of pixel grids
        dataset[i]
    start = time.perf_counter_ns()
    for i in range(BATCH, BATCH * (batches + 1)):
        dataset[i]
    elapsed = _seconds(start)
    count = BATCH * batches
    return {"what": f"synthetic level {level}", "images_per_s": count / elapsed, "ms_per_image": 1e3 * elapsed / count}


def views_rate(views, name: str, batches: int) -> dict:
    images = torch.randint(0, 256, (BATCH, 3, RESOLUTION, RESOLUTION), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    views(images, generator)  # warm-up
    start = time.perf_counter_ns()
    for _ in range(batches):
        views(images, generator)
    elapsed = _seconds(start)
    return {"what": name, "pairs_per_s": BATCH * batches / elapsed, "ms_per_batch": 1e3 * elapsed / batches}


def jpeg_rate(tree: Path, count: int) -> dict | None:
    if not (tree / "train").is_dir():
        return None
    start = time.perf_counter_ns()
    data = load_dataset("imagefolder", tree, size=count, seed=0, resolution=RESOLUTION)
    elapsed = _seconds(start)
    return {"what": f"imagefolder decode {len(data)} JPEGs", "images_per_s": len(data) / elapsed, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--batches", type=int, default=20, help="timed batches of 64 per figure")
    parser.add_argument("--jpeg-count", type=int, default=5000, help="JPEGs to decode (stratified subset)")
    parser.add_argument("--jpeg-tree", type=Path, default=DEFAULT_DATA_ROOT / "cifar10-jpg")
    parser.add_argument("--json", type=Path, help="also write the records to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    records = [synthetic_rate(level, args.batches) for level in LEVELS]
    records.append(views_rate(BarlowTwinsViews(RESOLUTION), "two views, batched (1 thread)", args.batches))
    if args.threads != 1:
        unpinned = BarlowTwinsViews(RESOLUTION, threads=None)
        records.append(views_rate(unpinned, f"two views, batched ({args.threads} threads)", args.batches))
    reference = ReferenceBarlowTwinsViews(RESOLUTION)
    records.append(views_rate(reference, "two views, per-image v2", max(2, args.batches // 5)))
    jpeg = jpeg_rate(args.jpeg_tree, args.jpeg_count)
    if jpeg is not None:
        records.append(jpeg)

    cpu = platform.processor() or platform.machine()
    print(f"batch {BATCH}, {RESOLUTION}x{RESOLUTION}, torch threads {args.threads}, {cpu}")
    for record in records:
        figures = ", ".join(f"{k} {v:,.3f}" if v < 100 else f"{k} {v:,.0f}" for k, v in record.items() if k != "what")
        print(f"  {record['what']:<36} {figures}")
    if jpeg is None:
        print(f"  (no JPEG tree at {args.jpeg_tree}: decode rate not measured)")
    if args.json:
        meta = {"batch": BATCH, "resolution": RESOLUTION, "threads": args.threads, "torch": torch.__version__}
        args.json.write_text(json.dumps({"meta": meta, "records": records}, indent=2))


if __name__ == "__main__":
    main()
