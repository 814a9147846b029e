"""ONNX export: ``torch.onnx.export`` (opset 17), FP16 by onnxruntime's converter, INT8 by onnxruntime's quantizer.

Export path (measured on this machine, see ../shared/RECIPES.md): the
TorchScript-based exporter (``dynamo=False``) took 0.2-0.5 s for our nets where
the dynamo exporter took 5-8 s, with the same outputs (max abs diff < 1e-6)
and one self-contained file at opset 17. It is deprecated, so the dynamo
exporter (opset 18, ``external_data=False``) is the fallback whenever the
legacy path fails, and can be forced with ``OnnxExporter(dynamo=True)``.

FP16: ``onnxruntime.transformers.float16`` (the converter of onnxconverter-common,
shipped inside onnxruntime) with float32 inputs and outputs, so apps feed the
same tensor at every precision.

INT8: static post-training quantization, ``quant_pre_process`` then
``quantize_static`` over a calibration set (see :class:`OnnxInt8Config` for the
measured choice of its settings).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporters.base import Exporter
from exporters.errors import ConversionError, MissingDependencyError
from exporters.spec import InputSpec

OPSET = 17

__all__ = ["OPSET", "OnnxExporter", "OnnxInt8Config", "compact_names", "metadata_for"]


@dataclass(frozen=True)
class OnnxInt8Config:
    """Settings of onnxruntime's static quantizer.

    The defaults are what measured best here (``benchmarks/export_latency.py
    --onnx-int8-sweep``; ORT 1.32, AMD EPYC with AVX-512 VNNI, 1 thread; the
    searched network and MobileNetV3-Small trained on CIFAR-10, 2,000 held-out
    images; the figures are in the README):

    * ``quant_format`` "QDQ": QOperator was no faster, and on the searched
      network it broke parity (70% top-1 agreement, -3.7 accuracy points).
    * ``activation_type`` "QUInt8", ``weight_type`` "QInt8" (U8S8): QInt8
      activations (S8S8) were as accurate but 1.4x-2.7x slower.
    * ``per_channel`` True: per-tensor weights were not faster and lost up to
      0.45 points (93.8% vs 95.6% top-1 agreement on MobileNetV3-Small).
    * ``calibrate_method`` "MinMax": Entropy and Percentile gave the same
      accuracy (+-0.15 points) and the same graph speed, with 1.6x-5x the
      calibration time.
    * ``exclude_op_types`` / ``op_types``: leaving SE gates, adds and
      sigmoids in float, or quantizing convolutions only, was no faster.
      Empty / None by default (every type the quantizer knows).

    Even so, INT8 is not faster than FP32 on onnxruntime here for these small
    networks (per-node overhead dominates at batch 1): it is ~1.4x slower on the
    searched network and on par for MobileNetV3-Small, at 28% of the size.
    """

    quant_format: str = "QDQ"
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    per_channel: bool = True
    calibrate_method: str = "MinMax"
    exclude_op_types: tuple[str, ...] = ()
    op_types: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        from exporters.errors import UnsupportedError

        checks = (("quant_format", self.quant_format, ("QDQ", "QOperator")),
                  ("activation_type", self.activation_type, ("QUInt8", "QInt8")),
                  ("weight_type", self.weight_type, ("QUInt8", "QInt8")),
                  ("calibrate_method", self.calibrate_method, ("MinMax", "Entropy", "Percentile")))
        for name, value, allowed in checks:
            if value not in allowed:
                raise UnsupportedError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _onnx():
    try:
        import onnx
        import onnxruntime  # noqa: F401 - the FP16 and INT8 tools live in it
    except ImportError as exc:
        raise MissingDependencyError(
            f"ONNX export needs onnx and onnxruntime ({exc.name} is missing): pip install 'edgenas[export]'"
        ) from None
    return onnx


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def metadata_for(spec: InputSpec, precision: str) -> dict[str, str]:
    """The ``metadata_props`` written into every ONNX artifact: enough to feed the model without the manifest."""
    return spec.artifact_metadata(precision)


def compact_names(proto) -> None:
    """Rename every internal tensor to a short id and drop node names, in place.

    The quantizer names each tensor after its source plus suffixes
    (``/cells.0/edges.2/dw/Conv_output_0_QuantizeLinear_Output``); in a small
    INT8 graph those strings outweigh the weights (61 of 131 KB for the
    searched demo network). Graph inputs and outputs keep their names.
    """
    graph = proto.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output} | {""}
    mapping: dict[str, str] = {}

    def short(name: str) -> str:
        if name in keep:
            return name
        return mapping.setdefault(name, f"t{len(mapping)}")

    for init in graph.initializer:
        init.name = short(init.name)
    for node in graph.node:
        node.name = ""
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    for info in graph.value_info:
        info.name = short(info.name)


class _ArrayReader:
    """A ``CalibrationDataReader`` over ``[N, C, H, W]`` float32, in batches the model accepts."""

    def __init__(self, name: str, data: np.ndarray, batch: int) -> None:
        self._feeds = iter([{name: np.ascontiguousarray(data[i:i + batch], dtype=np.float32)}
                            for i in range(0, len(data) - batch + 1, batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


class OnnxExporter(Exporter):
    """One ``<stem>.onnx`` file (weights inside), checked with ``onnx.checker``.

    Args:
        int8: the quantizer settings (defaults: the measured best, see :class:`OnnxInt8Config`).
        dynamo: use the dynamo exporter (opset 18) instead of the faster TorchScript path.
    """

    format = "onnx"
    runtime = "ort"
    extension = ".onnx"
    precisions = ("fp32", "fp16", "int8")

    def __init__(self, int8: OnnxInt8Config = OnnxInt8Config(), dynamo: bool = False) -> None:
        self.int8 = int8
        self.dynamo = dynamo

    def export(self, model, spec: InputSpec, precision: str, stage: Path, stem: str,
               calib: np.ndarray | None = None) -> list[Path]:
        """Export ``model`` to ``stage/<stem>.onnx``; see :meth:`Exporter.export` for arguments.

        Raises:
            ConversionError: torch, the FP16 converter, the quantizer or the checker failed.
            MissingDependencyError: onnx or onnxruntime is missing.
        """
        onnx = _onnx()
        out = stage / f"{stem}{self.extension}"
        fp32 = stage / f".{stem}.fp32.onnx"
        self._torch_export(model, spec, fp32)
        if precision == "fp32":
            proto = onnx.load(str(fp32))
        elif precision == "fp16":
            proto = self._to_fp16(onnx.load(str(fp32)))
        elif precision == "int8":
            if calib is None or len(calib) == 0:
                raise ConversionError(f"{stem}: INT8 needs calibration inputs (calib is empty)")
            proto = self._to_int8(fp32, spec, stage / f".{stem}.int8.onnx", calib, stem)
            compact_names(proto)
        else:
            raise ConversionError(f"{stem}: precision {precision!r} is not handled by the ONNX exporter")
        for key, value in metadata_for(spec, precision).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "edgenas"
        try:
            onnx.checker.check_model(proto, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
            raise ConversionError(f"{stem}: onnx.checker rejects the model: {_first_line(exc)}") from None
        onnx.save_model(proto, str(out))
        for tmp in stage.glob(f".{stem}.*"):
            tmp.unlink()
        return [out]

    # --- torch -> ONNX ----------------------------------------------------------------
    def _torch_export(self, model, spec: InputSpec, path: Path) -> None:
        import torch

        x = torch.zeros(spec.shape, dtype=torch.float32)
        names = dict(input_names=[spec.name], output_names=[spec.output_name])
        axes = {spec.name: {0: "batch"}, spec.output_name: {0: "batch"}} if spec.dynamic_batch else None
        legacy_error = None
        if not self.dynamo:
            try:
                with warnings.catch_warnings():
                    # We chose the deprecated path knowingly (20x faster); its warning is noise here.
                    warnings.filterwarnings("ignore", category=DeprecationWarning)
                    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
                    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=OPSET,
                                      do_constant_folding=True, dynamic_axes=axes, **names)
                return
            except (RuntimeError, TypeError, ValueError, NotImplementedError,
                    torch.onnx.errors.OnnxExporterError) as exc:
                legacy_error = exc
        try:
            dyn = {spec.name: {0: torch.export.Dim("batch", min=1)}} if spec.dynamic_batch else None
            torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=False, opset_version=OPSET + 1,
                              dynamic_shapes=dyn, verbose=False, **names)
        except (RuntimeError, TypeError, ValueError, NotImplementedError,
                torch.onnx.errors.OnnxExporterError) as exc:
            cause = _first_line(legacy_error or exc)
            raise ConversionError(f"{path.name.strip('.')}: torch.onnx.export failed: {cause}") from None

    # --- precisions ---------------------------------------------------------------
    @staticmethod
    def _to_fp16(proto):
        from onnxruntime.transformers.float16 import convert_float_to_float16
        from onnxruntime.transformers.onnx_model import OnnxModel

        try:
            half = OnnxModel(convert_float_to_float16(proto, keep_io_types=True))
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ConversionError(f"FP16 conversion failed: {_first_line(exc)}") from None
        # keep_io_types appends its Cast nodes at the end; onnx.checker wants topological order.
        half.topological_sort()
        return half.model

    def _to_int8(self, fp32: Path, spec: InputSpec, out: Path, calib: np.ndarray, stem: str):
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, \
            quantize_static

        cfg = self.int8
        pre = out.with_name(out.name.replace(".int8.", ".pre."))
        calib = np.asarray(calib, dtype=np.float32)
        if calib.ndim != 4 or tuple(calib.shape[1:]) != tuple(spec.shape[1:]):
            raise ConversionError(f"{stem}: calibration inputs have shape {calib.shape}, the model takes {spec.shape}")
        try:
            # Shape inference and graph optimisation first, as onnxruntime's docs ask for.
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            excluded = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type in cfg.exclude_op_types]
            batch = spec.shape[0]
            with _quiet_per_tensor_fallback():
                quantize_static(
                    str(pre), str(out), _ArrayReader(spec.name, calib, batch),
                    quant_format=getattr(QuantFormat, cfg.quant_format),
                    activation_type=getattr(QuantType, cfg.activation_type),
                    weight_type=getattr(QuantType, cfg.weight_type),
                    per_channel=cfg.per_channel,
                    calibrate_method=getattr(CalibrationMethod, cfg.calibrate_method),
                    nodes_to_exclude=excluded or None,
                    op_types_to_quantize=list(cfg.op_types) if cfg.op_types else None,
                )
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise ConversionError(f"{stem}: onnxruntime quantization failed: {_first_line(exc)}") from None
        return onnx.load(str(out))

    def tool_versions(self) -> dict[str, str]:
        import onnx
        import onnxruntime
        import torch

        return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


class _PerTensorFallback(logging.Filter):
    """Drops onnxruntime's warning that a 1-D weight (a batch norm after a pooling, which no conv absorbs)
    has no channel axis: it is quantized per tensor, as it should be, and the warning names no problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Axis ") and "is out-of-range for weight" in message)


@contextlib.contextmanager
def _quiet_per_tensor_fallback():
    """onnxruntime's quantizer logs through the root logger: filter it there while it runs."""
    root, quiet = logging.getLogger(), _PerTensorFallback()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)
