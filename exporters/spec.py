"""What an exporter needs besides the model: the input it takes and how to prepare it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from exporters.errors import UnsupportedError

FORMATS = ("onnx", "tflite", "openvino")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class InputSpec:
    """The model input, as a mobile app must feed it.

    Attributes:
        shape: NCHW shape of one batch, e.g. (1, 3, 32, 32).
        mean, std: per-channel normalisation applied to pixels scaled by ``scale``
            (``x = (pixel * scale - mean) / std``).
        name: input tensor name in every artifact.
        labels: class names, index = output position.
        dynamic_batch: export with a dynamic batch dimension where the format allows.
    """

    shape: tuple[int, int, int, int] = (1, 3, 32, 32)
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    scale: float = 1 / 255
    name: str = "input"
    output_name: str = "logits"
    labels: tuple[str, ...] = field(default=())
    dynamic_batch: bool = False

    def __post_init__(self) -> None:
        if len(self.shape) != 4 or any(int(s) <= 0 for s in self.shape):
            raise UnsupportedError(f"input shape must be 4 positive sizes (N, C, H, W), got {self.shape}")
        if len(self.mean) != self.shape[1] or len(self.std) != self.shape[1]:
            raise UnsupportedError("mean and std need one value per input channel")

    def artifact_metadata(self, precision: str) -> dict[str, str]:
        """What every artifact carries about its input and output, as strings (one definition
        for all formats: ONNX metadata_props, OpenVINO rt_info, the TFLite metadata JSON)."""
        return {
            "input_name": self.name,
            "input_layout": "NCHW",
            "input_scale_to_unit": repr(self.scale),
            "mean": ",".join(repr(float(m)) for m in self.mean),
            "std": ",".join(repr(float(s)) for s in self.std),
            "output_name": self.output_name,
            "output_meaning": "logits",
            "labels": ",".join(self.labels),
            "precision": precision,
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
