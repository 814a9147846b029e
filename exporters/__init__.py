"""Freeze, quantize and export networks to ONNX, TFLite and OpenVINO, each artifact verified.

The exporters take a plain ``nn.Module`` and an :class:`~exporters.spec.InputSpec`;
they know nothing of the search. See :func:`exporters.api.export`.
"""

__all__ = ["export"]


def __getattr__(name: str):
    # Lazy: ``import exporters`` (e.g. for its errors) must not import torch and the converters.
    if name == "export":
        from exporters.api import export

        return export
    raise AttributeError(f"module 'exporters' has no attribute {name!r}")
