"""Freeze, quantize and export networks to ONNX, TFLite and OpenVINO (issue 3)."""
