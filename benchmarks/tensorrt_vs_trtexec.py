"""The bench's TensorRT latency against TensorRT's own ``trtexec`` on the same engine (an NVIDIA GPU only).

For three networks (``fast_cnn`` and MobileNetV3-Small at 32x32, MobileNetV2
0.35x at 224x224, random weights: latency does not depend on them), exported
to ONNX in FP32 and INT8 (QDQ, calibrated on random inputs), and FP16 built
from the FP32 ONNX:

1. the bench runtime ``tensorrt`` builds each engine on this GPU (cached, see
   ``bench/runtimes/tensorrt.py``);
2. ``bench.worker`` times that engine in a fresh process (copy in, execute,
   copy out, synchronize; its p50);
3. ``trtexec --loadEngine`` times the same engine file; its "Latency" median
   includes the same host-device copies ("GPU Compute Time" leaves them out).

    python benchmarks/tensorrt_vs_trtexec.py [--repeats 3] [--runs 2000] [--trtexec PATH]

Needs tensorrt (8.5+), polygraphy and trtexec (``/usr/src/tensorrt/bin`` on a
Jetson). Prints a markdown table; the goal (issue 19) is agreement within 10%.
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

MODELS = (("fast_cnn", 32), ("mobilenet_v3_small", 32), ("mobilenet_v2_035", 224))
TRTEXEC_PLACES = ("/usr/src/tensorrt/bin/trtexec", "/usr/local/tensorrt/bin/trtexec")


def export_onnx(model: str, resolution: int, out: Path) -> Path:
    from edgenas.deploy.export import run_export

    run_export(model, "onnx", "fp32,int8", out=str(out), resolution=resolution, parity_samples=16)
    return out


def engine_of(onnx: Path, extra: tuple = ()) -> tuple[Path, dict]:
    """Build (or find in the cache) the engine of ``onnx`` as the bench runtime does: (its path, its flags)."""
    from bench.runtimes.base import RunnerOptions, open_runner

    with open_runner(onnx, "tensorrt", RunnerOptions(extra=extra)) as runner:
        return runner.engine_path, dict(runner.flags)


def ours(engine: Path, runs: int, warmup: int) -> float:
    """The bench worker's p50 (ms) of ``engine`` in a fresh process."""
    from bench.worker import make_job

    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps(make_job(engine, runtime="tensorrt", runs=runs, warmup=warmup)))
        done = subprocess.run([sys.executable, "-m", "bench.worker", str(job)], cwd=ROOT, capture_output=True,
                              text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = done.stdout.strip().splitlines()
    record = json.loads(lines[-1]) if lines else {"error": done.stderr[-2000:]}
    if "error" in record:
        raise SystemExit(f"worker failed on {engine}: {record['error']}")
    return float(record["p50_ms"])


def trtexec(exe: str, engine: Path, runs: int) -> tuple[float, float]:
    """trtexec's median "Latency" and median "GPU Compute Time" (ms) of ``runs`` iterations."""
    cmd = [exe, f"--loadEngine={engine}", f"--iterations={runs}", "--duration=0", "--warmUp=500", "--avgRuns=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    found = {}
    for name in ("Latency", "GPU Compute Time"):
        match = re.search(rf"{name}: min = [\d.e+-]+ ms, max = [\d.e+-]+ ms, mean = [\d.e+-]+ ms, "
                          rf"median = ([\d.e+-]+) ms", done.stdout)
        if not match:
            raise SystemExit(f"trtexec printed no {name} median:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        found[name] = float(match.group(1))
    return found["Latency"], found["GPU Compute Time"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--trtexec", default=None, help="trtexec executable [default: PATH, then JetPack's place]")
    args = parser.parse_args()
    exe = args.trtexec or shutil.which("trtexec") or next((p for p in TRTEXEC_PLACES if Path(p).is_file()), None)
    if exe is None:
        raise SystemExit("trtexec not found: pass --trtexec PATH (it ships with TensorRT)")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("EDGENAS_TRT_CACHE", str(Path(tmp) / "engines"))
        for model, res in MODELS:
            out = export_onnx(model, res, Path(tmp) / f"{model}-{res}")
            for label, onnx, extra in (("fp32", out / "model-fp32.onnx", ()),
                                       ("fp16", out / "model-fp32.onnx", (("fp16", "1"),)),
                                       ("int8", out / "model-int8.onnx", ())):
                engine, flags = engine_of(onnx, extra)
                mine, theirs, compute = [], [], []
                for _ in range(args.repeats):  # interleaved, so drifts hit both tools alike
                    mine.append(ours(engine, args.runs, args.warmup))
                    latency, gpu = trtexec(exe, engine, args.runs)
                    theirs.append(latency)
                    compute.append(gpu)
                p50, median = statistics.median(mine), statistics.median(theirs)
                rows.append((f"{model}@{res}", label, flags, p50, median, statistics.median(compute),
                             100 * (p50 / median - 1)))
                print(f"{model}@{res} {label}: ours {mine} trtexec {theirs}", file=sys.stderr, flush=True)

    print("| model | precision | build flags | ours p50 ms | trtexec Latency median ms | "
          "trtexec GPU Compute median ms | difference |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name, label, flags, p50, median, gpu, diff in rows:
        on = ",".join(k for k, v in flags.items() if v) or "fp32"
        print(f"| {name} | {label} | {on} | {p50:.4f} | {median:.4f} | {gpu:.4f} | {diff:+.1f}% |")


if __name__ == "__main__":
    main()
