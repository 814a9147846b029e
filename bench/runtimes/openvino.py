"""OpenVINO IR (.xml + .bin) on the CPU plugin (numpy + openvino only, never torch).

Inference precision: on a CPU with bf16, OpenVINO's default would run an FP32
or FP16 IR in bf16 (logits off by up to 3.0 against PyTorch, RECIPES.md). The
runner therefore compiles with ``INFERENCE_PRECISION_HINT`` = "f32" unless
``RunnerOptions.inference_precision`` asks for "bf16" or "f16", and records
what the compiled model reports in :attr:`OpenVinoRunner.inference_precision`.
An INT8 IR runs its quantized ops in int8 whatever the hint; the hint governs
the ops left in float.
"""

from __future__ import annotations

import numpy as np

from bench.errors import ArtifactError, RuntimeMissingError
from bench.runtimes.base import Runner, RunnerOptions

PRECISIONS = ("f32", "bf16", "f16")

# OpenVINO element types as get_type_name() spells them -> numpy dtype names
_DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "i8": "int8", "u8": "uint8", "f64": "float64"}


def _import_openvino():
    try:
        import openvino
    except ImportError:
        raise RuntimeMissingError("openvino is not installed: pip install 'edgenas[bench]'") from None
    return openvino


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # OpenVINO prefixes messages with "Exception from src/...:" lines; the cause is the last line.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = next((line for line in reversed(lines) if not line.startswith(("Exception from", "Check "))),
                 lines[-1] if lines else type(exc).__name__)
    return cause[:300]


def _type_name(value) -> str:
    """'f32' for ``openvino.Type.f32`` (what get_property returns) or for the string 'f32'."""
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


class OpenVinoRunner(Runner):
    """One IR compiled on ``CPU`` for single-stream latency.

    Compile properties: ``INFERENCE_NUM_THREADS`` = ``options.threads``,
    ``NUM_STREAMS`` = 1, ``PERFORMANCE_HINT`` = LATENCY, ``INFERENCE_PRECISION_HINT``
    as described in the module docstring; ``options.extra`` adds or overrides
    properties (string values, e.g. ``("ENABLE_CPU_PINNING", "NO")``).

    Inputs are float32 batches in the IR's layout (NCHW for our exports);
    outputs are float32.

    Raises (constructor):
        ArtifactError: the .xml or its .bin is missing, corrupt or not compilable;
            an unknown inference precision.
        RuntimeMissingError: openvino is not installed.
    """

    name = "openvino"

    def __init__(self, path, options: RunnerOptions = RunnerOptions()) -> None:
        super().__init__(path, options)
        precision = options.inference_precision or "f32"
        if precision not in PRECISIONS:
            raise ArtifactError(f"unknown inference precision {precision!r} (known: {', '.join(PRECISIONS)})")
        ov = _import_openvino()
        self._ov = ov
        weights = self.path.with_suffix(".bin")
        if not weights.is_file():
            raise ArtifactError(f"{self.path.name}: weights file {weights.name} is missing")
        config = {
            "INFERENCE_NUM_THREADS": int(options.threads),
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision,
        }
        config.update(dict(options.extra))
        self._core = ov.Core()
        try:
            model = self._core.read_model(str(self.path), str(weights))
            self._compiled = self._core.compile_model(model, "CPU", config)
        except (RuntimeError, ValueError, TypeError, OSError) as exc:
            raise ArtifactError(f"OpenVINO cannot load {self.path.name}: {_first_line(exc)}") from None
        if len(self._compiled.inputs) != 1:
            raise ArtifactError(f"{self.path.name} has {len(self._compiled.inputs)} inputs; "
                                "the runner feeds models with one")
        self._model = model
        self._request = self._compiled.create_infer_request()
        self._input = self._compiled.inputs[0]
        self._outputs = list(self._compiled.outputs)
        self._shape = tuple(d.get_length() if d.is_static else -1 for d in self._input.get_partial_shape())
        #: inference precision the compiled model reports ("f32", "bf16" or "f16")
        self.inference_precision = _type_name(self._compiled.get_property("INFERENCE_PRECISION_HINT"))
        #: threads the compiled model reports
        self.threads = int(self._compiled.get_property("INFERENCE_NUM_THREADS"))

    @property
    def input_name(self) -> str:
        return self._input.get_any_name()

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Static sizes as ints; a dynamic dimension (e.g. batch) is reported as -1."""
        return self._shape

    @property
    def input_dtype(self) -> str:
        name = self._input.get_element_type().get_type_name()
        return _DTYPES.get(name, name)

    @property
    def output_names(self) -> list[str]:
        return [o.get_any_name() if o.get_names() else f"output_{i}" for i, o in enumerate(self._outputs)]

    @property
    def metadata(self) -> dict[str, str]:
        """The IR's ``rt_info`` sections ``model_info`` and ``edgenas`` as ``{"section/key": value}``."""
        result = {}
        for section in ("model_info", "edgenas"):
            if not self._model.has_rt_info([section]):
                continue
            for key, value in self._model.get_rt_info([section]).astype(dict).items():
                result[f"{section}/{key}"] = value.astype(str) if hasattr(value, "astype") else str(value)
        return result

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        expected = self._shape
        if x.shape != expected and (len(x.shape) != len(expected)
                                    or any(e not in (-1, s) for e, s in zip(expected, x.shape))):
            raise ArtifactError(f"{self.path.name} takes input {expected}, got {tuple(x.shape)}")
        return x

    def prepare(self, x: np.ndarray):
        """``InferRequest.infer()`` (synchronous) with ``x`` bound once as the input tensor (shared memory)."""
        x = self._check(x)
        request = self._request
        request.set_input_tensor(self._ov.Tensor(x, shared_memory=True))
        keep = x  # the tensor shares x's memory: keep it alive as long as the call

        def call():
            request.infer()
            return keep
        return call

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one batch: ``x`` float32 ``[N, C, H, W]`` -> float32 outputs (``[N, classes]`` logits).

        Raises:
            ArtifactError: the shape does not fit the model's input, or inference failed.
        """
        x = self._check(x)
        try:
            # share_inputs: the request reads x in place (sync call, x outlives it); saves a copy per run
            results = self._request.infer({0: x}, share_inputs=True)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ArtifactError(f"OpenVINO failed on {self.path.name}: {_first_line(exc)}") from None
        return [np.asarray(results[o], dtype=np.float32) for o in self._outputs]

    @property
    def version(self) -> str:
        return str(self._ov.get_version())

    def close(self) -> None:
        self._request = None
        self._compiled = None
