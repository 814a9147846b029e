"""TFLite (LiteRT) export through litert-torch (no TensorFlow): FP32, FP16 weights, INT8 static PTQ.

* FP32: ``litert_torch.convert(Named(model), sample_kwargs={name: x})``; the
  input stays NCHW (the converter inserts one transpose to NHWC), input and
  output carry the spec's names in the ``serving_default`` signature. Padded
  ``AvgPool2d(count_include_pad=False)`` layers are first made explicit
  (:mod:`exporters.formats.tflite_rewrite` and :mod:`exporters.formats.tflite_quant`): 3.2x faster for the searched model.
* FP16: ai-edge-quantizer's ``float_casting`` weight-only recipe on the FP32
  flatbuffer (reused when the same model was just exported at FP32): conv,
  depthwise and fully-connected weights stored as float16, float32 IO and
  compute (XNNPACK dequantizes once at load). litert-torch has no FP16 switch
  of its own without TensorFlow (``_litert_converter_flags`` reach only its TF-based V2 path).
* INT8: PT2E static post-training quantization (``prepare_pt2e`` -> calibrate
  on ``calib`` -> ``convert_pt2e``) with a widened litert-torch ``PT2EQuantizer``
  (symmetric per-channel int8 weights, asymmetric int8 activations), the same
  quantizer passed to the conversion (``QuantConfig(pt2e_quantizer=...)``):
  without it the model converts but is 3x larger and 10-60x slower (RECIPES.md).
  The graph is rewritten so that XNNPACK runs all of it in int8, in one
  partition (see :mod:`exporters.formats.tflite_rewrite` and :mod:`exporters.formats.tflite_quant`). Inputs and outputs are
  int8; their scale and zero point are the tensors' quantization parameters.
* Dynamic batch: litert-torch lowers reshapes and slices with the traced
  batch size, so the graph is first rewritten without them, exactly
  (:func:`~exporters.formats.tflite_rewrite.for_dynamic_batch`: pooled features
  flattened by a mean, DARTS' offset slice folded into a conv). A model with
  another reshape on the batch still fails, with a one-line error that says so.

Every artifact carries a flatbuffer metadata entry ``edgenas`` (JSON: layout,
mean, std, scale, labels, names, precision): :func:`read_metadata` reads it
back. Internal tensor names are shortened (litert-torch writes ~90-byte call
stacks: 20% of a small model's file); input and output names are kept.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporters.base import Exporter
from exporters.errors import ConversionError, MissingDependencyError, UnsupportedError
from exporters.spec import InputSpec

__all__ = ["METADATA_NAME", "TFLiteExporter", "TFLiteInt8Config", "metadata_for", "read_metadata"]

#: name of the flatbuffer metadata entry holding our JSON
METADATA_NAME = "edgenas"


@dataclass(frozen=True)
class TFLiteInt8Config:
    """Settings of the PT2E INT8 path.

    Attributes:
        per_channel: one weight scale per output channel (per-tensor loses
            accuracy on depthwise convs).
        wide: use :class:`~exporters.formats.tflite_quant.WidePT2EQuantizer`, which
            also quantizes standalone ReLU, hardswish, hardsigmoid, avg pool and
            slice; litert-torch's own quantizer leaves them in float between
            DEQUANTIZE/QUANTIZE pairs (measured slower, see :mod:`exporters.formats.tflite_rewrite` and :mod:`exporters.formats.tflite_quant`).
        calib_batch: calibration batch size (a graph with a dynamic batch is used
            for calibration; per sample if the model cannot take one). Observers
            see the same values either way; batches of 32 calibrated 5x faster.
    """

    per_channel: bool = True
    wide: bool = True
    calib_batch: int = 32

    def __post_init__(self) -> None:
        if self.calib_batch < 1:
            raise UnsupportedError(f"calib_batch must be >= 1, got {self.calib_batch}")


def _litert():
    try:
        import litert_torch
    except ImportError as exc:
        raise MissingDependencyError(
            f"TFLite export needs litert-torch ({exc.name} is missing): pip install 'edgenas[export]'"
        ) from None
    return litert_torch


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


# Conversion failures surface as any of these (torch.export, MLIR lowering, flatbuffer writing).
_CONVERT_ERRORS = (RuntimeError, ValueError, TypeError, KeyError, AssertionError, NotImplementedError,
                   AttributeError, IndexError)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence litert-torch's progress log (it prints a line per stage) and torch.export warnings."""
    key = "LITERT_TORCH_SHOW_PROGRESS"
    before = os.environ.get(key)
    os.environ[key] = "n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def metadata_for(spec: InputSpec, precision: str) -> dict:
    """The JSON stored in every TFLite artifact: enough to feed the model without the manifest."""
    return {
        "input_name": spec.name,
        "input_layout": "NCHW",
        "input_scale_to_unit": spec.scale,
        "mean": [float(m) for m in spec.mean],
        "std": [float(s) for s in spec.std],
        "output_name": spec.output_name,
        "output_meaning": "logits",
        "labels": list(spec.labels),
        "precision": precision,
    }


def _named(model, input_name: str, output_name: str):
    """Wrap ``model`` so the converted signature uses the spec's input and output names."""
    import torch

    class Named(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, **inputs):
            return {output_name: self.model(inputs[input_name])}

    return Named().eval()


class TFLiteExporter(Exporter):
    """One ``<stem>.tflite`` file, loadable by ``ai_edge_litert.interpreter.Interpreter``.

    Args:
        int8: the INT8 settings (defaults: the measured best, see :class:`TFLiteInt8Config`).
        explicit_pools: rewrite padded ``AvgPool2d(count_include_pad=False)`` into
            ops XNNPACK runs (exact; see :func:`~exporters.formats.tflite_rewrite.rewrite_avg_pools`).
    """

    format = "tflite"
    runtime = "litert"
    extension = ".tflite"
    precisions = ("fp32", "fp16", "int8")

    def __init__(self, int8: TFLiteInt8Config = TFLiteInt8Config(), explicit_pools: bool = True) -> None:
        self.int8 = int8
        self.explicit_pools = explicit_pools
        self._last_float: tuple[tuple, bytes] | None = None

    def export(self, model, spec: InputSpec, precision: str, stage: Path, stem: str,
               calib: np.ndarray | None = None) -> list[Path]:
        """Export ``model`` to ``stage/<stem>.tflite``; see :meth:`Exporter.export` for arguments.

        Raises:
            ConversionError: torch.export, PT2E, the converter or the FP16 recipe failed,
                or INT8 got no calibration inputs.
            MissingDependencyError: litert-torch (or ai-edge-quantizer for FP16) is missing.
        """
        litert_torch = _litert()
        import torch

        out = stage / f"{stem}{self.extension}"
        if precision not in self.precisions:
            raise ConversionError(f"{out.name}: precision {precision!r} is not handled by the TFLite exporter")
        try:
            with _quiet(), torch.no_grad():
                if precision == "int8":
                    flat = self._int8(litert_torch, model, spec, calib, out.name)
                else:
                    flat = self._float(litert_torch, model, spec)
        except _CONVERT_ERRORS as exc:
            hint = " (with a dynamic batch: litert-torch cannot lower a reshape on it)" if spec.dynamic_batch \
                else ""
            raise ConversionError(f"{out.name}: litert-torch conversion failed{hint}: {_first_line(exc)}") from None
        if precision == "fp16":
            flat = self._fp16(flat, out.name)
        out.write_bytes(_finalize(flat, metadata_for(spec, precision), out.name))
        return [out]

    def _prepare(self, model, spec: InputSpec, as_conv: bool):
        """(named module, sample kwargs, dynamic shapes) for litert-torch."""
        import torch

        if self.explicit_pools:
            from exporters.formats.tflite_rewrite import rewrite_avg_pools

            model = rewrite_avg_pools(model, spec.shape, as_conv=as_conv)
        if spec.dynamic_batch:
            from exporters.formats.tflite_rewrite import for_dynamic_batch

            model = for_dynamic_batch(model, spec.shape)
        # torch.export specializes a size-1 dimension: a dynamic batch needs a sample of 2
        batch = max(2, spec.shape[0]) if spec.dynamic_batch else spec.shape[0]
        kwargs = {spec.name: torch.zeros((batch, *spec.shape[1:]), dtype=torch.float32)}
        return _named(model, spec.name, spec.output_name), kwargs, self._dynamic_shapes(spec, "inputs")

    def _float(self, litert_torch, model, spec: InputSpec) -> bytes:
        """The FP32 flatbuffer; remembered for the same model, spec and weights (FP16 starts from it)."""
        key = (id(model), spec, self.explicit_pools, _weights_digest(model))
        if self._last_float is not None and self._last_float[0] == key:
            return self._last_float[1]
        named, kwargs, dynamic = self._prepare(model, spec, as_conv=False)
        flat = bytes(litert_torch.convert(named, sample_kwargs=kwargs, dynamic_shapes=dynamic).model_content())
        self._last_float = (key, flat)
        return flat

    @staticmethod
    def _dynamic_shapes(spec: InputSpec, kwargs_name: str | None):
        """Dynamic batch for ``torch.export``: under ``**kwargs_name`` (the Named wrapper) or by input name."""
        if not spec.dynamic_batch:
            return None
        import torch

        dims = {spec.name: {0: torch.export.Dim("batch", min=1, max=1024)}}
        return {kwargs_name: dims} if kwargs_name else dims

    def _int8(self, litert_torch, model, spec: InputSpec, calib, name: str) -> bytes:
        from litert_torch.quantize.quant_config import QuantConfig

        from exporters.formats.tflite_quant import calibrated_graph, make_quantizer

        if calib is None or len(calib) == 0:
            raise ConversionError(f"{name}: INT8 needs calibration inputs (calib is empty)")
        calib = np.asarray(calib, dtype=np.float32)
        if calib.ndim != 4 or tuple(calib.shape[1:]) != tuple(spec.shape[1:]):
            raise ConversionError(f"{name}: calibration inputs have shape {calib.shape}, the model takes {spec.shape}")
        named, kwargs, _ = self._prepare(model, spec, as_conv=True)
        quantizer = make_quantizer(self.int8.per_channel, self.int8.wide)
        graph = calibrated_graph(named, spec.name, kwargs[spec.name], calib, quantizer, self.int8.calib_batch)
        # the quantized graph takes the input by name, not through **inputs
        converted = litert_torch.convert(graph, sample_kwargs=kwargs,
                                         dynamic_shapes=self._dynamic_shapes(spec, None),
                                         quant_config=QuantConfig(pt2e_quantizer=quantizer))
        return bytes(converted.model_content())

    @staticmethod
    def _fp16(flat: bytes, name: str) -> bytes:
        try:
            from ai_edge_quantizer import quantizer
        except ImportError:
            raise MissingDependencyError(
                "TFLite FP16 export needs ai-edge-quantizer: pip install 'edgenas[export]'"
            ) from None
        try:
            q = quantizer.Quantizer(flat)
            # float_casting: weights of conv, depthwise conv and fully connected as float16.
            q.add_weight_only_config(regex=".*", operation_name="*", num_bits=16, algorithm_key="float_casting")
            with _quiet():
                result = q.quantize(enable_progress_bar=False, enable_progress_report=False)
        except _CONVERT_ERRORS as exc:
            raise ConversionError(f"{name}: ai-edge-quantizer FP16 recipe failed: {_first_line(exc)}") from None
        return bytes(result.quantized_model)

    def tool_versions(self) -> dict[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        versions = {}
        for package in ("torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert", "torchao"):
            try:
                versions[package] = version(package)
            except PackageNotFoundError:
                continue
        return versions


def _weights_digest(model) -> str:
    """A digest of the model's parameters and buffers (cheap: a few ms for MobileNetV3)."""
    import hashlib

    digest = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _finalize(flat: bytes, meta: dict, name: str) -> bytes:
    """``flat`` with short internal tensor names and a metadata entry :data:`METADATA_NAME` (JSON).

    litert-torch names every tensor after its Python call stack (~90 bytes
    each: 20% of a small model's file); inputs and outputs keep their names.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    try:
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(flat))
    except (ValueError, IndexError, TypeError) as exc:
        raise ConversionError(f"{name}: cannot read the converted flatbuffer: {_first_line(exc)}") from None
    for g, subgraph in enumerate(model.subgraphs):
        keep = set(subgraph.inputs) | set(subgraph.outputs)
        for i, tensor in enumerate(subgraph.tensors):
            if i not in keep:
                tensor.name = f"t{g}_{i}" if g else f"t{i}"
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``edgenas`` metadata JSON of a ``.tflite`` file ({} if it has none)."""
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(Path(path).read_bytes())
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() in (METADATA_NAME, METADATA_NAME.encode()):
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    return {}
