"""Latency predictor accuracy on this machine: build a table, predict held-out random networks, measure them.

For each runtime and resolution: ``edgenas lut build`` for the default search
layout (C=8, 3 cells, 3 nodes) at that resolution on device ``local`` with 1
thread, then ``--samples`` random architectures never used for the calibration
(another seed), each exported and measured in its own worker process.
Prints build time, MAPE, the share within +/-10% and Spearman's rank
correlation, as a markdown table.

    python benchmarks/lut_accuracy.py [--runtimes ort,openvino,litert] [--resolutions 32,96] [--samples 100]

Run it on a quiet machine (a busy second core moves latencies by 10-30%).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", default="ort,openvino,litert")
    parser.add_argument("--resolutions", default="32,96")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", default=None, help="Keep the tables and plots here. [default: a temp dir]")
    args = parser.parse_args()
    os.environ.setdefault("CI", "true")

    from bench.latency_table import LatencyTable
    from devices.profiles import load_profile
    from devices.transports.local import LocalTransport
    from edgenas.latency.build import build_table, validate_table
    from edgenas.latency.keys import Layout
    from edgenas.latency.measure import Timing
    from edgenas.latency.spaces import sample_specs
    from edgenas.space.ops import DEFAULT_OPS

    transport = LocalTransport()
    device = load_profile("local")
    fingerprint = transport.probe()["fingerprint"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        for runtime in args.runtimes.split(","):
            for res in (int(r) for r in args.resolutions.split(",")):
                layout = Layout(resolution=res)
                t0 = time.perf_counter()
                path = build_table([layout], DEFAULT_OPS, transport.run_job, device, fingerprint, runtime=runtime,
                                   threads=1, out=root / f"r{res}", timing=Timing(runs=args.runs))
                built = time.perf_counter() - t0
                table = LatencyTable.load(path)
                specs = sample_specs(args.samples, 12345, [layout], DEFAULT_OPS)
                t0 = time.perf_counter()
                result = validate_table(table, specs, transport.run_job, Timing(runs=args.runs))
                measured = time.perf_counter() - t0
                m = result["measured_ms"]
                rows.append((runtime, res, built, len(table.entries), table.calibration["mape_pct"],
                             result["n"], min(m), max(m), result["mape_pct"], 100 * result["within_10pct"],
                             result["spearman"], measured))
                print(f"{runtime}@{res}: build {built:.0f} s, MAPE {result['mape_pct']:.1f}%, "
                      f"{100 * result['within_10pct']:.0f}% within 10%, Spearman {result['spearman']:.3f}",
                      file=sys.stderr, flush=True)

    print("| runtime | resolution | table build | entries | fit MAPE | held-out nets | measured range ms "
          "| MAPE | within +/-10% | Spearman |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for runtime, res, built, entries, fit, n, lo, hi, mape, within, rho, _ in rows:
        print(f"| {runtime} | {res} | {built:.0f} s | {entries} | {fit:.1f}% | {n} | {lo:.3f}-{hi:.3f} | "
              f"{mape:.1f}% | {within:.0f}% | {rho:.3f} |")


if __name__ == "__main__":
    main()
