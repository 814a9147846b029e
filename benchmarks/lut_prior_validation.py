"""How well does the analytic latency model (edgenas.latency.prior) rank architectures on this machine?

The prior tables shipped for boards we cannot reach (devices/luts/) come from a
roofline of each block fed with the board's published figures. This script
builds the same kind of table for the ``local`` device from this CPU's own
figures (cores, clock and SIMD width probed from the host; memory bandwidth
measured here, see below), then measures ``--n`` random architectures of
``Layout()`` and ``Layout(resolution=96)`` with ONNX Runtime on 1 thread (each
in a fresh ``bench.worker`` process, BN folded, random weights) and compares:

* raw: the table's prediction as is (sum of the blocks' ``net_ms`` + the call overhead);
* rescaled: ``a * raw + b`` with ``a, b`` fitted (relative least squares) on the
  first 10 networks and scored on the others. A positive rescale leaves Spearman
  as it is; it shows how much of the error is a scale the model gets wrong.
* MACs alone: Spearman of the networks' MAC count, the proxy the roofline should beat.

Memory bandwidth: the OS does not say, so it is measured as the best of 5
``numpy.copyto`` of a 256 MiB float32 array (2 x 256 MiB moved per copy: one
read, one write). That is a sustained figure; the model applies
``MEMORY_EFFICIENCY`` to the theoretical peak a profile states, so the profile
gets ``measured / MEMORY_EFFICIENCY``.

    CI=true python benchmarks/lut_prior_validation.py [--n 100] [--seed 1] [--runs 100] [--warmup 20]

Takes 2-4 minutes on 2 cores; run it on a quiet machine. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def copy_bandwidth_gbs(mib: int = 256, repeats: int = 5) -> float:
    """Sustained copy bandwidth (GB/s, read + write counted) of a ``mib`` MiB float32 array, best of ``repeats``."""
    import numpy as np

    src = np.ones(mib * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the pages in
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        np.copyto(dst, src)
        best = min(best, (time.perf_counter_ns() - t0) / 1e9)
    return 2 * src.nbytes / best / 1e9


def fit_rescale(predicted: list[float], measured: list[float]) -> tuple[float, float]:
    """``a, b`` minimising ``sum(((a * p + b - m) / m) ** 2)`` (relative least squares, 2 unknowns)."""
    rows = [(p / m, 1 / m) for p, m in zip(predicted, measured)]
    s11 = sum(x * x for x, _ in rows)
    s12 = sum(x * y for x, y in rows)
    s22 = sum(y * y for _, y in rows)
    t1 = sum(x for x, _ in rows)
    t2 = sum(y for _, y in rows)
    det = s11 * s22 - s12 * s12
    return (t1 * s22 - t2 * s12) / det, (s11 * t2 - s12 * t1) / det


def scores(predicted: list[float], measured: list[float]) -> dict:
    from bench.latency_table import spearman

    errors = [abs(p - m) / m for p, m in zip(predicted, measured)]
    return {"mape_pct": 100 * sum(errors) / len(errors), "within_10pct": sum(e <= 0.10 for e in errors) / len(errors),
            "spearman": spearman(predicted, measured)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="random architectures to measure")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--fit", type=int, default=10, help="networks the 2-parameter rescale is fitted on")
    args = parser.parse_args()
    if args.n <= args.fit + 1:
        raise SystemExit("--n must exceed --fit + 1")

    from bench.latency_table import LatencyTable, spearman
    from devices.profiles import load_profile
    from devices.transports.local import LocalTransport
    from edgenas.latency.keys import Layout
    from edgenas.latency.measure import Timing, measure_specs
    from edgenas.latency.prior import (
        MEMORY_EFFICIENCY,
        block_features,
        core_traits,
        prior_table,
    )
    from edgenas.latency.spaces import arch_keys, sample_specs
    from edgenas.space.ops import DEFAULT_OPS

    bandwidth = copy_bandwidth_gbs()
    profile = dataclasses.replace(load_profile("local"), mem_bandwidth_gbs=bandwidth / MEMORY_EFFICIENCY)
    layouts = [Layout(), Layout(resolution=96)]
    t0 = time.perf_counter()
    table = LatencyTable(prior_table(profile, layouts, DEFAULT_OPS, runtime="ort", precision="fp32", threads=1))
    build_s = time.perf_counter() - t0
    specs = sample_specs(args.n, args.seed, layouts, DEFAULT_OPS)
    predicted = [table.predict(arch_keys(s)) for s in specs]
    macs = [sum(block_features(k)["macs"] for k in arch_keys(s)) for s in specs]

    done = [0]

    def step():
        done[0] += 1
        print(f"\rmeasured {done[0]}/{args.n}", end="", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    measured = measure_specs(specs, LocalTransport().run_job, "ort", "fp32", threads=1,
                             timing=Timing(args.warmup, args.runs), progress=step)
    measure_s = time.perf_counter() - t0
    print(file=sys.stderr)

    raw = scores(predicted, measured)
    a, b = fit_rescale(predicted[:args.fit], measured[:args.fit])
    held_p, held_m = predicted[args.fit:], measured[args.fit:]
    rescaled = scores([a * p + b for p in held_p], held_m)
    raw_held = scores(held_p, held_m)

    traits = core_traits(profile)
    print(f"# Analytic latency model vs measurement on this machine ({profile.cpu}, {profile.cores} cores, "
          f"{profile.clock_ghz} GHz, {profile.simd} {profile.simd_width_bits}-bit x {traits.fma_pipes} FMA pipes)\n")
    print(f"ORT fp32, 1 thread; {args.n} random architectures (seed {args.seed}) of Layout() and "
          f"Layout(resolution=96), {args.runs} timed runs after {args.warmup} warm-up each; measured copy "
          f"bandwidth {bandwidth:.1f} GB/s (profile given {profile.mem_bandwidth_gbs:.1f} GB/s = measured / "
          f"MEMORY_EFFICIENCY). Table computed in {build_s:.1f} s, networks measured in {measure_s:.0f} s.\n")
    print("| predictor | networks scored | MAPE | within +/-10% | Spearman |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| analytic, raw | all {args.n} | {raw['mape_pct']:.1f}% | {100 * raw['within_10pct']:.0f}% | "
          f"{raw['spearman']:.3f} |")
    print(f"| analytic, raw | held-out {len(held_m)} | {raw_held['mape_pct']:.1f}% | "
          f"{100 * raw_held['within_10pct']:.0f}% | {raw_held['spearman']:.3f} |")
    print(f"| analytic, rescaled a*x+b (a={a:.3f}, b={b:.4f} ms, fitted on the first {args.fit}) | held-out "
          f"{len(held_m)} | {rescaled['mape_pct']:.1f}% | {100 * rescaled['within_10pct']:.0f}% | "
          f"{rescaled['spearman']:.3f} |")
    print(f"| MACs alone (rank only) | all {args.n} | - | - | {spearman(macs, measured):.3f} |")
    for layout in layouts:
        idx = [i for i, s in enumerate(specs) if s.resolution == layout.resolution]
        if len(idx) > 2:
            p, m = [predicted[i] for i in idx], [measured[i] for i in idx]
            within = scores(p, m)
            print(f"| analytic, raw, resolution {layout.resolution} only | {len(idx)} | {within['mape_pct']:.1f}% | "
                  f"{100 * within['within_10pct']:.0f}% | {within['spearman']:.3f} (MACs alone "
                  f"{spearman([macs[i] for i in idx], m):.3f}) |")
    ratio = sorted(m / p for p, m in zip(predicted, measured))
    print(f"\nmeasured / predicted: median {ratio[len(ratio) // 2]:.2f}, range {ratio[0]:.2f}-{ratio[-1]:.2f}; "
          f"measured p50 {min(measured):.3f}-{max(measured):.3f} ms")


if __name__ == "__main__":
    main()
