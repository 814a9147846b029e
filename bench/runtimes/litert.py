"""TFLite models in LiteRT's interpreter (``ai_edge_litert``), XNNPACK on (numpy + runtime only, never torch).

The fallback ``tflite_runtime`` is used only when ``ai_edge_litert`` is missing:
its last release (2.14, 2023) fails with numpy 2, runs INT8 5-7x slower and
gave wrong outputs for dynamic-range models (RECIPES.md).
"""

from __future__ import annotations

import json

import numpy as np

from bench.errors import ArtifactError, RuntimeMissingError
from bench.runtimes.base import Runner, RunnerOptions, dequantize, first_line, quantize

#: name of the flatbuffer metadata entry our exporter writes (JSON)
METADATA_NAME = "edgenas"


def _import_interpreter():
    """(Interpreter class, package name, version) of the first runtime found."""
    try:
        from ai_edge_litert import __version__ as version
        from ai_edge_litert import interpreter as module
        return module.Interpreter, "ai-edge-litert", str(version)
    except ImportError:
        pass
    try:
        import tflite_runtime
        from tflite_runtime import interpreter as module
        return module.Interpreter, "tflite-runtime", str(getattr(tflite_runtime, "__version__", "unknown"))
    except ImportError:
        raise RuntimeMissingError("ai-edge-litert is not installed: pip install 'edgenas[bench]'") from None


class LiteRTRunner(Runner):
    """One ``.tflite`` file in a LiteRT ``Interpreter``.

    Threads: ``options.threads`` (``num_threads``); the default XNNPACK delegate
    runs every op it supports. ``options.extra`` may hold
    ``("op_resolver", "AUTO" | "BUILTIN" | "BUILTIN_WITHOUT_DEFAULT_DELEGATES" | "BUILTIN_REF")``
    (the last two: without XNNPACK, for comparison); other keys are ignored.

    Inputs are float32 batches in the model's layout (NCHW for our exports). An
    int8/uint8 input is quantized with the input tensor's own scale and zero
    point; int8/uint8 outputs are dequantized with theirs. Outputs are float32.

    Raises (constructor):
        ArtifactError: the file is missing, not a TFLite flatbuffer, or cannot be prepared.
        RuntimeMissingError: neither ai-edge-litert nor tflite-runtime is installed.
    """

    name = "litert"

    def __init__(self, path, options: RunnerOptions = RunnerOptions()) -> None:
        super().__init__(path, options)
        interpreter_cls, self._package, self._version = _import_interpreter()
        extra = dict(options.extra)
        kwargs = {}
        if "op_resolver" in extra and self._package == "ai-edge-litert":
            from ai_edge_litert.interpreter import OpResolverType

            try:
                kwargs["experimental_op_resolver_type"] = OpResolverType[extra["op_resolver"]]
            except KeyError:
                known = ", ".join(t.name for t in OpResolverType)
                raise ArtifactError(f"unknown op_resolver {extra['op_resolver']!r} (known: {known})") from None
        try:
            self._interp = interpreter_cls(model_path=str(self.path), num_threads=int(options.threads), **kwargs)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError, OSError) as exc:
            raise ArtifactError(f"LiteRT cannot load {self.path.name}: {first_line(exc)}") from None
        inputs = self._interp.get_input_details()
        if len(inputs) != 1:
            raise ArtifactError(f"{self.path.name} has {len(inputs)} inputs; the runner feeds models with one")
        self._input = inputs[0]
        self._outputs = self._interp.get_output_details()
        self._cache_io()
        signatures = self._interp.get_signature_list()
        self._signature = next(iter(signatures.values())) if len(signatures) == 1 else None

    def _cache_io(self) -> None:
        """What run() needs on every call, read once (per resize) from the tensor details."""
        signature = self._input.get("shape_signature")
        shape = signature if signature is not None and len(signature) else self._input["shape"]
        self._shape = tuple(int(s) for s in shape)
        self._current = tuple(int(s) for s in self._input["shape"])
        self._in_quant = self._quant(self._input)
        self._out_quant = [self._quant(o) for o in self._outputs]

    @staticmethod
    def _quant(detail: dict) -> tuple[float, int] | None:
        if np.dtype(detail["dtype"]).name not in ("int8", "uint8", "int16"):
            return None
        scale, zero_point = detail["quantization"]
        if scale == 0.0:
            raise ArtifactError(f"tensor {detail['name']} is {np.dtype(detail['dtype']).name} without quantization")
        return float(scale), int(zero_point)

    @property
    def input_name(self) -> str:
        """The signature's input name (what an app passes to a signature runner), else the tensor name."""
        if self._signature and len(self._signature["inputs"]) == 1:
            return str(self._signature["inputs"][0])
        return str(self._input["name"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Sizes as ints; a dynamic dimension (e.g. batch) is reported as -1."""
        return self._shape

    @property
    def input_dtype(self) -> str:
        return np.dtype(self._input["dtype"]).name

    @property
    def input_quantization(self) -> tuple[float, int] | None:
        return self._in_quant

    @property
    def output_names(self) -> list[str]:
        if self._signature and len(self._signature["outputs"]) == len(self._outputs):
            return [str(n) for n in self._signature["outputs"]]
        return [str(o["name"]) for o in self._outputs]

    @property
    def output_dtypes(self) -> list[str]:
        return [np.dtype(o["dtype"]).name for o in self._outputs]

    @property
    def output_quantization(self) -> list[tuple[float, int] | None]:
        return list(self._out_quant)

    @property
    def metadata(self) -> dict:
        """The ``edgenas`` metadata JSON of the file ({} when it has none)."""
        from ai_edge_litert import schema_py_generated as schema  # noqa: PLC0415 - only when asked

        model = schema.Model.GetRootAs(bytearray(self.path.read_bytes()), 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() in (METADATA_NAME, METADATA_NAME.encode()):
                return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
        return {}

    def _feed(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.shape != self._current:
            expected = self._shape
            if len(x.shape) != len(expected) or any(e not in (-1, s) for e, s in zip(expected, x.shape)):
                raise ArtifactError(f"{self.path.name} takes input {expected}, got {tuple(x.shape)}")
            self._resize(x.shape)
        quant = self._in_quant
        return quantize(x, *quant, self._input["dtype"]) if quant else np.ascontiguousarray(x, self._input["dtype"])

    def prepare(self, x: np.ndarray):
        """``Interpreter.invoke()`` with ``x`` (quantized if the input is integer) set once beforehand."""
        feed = self._feed(x)
        try:
            self._interp.set_tensor(self._input["index"], feed)
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(f"LiteRT failed on {self.path.name}: {first_line(exc)}") from None
        return self._interp.invoke

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one batch: ``x`` float32 ``[N, C, H, W]`` -> float32 outputs (``[N, classes]`` logits).

        A batch size different from the model's is accepted when its batch
        dimension is dynamic (the interpreter is resized once).

        Raises:
            ArtifactError: the shape does not fit the model's input, or the interpreter failed.
        """
        feed = self._feed(x)
        try:
            self._interp.set_tensor(self._input["index"], feed)
            self._interp.invoke()
            outputs = [self._interp.get_tensor(o["index"]) for o in self._outputs]
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(f"LiteRT failed on {self.path.name}: {first_line(exc)}") from None
        return [dequantize(out, *q) if q else out.astype(np.float32, copy=False)
                for out, q in zip(outputs, self._out_quant)]

    def _resize(self, shape: tuple[int, ...]) -> None:
        try:
            self._interp.resize_tensor_input(self._input["index"], list(shape), strict=True)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(
                f"LiteRT cannot resize {self.path.name} to {tuple(shape)}: {first_line(exc)}") from None
        self._input = self._interp.get_input_details()[0]
        self._outputs = self._interp.get_output_details()
        self._cache_io()

    @property
    def version(self) -> str:
        return self._version

    @property
    def package(self) -> str:
        """Which interpreter package runs the model: 'ai-edge-litert' or 'tflite-runtime'."""
        return self._package

    def close(self) -> None:
        self._interp = None
