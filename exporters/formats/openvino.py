"""OpenVINO IR export: ``openvino.convert_model`` + ``save_model`` (.xml + .bin); INT8 through NNCF.

* FP32: ``save_model(..., compress_to_fp16=False)``: the .bin really holds
  float32 weights (``save_model`` compresses to FP16 by default).
* FP16: ``compress_to_fp16=True``: float16 weight constants, each followed by a
  Convert to f32; the CPU plugin computes in f32 (or bf16/f16 if asked).
* INT8: ``nncf.quantize`` on the converted ``openvino.Model`` over ``calib``
  (static PTQ, per-channel symmetric int8 weights, per-tensor activations; see
  :class:`OpenVinoInt8Config` for the measured choice of options). NNCF leaves
  squeeze-excite blocks in float on purpose (its SE ignored pattern: their
  activations quantize badly), which kept MobileNetV3-Small's INT8 .bin at 49%
  of FP32, the SE 1x1 convolutions being 1.9 of its 3.0 MB. Those leftover float
  weights are then compressed to int8 weight-only (``nncf.compress_weights``,
  per-channel symmetric; decompressed to f32 when the CPU plugin compiles the
  model): 26% of FP32, the same latency, outputs within 0.01 of the uncompressed INT8.

The input shape is static (``input=[shape]``) unless ``spec.dynamic_batch``,
then the batch dimension is dynamic (-1); ``benchmark_app`` needs a static
shape or ``-shape``. Input and output carry the spec's names. The IR's
``rt_info`` holds ``model_info`` (mean/std as 0-255 ``mean_values``/``scale_values``
the way OpenVINO's preprocessing reads them, layout, labels) and an ``edgenas``
section with the raw spec (see :func:`metadata_for`).
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporters.base import Exporter
from exporters.errors import ConversionError, MissingDependencyError, UnsupportedError
from exporters.spec import InputSpec

__all__ = ["OpenVinoExporter", "OpenVinoInt8Config", "metadata_for"]


@dataclass(frozen=True)
class OpenVinoInt8Config:
    """Settings of ``nncf.quantize``.

    Attributes:
        preset: "performance" (symmetric activations and weights) or "mixed"
            (asymmetric activations). Measured: see docs/export.md.
        fast_bias_correction: NNCF's fast bias correction (the full one took
            much longer for no accuracy gain on our nets).
        subset_size: upper bound on calibration samples NNCF uses (it uses
            ``min(subset_size, len(calib))``).
        compress_float_weights: int8 weight-only compression of the weights
            ``nncf.quantize`` left in float (squeeze-excite blocks).
    """

    preset: str = "performance"
    fast_bias_correction: bool = True
    subset_size: int = 300
    compress_float_weights: bool = True

    def __post_init__(self) -> None:
        if self.preset not in ("performance", "mixed"):
            raise UnsupportedError(f"preset must be 'performance' or 'mixed', got {self.preset!r}")
        if self.subset_size < 1:
            raise UnsupportedError(f"subset_size must be >= 1, got {self.subset_size}")


def _openvino():
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError("OpenVINO export needs openvino: pip install 'edgenas[export]'") from None
    return openvino


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def metadata_for(spec: InputSpec, precision: str) -> dict[str, str]:
    """``rt_info`` entries written into every IR, as (path, value) strings.

    ``model_info`` follows OpenVINO's conventions (``mean_values`` and
    ``scale_values`` on the 0-255 pixel scale, ``layout``, ``labels``
    space-separated); ``edgenas`` holds the spec as given.
    """
    pixel = 1.0 / spec.scale if spec.scale else 1.0
    return {
        "model_info/mean_values": " ".join(f"{m * pixel:.6g}" for m in spec.mean),
        "model_info/scale_values": " ".join(f"{s * pixel:.6g}" for s in spec.std),
        "model_info/layout": "NCHW",
        "model_info/labels": " ".join(spec.labels),
        "model_info/model_type": "classification",
        **{f"edgenas/{k}": v for k, v in spec.artifact_metadata(precision).items()},
    }


def _check_calib(calib, spec: InputSpec, name: str) -> np.ndarray:
    """``calib`` as float32 ``[N, C, H, W]`` matching ``spec``.

    Raises:
        ConversionError: no calibration inputs, or the wrong shape.
    """
    if calib is None or len(calib) == 0:
        raise ConversionError(f"{name}: INT8 needs calibration inputs (calib is empty)")
    calib = np.asarray(calib, dtype=np.float32)
    if calib.ndim != 4 or tuple(calib.shape[1:]) != tuple(spec.shape[1:]):
        raise ConversionError(f"{name}: calibration inputs have shape {calib.shape}, the model takes {spec.shape}")
    return calib


# convert_model / nncf failures surface as any of these (OpenVINO wraps its C++ errors in RuntimeError).
_CONVERT_ERRORS = (RuntimeError, ValueError, TypeError, KeyError, AssertionError, NotImplementedError,
                   AttributeError, IndexError)


class OpenVinoExporter(Exporter):
    """``<stem>.xml`` + ``<stem>.bin``, loadable by ``openvino.Core().read_model``.

    Args:
        int8: the NNCF settings (defaults: the measured best, see :class:`OpenVinoInt8Config`).
    """

    format = "openvino"
    runtime = "openvino"
    extension = ".xml"
    precisions = ("fp32", "fp16", "int8")

    def __init__(self, int8: OpenVinoInt8Config = OpenVinoInt8Config()) -> None:
        self.int8 = int8

    def export(self, model, spec: InputSpec, precision: str, stage: Path, stem: str,
               calib: np.ndarray | None = None) -> list[Path]:
        """Export ``model`` to ``stage/<stem>.xml`` and ``.bin``; see :meth:`Exporter.export` for arguments.

        Raises:
            ConversionError: convert_model, NNCF or save_model failed, or INT8 got no calibration inputs.
            MissingDependencyError: openvino (or nncf for INT8) is missing.
        """
        ov = _openvino()
        xml = stage / f"{stem}{self.extension}"
        if precision not in self.precisions:
            raise ConversionError(f"{xml.name}: precision {precision!r} is not handled by the OpenVINO exporter")
        if precision == "int8":
            calib = _check_calib(calib, spec, xml.name)
        ov_model = self._convert(ov, model, spec, xml.name)
        if precision == "int8":
            ov_model = self._int8(ov_model, spec, calib, xml.name)
        for key, value in metadata_for(spec, precision).items():
            ov_model.set_rt_info(value, key.split("/"))
        try:
            ov.save_model(ov_model, str(xml), compress_to_fp16=precision == "fp16")
        except _CONVERT_ERRORS as exc:
            raise ConversionError(f"{xml.name}: openvino.save_model failed: {_first_line(exc)}") from None
        return [xml, xml.with_suffix(".bin")]

    @staticmethod
    def _convert(ov, model, spec: InputSpec, name: str):
        import torch

        shape = [-1 if spec.dynamic_batch else spec.shape[0], *spec.shape[1:]]
        example = torch.zeros(spec.shape, dtype=torch.float32)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                # The TorchScript-tracing path (a module + example_input) took 1.7 s where an
                # ExportedProgram took 4.5 s for the same IR; its deprecation warning is noise here.
                warnings.simplefilter("ignore")
                ov_model = ov.convert_model(model, example_input=example, input=[shape])
        except _CONVERT_ERRORS as exc:
            raise ConversionError(f"{name}: openvino.convert_model failed: {_first_line(exc)}") from None
        if len(ov_model.inputs) != 1 or len(ov_model.outputs) < 1:
            raise ConversionError(f"{name}: expected one input, got {len(ov_model.inputs)}")
        ov_model.inputs[0].get_tensor().set_names({spec.name})
        ov_model.outputs[0].get_tensor().set_names({spec.output_name})
        ov_model.set_friendly_name(Path(name).stem)
        return ov_model

    def _int8(self, ov_model, spec: InputSpec, calib, name: str):
        try:
            import nncf
        except ImportError:
            raise MissingDependencyError("OpenVINO INT8 export needs nncf: pip install 'edgenas[export]'") from None
        batch = spec.shape[0]
        items = [calib[i:i + batch] for i in range(0, len(calib) - batch + 1, batch)]
        cfg = self.int8
        preset = nncf.QuantizationPreset.PERFORMANCE if cfg.preset == "performance" else nncf.QuantizationPreset.MIXED
        try:
            with _nncf_quiet(nncf):
                quantized = nncf.quantize(ov_model, nncf.Dataset(items), preset=preset,
                                          subset_size=min(cfg.subset_size, len(items)),
                                          fast_bias_correction=cfg.fast_bias_correction)
                if cfg.compress_float_weights:
                    # Only layers still in float are touched (quantized ones are skipped).
                    quantized = nncf.compress_weights(quantized, mode=nncf.CompressWeightsMode.INT8_SYM)
                return quantized
        except (*_CONVERT_ERRORS, nncf.errors.ValidationError, nncf.errors.InternalError,
                nncf.errors.UnsupportedModelError, nncf.errors.UnsupportedDatasetError) as exc:
            raise ConversionError(f"{name}: nncf.quantize failed: {_first_line(exc)}") from None

    def tool_versions(self) -> dict[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        versions = {}
        for package in ("torch", "openvino", "nncf"):
            try:
                versions[package] = version(package)
            except PackageNotFoundError:
                continue
        return versions


@contextmanager
def _nncf_quiet(nncf) -> Iterator[None]:
    """Silence NNCF's info log and its progress bars (rich, on stdout) for the duration of a call."""
    from nncf.common.logging import nncf_logger

    level = nncf_logger.level
    nncf.set_log_level(logging.ERROR)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        nncf.set_log_level(level)
