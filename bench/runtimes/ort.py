"""ONNX models in onnxruntime: its CPU execution provider, or the GPU ones when asked (numpy + onnxruntime only)."""

from __future__ import annotations

import numpy as np

from bench.errors import ArtifactError, RuntimeMissingError
from bench.runtimes.base import Runner, RunnerOptions, dequantize, first_line

# ONNX tensor type strings as onnxruntime reports them -> numpy dtype names.
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
}


#: onnxruntime's GPU execution providers, by preference (``providers=auto``)
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def _import_ort():
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeMissingError("onnxruntime is not installed: pip install 'edgenas[bench]'") from None
    return onnxruntime


def _ort_errors(ort) -> tuple[type[BaseException], ...]:
    """onnxruntime's pybind error classes (they derive from Exception directly) plus the builtin ones."""
    state = ort.capi.onnxruntime_pybind11_state
    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError", "RuntimeException",
             "InvalidProtobuf", "ModelLoaded", "NotImplemented", "InvalidGraph", "EPFail")
    found = tuple(c for c in (getattr(state, n, None) for n in names) if isinstance(c, type))
    return found + (RuntimeError, ValueError, OSError)


class OrtRunner(Runner):
    """One ``.onnx`` file in an ``onnxruntime.InferenceSession`` (CPUExecutionProvider by default).

    Threads: ``options.threads`` intra-op threads, one inter-op thread, sequential
    execution: the setting of a single-stream edge deployment. Graph
    optimisations are onnxruntime's default (all levels).

    ``options.extra``: ``("providers", "TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider")``
    picks execution providers in order (e.g. on a Jetson with onnxruntime-gpu); ``("providers", "auto")``
    takes the GPU ones this onnxruntime has (TensorRT, then CUDA), then the CPU (the Jetson profiles' default);
    any other pair is a session config entry (``("session.intra_op.allow_spinning", "0")``).
    :attr:`providers` says which the session runs on, as onnxruntime reports it.

    Inputs are float32 batches in the model's layout (NCHW for our exports);
    a float16 input is cast, an int8/uint8 input is quantized with the scale and
    zero point stored in the model's metadata (``input_scale``, ``input_zero_point``).
    Outputs come back as float32.

    Raises (constructor):
        ArtifactError: the file is missing or onnxruntime cannot load it.
        RuntimeMissingError: onnxruntime is not installed.
    """

    name = "ort"

    def __init__(self, path, options: RunnerOptions = RunnerOptions()) -> None:
        super().__init__(path, options)
        ort = _import_ort()
        self._ort = ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(options.threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Extra session config entries, e.g. ("session.intra_op.allow_spinning", "0").
        providers = ["CPUExecutionProvider"]
        for key, value in options.extra:
            if key == "providers" and value.strip() == "auto":
                available = ort.get_available_providers()
                providers = [p for p in GPU_PROVIDERS if p in available] + ["CPUExecutionProvider"]
            elif key == "providers":  # e.g. "TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider"
                providers = [p.strip() for p in value.split(",") if p.strip()]
                unknown = set(providers) - set(ort.get_available_providers())
                if unknown:
                    raise ArtifactError(f"onnxruntime here lacks {', '.join(sorted(unknown))} "
                                        f"(available: {', '.join(ort.get_available_providers())})")
            else:
                so.add_session_config_entry(key, value)
        so.log_severity_level = 3  # errors only: warnings about unused initializers are noise here
        self._errors = _ort_errors(ort)
        try:
            self._session = ort.InferenceSession(str(self.path), so, providers=providers)
        except self._errors as exc:
            raise ArtifactError(f"onnxruntime cannot load {self.path.name}: {first_line(exc)}") from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ArtifactError(f"{self.path.name} has {len(inputs)} inputs; the runner feeds models with one")
        self._input = inputs[0]
        self._output_names = [o.name for o in self._session.get_outputs()]
        meta = self._session.get_modelmeta().custom_metadata_map
        self._quant = None
        if self.input_dtype in ("int8", "uint8"):
            try:
                self._quant = (float(meta["input_scale"]), int(meta["input_zero_point"]))
            except (KeyError, ValueError):
                raise ArtifactError(
                    f"{self.path.name} has an {self.input_dtype} input but no input_scale/input_zero_point metadata"
                ) from None

    @property
    def input_name(self) -> str:
        return self._input.name

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Static sizes as ints; a dynamic dimension (e.g. batch) is reported as -1."""
        return tuple(d if isinstance(d, int) else -1 for d in self._input.shape)

    @property
    def input_dtype(self) -> str:
        return _DTYPES.get(self._input.type, self._input.type)

    @property
    def input_quantization(self) -> tuple[float, int] | None:
        return self._quant

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    @property
    def metadata(self) -> dict[str, str]:
        """The model's ``metadata_props`` (layout, mean, std, labels, ...)."""
        return dict(self._session.get_modelmeta().custom_metadata_map)

    def prepare(self, x: np.ndarray):
        """``session.run`` on the already quantized/converted input (outputs left as the runtime returns them)."""
        feed = {self._input.name: self._feed(x)}
        run, names = self._session.run, self._output_names
        return lambda: run(names, feed)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one batch: ``x`` float32 ``[N, C, H, W]`` -> float32 outputs (``[N, classes]`` logits).

        Raises:
            ArtifactError: the shape does not fit the model's input.
        """
        feed = self._feed(x)
        try:
            outputs = self._session.run(self._output_names, {self._input.name: feed})
        except self._errors as exc:
            raise ArtifactError(f"onnxruntime failed on {self.path.name}: {first_line(exc)}") from None
        return [self._to_float(o) for o in outputs]

    def _to_float(self, out: np.ndarray) -> np.ndarray:
        if out.dtype in (np.int8, np.uint8):
            meta = self.metadata
            if "output_scale" in meta:
                return dequantize(out, float(meta["output_scale"]), int(meta["output_zero_point"]))
        return out.astype(np.float32, copy=False)

    @property
    def version(self) -> str:
        return str(self._ort.__version__)

    @property
    def providers(self) -> list[str]:
        """The execution providers of the session, in onnxruntime's order of preference."""
        return list(self._session.get_providers())

    def close(self) -> None:
        self._session = None
