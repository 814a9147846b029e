"""Fidelity of the bench harness: agreement with OpenVINO's benchmark_app, repeatability, harness overhead.

For three models of different sizes (MobileNetV3-Small at 32x32, MobileNetV2
0.35x at 224x224, EfficientNet-B0 at 160x160, random weights: latency does not
depend on them), exported to an FP32 OpenVINO IR:

1. our p50 (``bench.worker`` in a fresh process, 1 thread, f32, synchronous
   inference) next to ``benchmark_app``'s median on the same IR with the same
   settings (``-hint none -nthreads 1 -nstreams 1 -api sync -infer_precision f32``);
2. the coefficient of variation of our p50 over ``--repeats`` fresh-process runs;
3. the harness overhead (the timing loop around a no-op) as a share of p50.

    python benchmarks/bench_fidelity.py [--repeats 5] [--runs 1000] [--seconds 5]

Run it on a quiet machine: another busy process on a 2-core machine moves
latencies by 10-30%. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = (("mobilenet_v3_small", 32), ("mobilenet_v2_035", 224), ("efficientnet_b0", 160))


def export_ir(model: str, resolution: int, out: Path) -> Path:
    from edgenas.deploy.export import run_export

    run_export(model, "openvino", "fp32", out=str(out), resolution=resolution, parity_samples=16)
    return out / "model-fp32.xml"


def ours(xml: Path, runs: int, warmup: int) -> dict:
    """One measurement by the bench worker in a fresh process."""
    from bench.worker import make_job

    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps(make_job(xml, threads=1, runs=runs, warmup=warmup)))
        done = subprocess.run([sys.executable, "-m", "bench.worker", str(job)], cwd=ROOT, capture_output=True,
                              text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    record = json.loads(done.stdout.strip().splitlines()[-1])
    if "error" in record:
        raise SystemExit(f"worker failed on {xml}: {record['error']}")
    return record


def benchmark_app(xml: Path, seconds: int) -> float:
    """benchmark_app's median latency in ms (it prints microseconds or milliseconds)."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    cmd = [exe, "-m", str(xml), "-d", "CPU", "-hint", "none", "-nthreads", "1", "-nstreams", "1",
           "-api", "sync", "-infer_precision", "f32", "-t", str(seconds)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    match = re.search(r"Median:\s+([\d.]+)\s+(ms|us)", done.stdout)
    if not match:
        raise SystemExit(f"benchmark_app printed no median:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "us" else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=5, help="benchmark_app -t")
    args = parser.parse_args()
    os.environ.setdefault("CI", "true")  # no OpenVINO telemetry prompt

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, res in MODELS:
            xml = export_ir(model, res, Path(tmp) / f"{model}-{res}")
            records, apps = [], []
            for _ in range(args.repeats):  # interleaved, so drifts hit both tools alike
                records.append(ours(xml, args.runs, args.warmup))
                apps.append(benchmark_app(xml, args.seconds))
            p50s = [r["p50_ms"] for r in records]
            p50, app = statistics.median(p50s), statistics.median(apps)
            cv = statistics.stdev(p50s) / statistics.mean(p50s) if len(p50s) > 1 else 0.0
            overhead = statistics.median(r["overhead_pct"] for r in records)
            rows.append((f"{model}@{res}", p50, app, 100 * (p50 / app - 1), 100 * cv, overhead,
                         records[0]["peak_rss_mb"]))
            print(f"{model}@{res}: ours {p50s} benchmark_app {apps}", file=sys.stderr, flush=True)

    print("| model | ours p50 ms | benchmark_app median ms | difference | CV of p50 over "
          f"{args.repeats} runs | harness overhead | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, p50, app, diff, cv, overhead, rss in rows:
        print(f"| {name} | {p50:.3f} | {app:.3f} | {diff:+.1f}% | {cv:.1f}% | {overhead:.3f}% | {rss:.0f} |")


if __name__ == "__main__":
    main()
