#!/usr/bin/env python3
"""Classify an image with the model of this bundle: ``python predict.py IMAGE [IMAGE...]``.

Written into every ``edgenas deploy`` bundle as ``predict.py``, next to the
artifact and its ``manifest.json``; it reads nothing else. It needs numpy,
Pillow and the artifact's runtime (onnxruntime, ai-edge-litert or
tflite-runtime, openvino, or TensorRT with polygraphy), never torch or edgenas,
so it runs on the board as it is. A TensorRT bundle holds the ONNX file: its
first run builds the engine for the GPU it runs on and keeps it beside it.

Preprocessing is the manifest's, as the network was trained and measured:
RGB, a centre square crop, a bilinear resize to the input side, then
``(pixel * scale - mean) / std`` per channel in the input's layout; an integer
input is quantized with the input's scale and zero point and an integer output
dequantized with the output's. It prints the top label and its softmax score
(``--top K`` for more, ``--json`` for one JSON object per image).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
INSTALL = {"onnx": "onnxruntime", "tflite": "ai-edge-litert", "openvino": "openvino",
           "tensorrt": "polygraphy (and TensorRT: JetPack's, or tensorrt from pip)"}


class PredictError(Exception):
    """Bad input or a missing runtime: printed as one line, exit code 2."""


def load_entry(manifest_path: Path) -> dict:
    """The manifest's one artifact entry (the bundle's)."""
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = [a for a in manifest["artifacts"] if a.get("status") == "ok"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PredictError(f"cannot read the manifest {manifest_path}: {exc}") from None
    if not entries:
        raise PredictError(f"{manifest_path} lists no artifact")
    return entries[0]


def preprocess(image_path: str, entry: dict) -> np.ndarray:
    """One image file as the model's input batch, float32 in the input's layout (not yet quantized)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    shape = entry["input"]["shape"]
    nchw = entry["input"].get("layout", "NCHW").upper() == "NCHW"
    height, width = (shape[2], shape[3]) if nchw else (shape[1], shape[2])
    norm = entry["normalisation"]
    try:
        with Image.open(image_path) as image:
            image = image.convert("RGB")
    except FileNotFoundError:
        raise PredictError(f"{image_path}: no such file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise PredictError(f"cannot read image {image_path}: {exc}") from None
    if image.size != (width, height):
        image = ImageOps.fit(image, (width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32) * np.float32(norm.get("scale", 1 / 255))
    x = (pixels - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    if nchw:
        x = x.transpose(2, 0, 1)
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else 1
    return np.ascontiguousarray(np.repeat(x[None], batch, axis=0), dtype=np.float32)


def quantize(x: np.ndarray, quantization: dict | None, dtype: str) -> np.ndarray:
    if not quantization or dtype not in ("int8", "uint8"):
        return x
    info = np.iinfo(dtype)
    q = np.round(x / quantization["scale"]) + quantization["zero_point"]
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, quantization: dict | None) -> np.ndarray:
    if not quantization or y.dtype.kind not in "iu":
        return y.astype(np.float32)
    return (y.astype(np.float32) - quantization["zero_point"]) * np.float32(quantization["scale"])


def engine_file(path: str) -> Path:
    """Where :func:`tensorrt_runner` keeps the engine it builds from the ONNX file ``path``."""
    return Path(path).with_suffix(".engine")


def tensorrt_runner(path: str, precision: str):
    """The ONNX file as a TensorRT engine on this machine's GPU, with the precision deploy measured (FP16 or INT8
    flags; FP32 without TF32). Built the first time and kept as ``<name>.engine`` beside it; built again where
    that engine does not load (another GPU or TensorRT version)."""
    import importlib
    import os

    importlib.import_module("tensorrt")  # polygraphy imports it lazily and reports its absence as its own error
    from polygraphy.backend.trt import (CreateConfig, EngineBytesFromNetwork, EngineFromBytes, NetworkFromOnnxPath,
                                        TrtRunner)

    saved = engine_file(path)
    engine = None
    if saved.is_file():
        try:
            engine = EngineFromBytes(saved.read_bytes())()
        except Exception:  # noqa: BLE001 - polygraphy raises its own error for an engine of another GPU
            pass
    if engine is None:
        config = CreateConfig(fp16=precision == "fp16", int8=precision == "int8")
        try:
            serialized = bytes(EngineBytesFromNetwork(NetworkFromOnnxPath(path), config=config)())
        except Exception as exc:  # noqa: BLE001 - no GPU, no CUDA driver, a failed build: polygraphy's errors
            lines = str(exc).strip().splitlines()
            raise PredictError(f"TensorRT could not build an engine of {Path(path).name}: "
                               f"{lines[0] if lines else type(exc).__name__}") from None
        try:
            partial = saved.with_name(f".{saved.name}.{os.getpid()}")
            partial.write_bytes(serialized)
            os.replace(partial, saved)
        except OSError:  # a read-only or full disk: built again next time
            partial.unlink(missing_ok=True)
        engine = EngineFromBytes(serialized)()
    trt = TrtRunner(engine)
    trt.activate()
    name = next(iter(trt.get_input_metadata()))
    return lambda x: next(iter(trt.infer({name: x}).values()))


def runner(entry: dict, threads: int | None):
    """``x -> logits`` of the bundle's artifact in its runtime."""
    path = str(HERE / entry["path"])
    fmt = entry["format"]
    kind = "tensorrt" if entry.get("runtime") == "tensorrt" else fmt
    try:
        if kind == "tensorrt":
            return tensorrt_runner(path, entry.get("precision", "fp32"))
        if fmt == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
            # the providers deploy measured (a Jetson's TensorRT or CUDA ones) where this onnxruntime has them
            available = ort.get_available_providers()
            providers = [p for p in entry.get("providers") or () if p in available and p != "CPUExecutionProvider"]
            session = ort.InferenceSession(path, options, providers=[*providers, "CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            return lambda x: session.run(None, {name: x})[0]
        if fmt == "tflite":
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                from tflite_runtime.interpreter import Interpreter
            interpreter = Interpreter(model_path=path, num_threads=threads)
            interpreter.allocate_tensors()
            inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

            def run(x):
                interpreter.set_tensor(inp["index"], x)
                interpreter.invoke()
                return interpreter.get_tensor(out["index"])
            return run
        if fmt == "openvino":
            import openvino as ov

            # as the deploy measured it: f32 arithmetic outside the INT8 ops (OpenVINO would pick bf16 on a CPU
            # that has it), one stream, latency first
            config = {"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
            compiled = ov.Core().compile_model(path, "CPU", config)
            return lambda x: compiled(x)[compiled.output(0)]
    except ImportError:
        raise PredictError(f"the {kind} runtime is not installed: pip install {INSTALL[kind]}") from None
    raise PredictError(f"unknown artifact format {fmt!r} in the manifest")


def labels_of(entry: dict, classes: int) -> list[str]:
    names = list(entry.get("labels") or [])
    if not names and (HERE / "labels.txt").is_file():
        names = (HERE / "labels.txt").read_text().splitlines()
    return names if len(names) == classes else [str(i) for i in range(classes)]


def predict(images: list[str], top: int = 1, threads: int | None = None,
            manifest: Path = HERE / "manifest.json") -> list[dict]:
    """``[{"image", "top": [{"label", "index", "score"}, ...]}]``, one per image, best first."""
    entry = load_entry(manifest)
    missing = [image for image in images if not Path(image).is_file()]
    if missing:
        raise PredictError(f"{missing[0]}: no such file")
    run = runner(entry, threads)
    output = (entry.get("outputs") or [{}])[0]
    results = []
    for image in images:
        x = quantize(preprocess(image, entry), entry["input"].get("quantization"), entry["input"].get("dtype", ""))
        logits = dequantize(np.asarray(run(x)), output.get("quantization"))[0].reshape(-1)
        scores = np.exp(logits - logits.max())
        scores /= scores.sum()
        names = labels_of(entry, len(scores))
        best = np.argsort(-scores, kind="stable")[:top]
        ranked = [{"label": names[i], "index": int(i), "score": round(float(scores[i]), 5)} for i in best]
        results.append({"image": image, "top": ranked})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify images with this bundle's model.")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--top", type=int, default=1, help="How many labels to print per image (default 1).")
    parser.add_argument("--threads", type=int, default=None, help="Inference threads (default: the runtime's).")
    parser.add_argument("--json", action="store_true", help="One JSON object per image.")
    args = parser.parse_args(argv)
    if args.top < 1 or (args.threads is not None and args.threads < 1):
        print("error: --top and --threads take integers >= 1", file=sys.stderr)
        return 2
    try:
        results = predict(args.images, args.top, args.threads)
    except PredictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            best = ", ".join(f"{t['label']} {t['score']:.3f}" for t in r["top"])
            print(f"{r['image']}: {best}" if len(results) > 1 else best)
    return 0


if __name__ == "__main__":
    sys.exit(main())
