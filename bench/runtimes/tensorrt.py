"""TensorRT engines on an NVIDIA GPU (tensorrt + polygraphy + numpy, never torch).

An engine is specific to the GPU, the TensorRT version and the build flags, so
it is built on the machine that runs it: an ``.onnx`` opened in this runtime is
parsed and built into an engine there the first time, and the serialized
engine is cached under ``$EDGENAS_TRT_CACHE`` (default
``~/.cache/edgenas/tensorrt``), keyed by the ONNX file's sha256, the flags,
TensorRT's version and the host. A ``.engine`` or ``.plan`` file is
deserialized as it is (its metadata from a ``<file>.json`` beside it, which
:func:`save_engine` writes).

Precision of an engine built from ONNX, from the network TensorRT parsed:

- Quantize/Dequantize layers (our INT8 export is QDQ, calibrated by the
  exporter on the calibration images): explicit quantization, the INT8 flag;
- FP16 weights or arithmetic (our FP16 export: fp16 weights and casts inside,
  float32 input and output; its metadata says ``precision: fp16``) or a
  float16 input: the FP16 flag;
- otherwise FP32 with TF32 off, the arithmetic the parity checks compare.

``options.extra``: ``("fp16", "1")`` builds FP16 from an FP32 ONNX (TensorRT's
usual FP16 path); ``("workspace_mb", N)`` caps the builder's workspace
(default 1024); ``("max_batch", N)`` the largest batch of a dynamic-batch ONNX
(default 64).

The timed call (:meth:`TensorRTRunner.prepare`) is what an app does per
frame: copy the input to the GPU, ``execute_async_v3``, copy the outputs back,
synchronize the stream. That is what ``trtexec`` reports as "Latency" (its
"GPU Compute Time" leaves the copies out). Needs TensorRT 8.5 or newer.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np

from bench.errors import ArtifactError, RuntimeMissingError
from bench.runtimes.base import Runner, RunnerOptions, dequantize, first_line

#: file suffixes deserialized as engines; anything else is parsed as ONNX
ENGINE_SUFFIXES = (".engine", ".plan")


def _import_tensorrt():
    """(tensorrt, polygraphy.backend.trt, polygraphy.cuda) or RuntimeMissingError."""
    try:
        import tensorrt as trt
    except ImportError:
        raise RuntimeMissingError("tensorrt is not installed: it comes with JetPack on a Jetson "
                                  "(python3-libnvinfer), elsewhere pip install tensorrt") from None
    try:
        from polygraphy import cuda
        from polygraphy.backend import trt as poly_trt
        from polygraphy.logger import G_LOGGER
    except ImportError:
        raise RuntimeMissingError("polygraphy is not installed: pip install polygraphy") from None
    G_LOGGER.module_severity = G_LOGGER.ERROR  # its info lines would land above the bench worker's JSON
    if not hasattr(trt.IExecutionContext, "execute_async_v3"):
        raise RuntimeMissingError(f"TensorRT {trt.__version__} is too old: the tensorrt runtime needs 8.5 or newer")
    return trt, poly_trt, cuda


def _errors() -> tuple[type[BaseException], ...]:
    from polygraphy.exception import PolygraphyException

    return (PolygraphyException, RuntimeError, ValueError, TypeError, OSError)


def cache_dir() -> Path:
    """Where engines built from ONNX are kept: ``$EDGENAS_TRT_CACHE`` or ``~/.cache/edgenas/tensorrt``."""
    return Path(os.environ.get("EDGENAS_TRT_CACHE") or Path.home() / ".cache" / "edgenas" / "tensorrt")


def engine_key(onnx_bytes: bytes, flags: dict, trt_version: str, host: str | None = None) -> str:
    """The cache name of an engine: ONNX content, build flags, TensorRT version and host, hashed."""
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    text = json.dumps({"onnx": digest, "flags": flags, "tensorrt": trt_version,
                       "host": host if host is not None else platform.node()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ONNX model's ``metadata_props`` through onnx or onnxruntime, whichever is installed; {} with neither."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return {p.key: p.value for p in model.metadata_props}
    except ImportError:
        pass
    try:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)
    except ImportError:
        return {}


def build_flags(network, trt, extra: dict, metadata: dict | None = None) -> dict:
    """The builder flags for a parsed network: int8 for QDQ layers; fp16 for an FP16 export (its metadata),
    a half input or half tensors inside (an FP16 ONNX converted with float32 I/O), or when asked."""
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    qdq = {trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE}
    int8 = any(layer.type in qdq for layer in layers)
    half = (metadata or {}).get("precision") == "fp16" \
        or any(network.get_input(i).dtype == trt.float16 for i in range(network.num_inputs)) \
        or any(layer.get_output(j).dtype == trt.float16 for layer in layers for j in range(layer.num_outputs))
    asked = str(extra.get("fp16", "0")).lower() in ("1", "true", "yes")
    return {"int8": int8, "fp16": half or asked}


def _positive_int(extra: dict, key: str, default: int) -> int:
    try:
        value = int(extra.get(key, default))
    except ValueError:
        value = 0
    if value < 1:
        raise ArtifactError(f"tensorrt option {key} must be a positive integer, got {extra.get(key)!r}")
    return value


class TensorRTRunner(Runner):
    """One engine on GPU 0, built from an ``.onnx`` here (and cached) or deserialized from ``.engine``/``.plan``.

    Inputs are float32 batches in the model's layout (NCHW for our exports); a
    float16 input is cast, an int8 input (none of our exports has one) is
    quantized with ``input_scale``/``input_zero_point`` from the metadata.
    Outputs come back as float32. :attr:`flags` says how the engine was built
    (``int8``, ``fp16``) and :attr:`engine_path` where it is.

    Raises (constructor):
        RuntimeMissingError: tensorrt or polygraphy is missing, or TensorRT is older than 8.5.
        ArtifactError: the file is missing, TensorRT cannot parse, build or deserialize it,
            or it has more than one input.
    """

    name = "tensorrt"

    def __init__(self, path, options: RunnerOptions = RunnerOptions()) -> None:
        super().__init__(path, options)
        trt, poly_trt, cuda = _import_tensorrt()
        self._trt, self._cuda = trt, cuda
        self._logger = trt.Logger(trt.Logger.ERROR)
        extra = dict(options.extra)
        try:
            self._runtime = trt.Runtime(self._logger)  # kept: an engine must not outlive its runtime
            if self.path.suffix.lower() in ENGINE_SUFFIXES:
                self.flags: dict = {}
                self.engine_path = self.path
                sidecar = self.path.with_name(self.path.name + ".json")
                self._metadata = json.loads(sidecar.read_text()).get("metadata", {}) if sidecar.is_file() else {}
                self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            else:
                self._engine = self._engine_from_onnx(trt, poly_trt, extra)
        except _errors() as exc:
            raise ArtifactError(f"TensorRT cannot load {self.path.name}: {first_line(exc)}") from None
        if self._engine is None:
            raise ArtifactError(f"TensorRT cannot deserialize {self.path.name}: built for another GPU or "
                                f"TensorRT version, or not an engine")
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise ArtifactError(f"{self.path.name} has {len(inputs)} inputs; the runner feeds models with one")
        self._input = inputs[0]
        self._outputs = [n for n in names if n != self._input]
        self._context = self._engine.create_execution_context()
        self._stream = cuda.Stream()
        self._buffers: dict[str, object] = {}
        self._quant = None
        if self.input_dtype in ("int8", "uint8"):
            try:
                self._quant = (float(self._metadata["input_scale"]), int(self._metadata["input_zero_point"]))
            except (KeyError, ValueError):
                raise ArtifactError(f"{self.path.name} has an {self.input_dtype} input but no "
                                    f"input_scale/input_zero_point metadata") from None

    def _engine_from_onnx(self, trt, poly_trt, extra: dict):
        """The engine of this ONNX file: from the cache, or built on this GPU and cached (None: not deserializable)."""
        data = self.path.read_bytes()
        self._metadata = onnx_metadata(self.path)
        builder, network, parser = poly_trt.NetworkFromOnnxBytes(data)()
        self.flags = build_flags(network, trt, extra, self._metadata)
        workspace = _positive_int(extra, "workspace_mb", 1024)
        max_batch = _positive_int(extra, "max_batch", 64)
        key = engine_key(data, {**self.flags, "workspace_mb": workspace, "max_batch": max_batch}, trt.__version__)
        self.engine_path = cache_dir() / f"{self.path.stem}-{key}.engine"
        if self.engine_path.is_file():
            engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if engine is not None:
                return engine  # else built for another GPU or TensorRT: rebuilt over it below
        if network.num_inputs != 1:
            raise ArtifactError(f"{self.path.name} has {network.num_inputs} inputs; the runner feeds models with one")
        profiles = []
        tensor = network.get_input(0)
        if tuple(tensor.shape)[0] == -1:
            rest = tuple(tensor.shape)[1:]
            profiles = [poly_trt.Profile().add(tensor.name, (1, *rest), (1, *rest), (max_batch, *rest))]
        config = poly_trt.CreateConfig(fp16=self.flags["fp16"], int8=self.flags["int8"], profiles=profiles or None,
                                       memory_pool_limits={trt.MemoryPoolType.WORKSPACE: workspace << 20})
        serialized = bytes(poly_trt.EngineBytesFromNetwork((builder, network, parser), config=config)())
        save_engine(serialized, self.engine_path, self._metadata, self.flags)
        return self._runtime.deserialize_cuda_engine(serialized)

    @property
    def input_name(self) -> str:
        return self._input

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The engine's input shape; a dynamic dimension (batch) is -1."""
        return tuple(int(d) for d in self._engine.get_tensor_shape(self._input))

    @property
    def input_dtype(self) -> str:
        return np.dtype(self._trt.nptype(self._engine.get_tensor_dtype(self._input))).name

    @property
    def input_quantization(self) -> tuple[float, int] | None:
        return self._quant

    @property
    def metadata(self) -> dict:
        return dict(self._metadata)

    @property
    def version(self) -> str:
        return str(self._trt.__version__)

    def _bind(self, feed: np.ndarray) -> list[tuple[object, np.ndarray]]:
        """Set the input shape, put device buffers behind every tensor; (device, host) pairs of the outputs."""
        trt, cuda = self._trt, self._cuda
        if not self._context.set_input_shape(self._input, feed.shape):
            raise ArtifactError(f"{self.path.name}: TensorRT refused input shape {tuple(feed.shape)}")
        pairs = []
        for name in (self._input, *self._outputs):
            shape = tuple(self._context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            buffer = self._buffers.get(name)
            if buffer is None:
                buffer = self._buffers[name] = cuda.DeviceArray(shape=shape, dtype=dtype)
            buffer.resize(shape)
            self._context.set_tensor_address(name, buffer.ptr)
            if name != self._input:
                pairs.append((buffer, np.empty(shape, dtype)))
        return pairs

    def prepare(self, x: np.ndarray):
        """Copy in, ``execute_async_v3``, copy out, synchronize: the per-frame work of an app."""
        feed = self._feed(x)
        outputs = self._bind(feed)
        device_in, stream, context = self._buffers[self._input], self._stream, self._context

        def once():
            device_in.copy_from(feed, stream)
            context.execute_async_v3(stream.ptr)
            for device, host in outputs:
                device.copy_to(host, stream)
            stream.synchronize()
            return [host for _, host in outputs]

        return once

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one batch: ``x`` float32 ``[N, C, H, W]`` -> float32 outputs.

        Raises:
            ArtifactError: the shape does not fit the engine's input, or execution failed.
        """
        try:
            outputs = self.prepare(x)()
        except _errors() as exc:
            raise ArtifactError(f"TensorRT failed on {self.path.name}: {first_line(exc)}") from None
        return [self._to_float(o.copy()) for o in outputs]

    def _to_float(self, out: np.ndarray) -> np.ndarray:
        if out.dtype in (np.int8, np.uint8) and "output_scale" in self._metadata:
            return dequantize(out, float(self._metadata["output_scale"]), int(self._metadata["output_zero_point"]))
        return out.astype(np.float32, copy=False)

    def close(self) -> None:
        for buffer in getattr(self, "_buffers", {}).values():
            buffer.free()
        self._buffers = {}
        if getattr(self, "_stream", None) is not None:
            self._stream.free()
            self._stream = None
        self._context = self._engine = self._runtime = None


def save_engine(serialized: bytes, path: Path, metadata: dict, flags: dict) -> None:
    """Write ``path`` and its ``<path>.json`` (the ONNX's metadata and the build flags) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, payload in ((path.with_name(path.name + ".json"),
                             json.dumps({"metadata": metadata, "flags": flags}, indent=1).encode()),
                            (path, serialized)):
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(payload)
        os.replace(partial, target)
