"""Size, export time and parity of every exported format x precision, and the ONNX INT8 option sweep.

For latency use ``edgenas sweep`` (each artifact in its own torch-free worker
process): this script times all artifacts interleaved in one process that also
holds torch and JAX, and reads about 2x higher than the harness (rankings agree).
It stays for ``--onnx-int8-sweep`` (QDQ vs QOperator, activation types,
per-tensor weights, calibration methods, excluded ops), whose comparison is
within one process and one model.

Models: the searched network of a run directory and MobileNetV3-Small at 32x32
and 96x96. Each is exported through ``exporters.export`` (the same path as
``edgenas export``), then every artifact is timed in its runtime with one
thread: ``--warmup`` untimed rounds, then ``--runs`` timed single-image rounds in
which the artifacts of a model take turns (p50 and min, ms).

Formats are rows of :data:`FORMATS`; adding a format is adding its row.

    python benchmarks/export_latency.py --run runs/demo
    python benchmarks/export_latency.py --run runs/demo --formats onnx --onnx-int8-sweep
    python benchmarks/export_latency.py --mnv3-weights w.pt --data imagefolder --data-root ~/.cache/edgenas/cifar10-jpg

Numbers depend on the machine and its load: on a shared 2-core machine a busy
neighbour core changes them by 10-30%; compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: format -> precisions benchmarked
FORMATS: dict[str, tuple[str, ...]] = {
    "onnx": ("fp32", "fp16", "int8"),
    "tflite": ("fp32", "fp16", "int8"),
    "openvino": ("fp32", "fp16", "int8"),
}


def time_runners(runners: list, x: np.ndarray, warmup: int = 50, runs: int = 300) -> list[dict[str, float]]:
    """Latency (ms) of each ``runner.run(x)``: ``warmup`` untimed rounds, then ``runs`` timed ones.

    The runners take turns within each round, so a neighbour's load on this
    shared machine slows them all alike and the comparison between them holds.
    """
    for _ in range(warmup):
        for runner in runners:
            runner.run(x)
    times = np.empty((len(runners), runs))
    for i in range(runs):
        for j, runner in enumerate(runners):
            start = time.perf_counter_ns()
            runner.run(x)
            times[j, i] = (time.perf_counter_ns() - start) / 1e6
    return [{"p50_ms": float(np.percentile(t, 50)), "p90_ms": float(np.percentile(t, 90)), "min_ms": float(t.min())}
            for t in times]


def models(args) -> list[tuple[str, str, int, str | None]]:
    """(label, target, resolution, weights) of each benchmarked network."""
    out = []
    if args.run:
        out.append(("searched", args.run, 32, None))
    for res in args.mnv3_resolutions:
        out.append((f"mnv3s@{res}", "mobilenet_v3_small", res, args.mnv3_weights))
    return out


def load(target: str, resolution: int, weights: str | None, args):
    from edgenas.deploy.source import DataOptions, load_data, resolve_source

    source = resolve_source(target, weights=weights, resolution=resolution)
    if args.mean and source.kind == "baseline":  # the normalisation the baseline was trained with
        source = replace(source, mean=tuple(args.mean), std=tuple(args.std))
    data = DataOptions(args.data, args.data_root, 0, source.data.level) if args.data else source.data
    arrays = load_data(source, data, args.calib, args.parity_samples)
    return source, arrays


def bench_formats(args) -> list[dict]:
    import torch

    from bench.runtimes import open_runner
    from exporters.api import export
    from exporters.errors import ExportError
    from exporters.spec import InputSpec

    torch.set_num_threads(1)
    rows = []
    for label, target, res, weights in models(args):
        source, arrays = load(target, res, weights, args)
        spec = InputSpec(shape=(1, 3, res, res), mean=arrays.mean, std=arrays.std)
        with tempfile.TemporaryDirectory() as tmp:
            timed = []
            for fmt in args.formats:
                precs = [p for p in FORMATS[fmt] if p in args.precisions]
                try:
                    manifest = export(source.model, spec, fmt, precs, Path(tmp) / fmt, calib=arrays.calib,
                                      parity_inputs=arrays.parity, parity_labels=arrays.parity_labels)
                except ExportError as exc:
                    manifest = getattr(exc, "manifest", None)
                    print(f"{label} {fmt}: {exc}", file=sys.stderr)
                    if manifest is None:
                        continue
                for a in manifest.artifacts:
                    row = {"model": label, "format": fmt, "precision": a.precision, "status": a.status}
                    if a.status == "ok":
                        row.update(kib=a.bytes / 1024, export_s=a.export_time_s,
                                   agree=a.parity["top1_agreement"], acc=a.parity.get("accuracy"),
                                   ref_acc=a.parity.get("reference_accuracy"))
                        timed.append((row, open_runner(Path(tmp) / fmt / a.path, a.runtime)))
                    else:
                        row["error"] = a.error
                    rows.append(row)
            for (row, _), stats in zip(timed, time_runners([r for _, r in timed], arrays.parity[:1],
                                                           args.warmup, args.runs), strict=True):
                row.update(stats)
            for _, runner in timed:
                runner.close()
    return rows


def int8_variants():
    from exporters.formats.onnx import OnnxInt8Config

    return {
        "QDQ U8S8 per-ch MinMax (default)": OnnxInt8Config(),
        "QOperator U8S8 per-ch MinMax": OnnxInt8Config(quant_format="QOperator"),
        "QDQ S8S8 per-ch MinMax": OnnxInt8Config(activation_type="QInt8"),
        "QDQ U8S8 per-tensor MinMax": OnnxInt8Config(per_channel=False),
        "QDQ U8S8 per-ch Entropy": OnnxInt8Config(calibrate_method="Entropy"),
        "QDQ U8S8 per-ch Percentile": OnnxInt8Config(calibrate_method="Percentile"),
        "QDQ U8S8 per-ch, Mul/Add/Sigmoid float": OnnxInt8Config(exclude_op_types=("Mul", "Add", "Sigmoid",
                                                                                   "HardSigmoid")),
        "QDQ U8S8 per-ch, Conv/Gemm only": OnnxInt8Config(op_types=("Conv", "Gemm", "MatMul")),
    }


def onnx_int8_sweep(args) -> list[dict]:
    """Each :class:`OnnxInt8Config` variant: calibration+export time, latency, size, parity."""
    import torch

    from bench.runtimes import open_runner
    from exporters.errors import ExportError
    from exporters.formats.onnx import OnnxExporter
    from exporters.freeze import freeze
    from exporters.parity import check_parity
    from exporters.spec import InputSpec

    torch.set_num_threads(1)
    rows = []
    for label, target, res, weights in models(args):
        source, arrays = load(target, res, weights, args)
        frozen = freeze(source.model)
        spec = InputSpec(shape=(1, 3, res, res), mean=arrays.mean, std=arrays.std)
        timed = []
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = OnnxExporter().export(frozen, spec, "fp32", Path(tmp), "fp32")[0]
            runner = open_runner(fp32)
            parity = check_parity(frozen, runner, arrays.parity, arrays.parity_labels, "fp32")
            timed.append(({"model": label, "variant": "FP32 (reference)", "export_s": float("nan"),
                           "kib": fp32.stat().st_size / 1024, "agree": parity["top1_agreement"],
                           "acc": parity.get("accuracy"), "ref_acc": parity.get("reference_accuracy")}, runner))
            for i, (name, cfg) in enumerate(int8_variants().items()):
                start = time.perf_counter()
                try:
                    path = OnnxExporter(int8=cfg).export(frozen, spec, "int8", Path(tmp), f"v{i}",
                                                         calib=arrays.calib)[0]
                except ExportError as exc:
                    rows.append({"model": label, "variant": name, "error": str(exc)})
                    continue
                seconds = time.perf_counter() - start
                runner = open_runner(path)
                parity = check_parity(frozen, runner, arrays.parity, arrays.parity_labels, "int8")
                timed.append(({"model": label, "variant": name, "export_s": seconds,
                               "kib": path.stat().st_size / 1024, "agree": parity["top1_agreement"],
                               "acc": parity.get("accuracy"), "ref_acc": parity.get("reference_accuracy")}, runner))
            stats = time_runners([r for _, r in timed], arrays.parity[:1], args.warmup, args.runs)
            for (row, runner), st in zip(timed, stats, strict=True):
                row.update(st)
                rows.append(row)
                runner.close()
    return rows


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_rows(rows: list[dict], key: str) -> None:
    print(f"| model | {key} | p50 ms | min ms | KiB | export s | top-1 agree | acc | torch acc |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        name = f"{r['format']} {r['precision']}" if key == "artifact" else r["variant"]
        if "error" in r:
            print(f"| {r['model']} | {name} | failed: {r['error'][:80]} |||||||")
            continue
        print(f"| {r['model']} | {name} | {r['p50_ms']:.3f} | {r['min_ms']:.3f} | {r['kib']:.1f} | "
              f"{r['export_s']:.2f} | {r['agree']:.2%} | {_fmt(r['acc'], '.2%')} | {_fmt(r['ref_acc'], '.2%')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo", help="run directory of the searched model ('' to skip)")
    parser.add_argument("--mnv3-resolutions", type=int, nargs="*", default=[32, 96])
    parser.add_argument("--mnv3-weights", default=None, help="trained MobileNetV3-Small state dict")
    parser.add_argument("--formats", nargs="*", default=list(FORMATS), choices=list(FORMATS))
    parser.add_argument("--precisions", nargs="*", default=["fp32", "fp16", "int8"])
    parser.add_argument("--data", default=None, help="data of calibration and parity (default: the run's)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--mean", type=float, nargs=3, default=None, help="baselines: training normalisation")
    parser.add_argument("--std", type=float, nargs=3, default=None)
    parser.add_argument("--calib", type=int, default=300)
    parser.add_argument("--parity-samples", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--onnx-int8-sweep", action="store_true", help="compare onnxruntime quantizer settings")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    rows = onnx_int8_sweep(args) if args.onnx_int8_sweep else bench_formats(args)
    print_rows(rows, "variant" if args.onnx_int8_sweep else "artifact")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
