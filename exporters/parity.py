"""Parity of an exported artifact with its PyTorch source, on the same held-out inputs.

The comparison itself is pure numpy (:func:`compare_logits`); :func:`check_parity`
runs the reference model and the artifact's runner batch by batch and applies
its thresholds: an FP32 artifact must agree with PyTorch on at least
99.9% of top-1 predictions; an INT8 (or FP16) artifact whose accuracy drops more
than 2 points below the reference is flagged loudly, not rejected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from exporters.errors import ParityError

#: minimum top-1 agreement with PyTorch of an FP32 artifact (fraction)
FP32_MIN_AGREEMENT = 0.999
#: relative logit gap below which two classes count as tied (float32 rounding is ~1e-7)
TIE_TOLERANCE = 1e-5
#: accuracy drop (points, i.e. percent) of a reduced-precision artifact that raises a warning
MAX_ACCURACY_DROP_POINTS = 2.0

__all__ = ["FP32_MIN_AGREEMENT", "MAX_ACCURACY_DROP_POINTS", "TIE_TOLERANCE", "check_parity", "compare_logits"]


def compare_logits(reference: np.ndarray, artifact: np.ndarray, labels: np.ndarray | None = None) -> dict[str, Any]:
    """Agreement of two ``[N, classes]`` logit arrays (and their accuracy against ``labels [N]``).

    Top-1 agreement counts a row as agreeing when the artifact's top class is
    also a top class of the reference up to float rounding: its reference logit
    is within :data:`TIE_TOLERANCE` (relative to the row's largest magnitude) of
    the reference maximum. Near-ties are common in untrained networks and would
    otherwise turn rounding noise into disagreement.

    Returns:
        ``max_abs_diff``, ``mean_abs_diff`` (logit units), ``top1_agreement`` (fraction in [0, 1]),
        ``n_inputs``; with labels also ``accuracy`` and ``reference_accuracy`` (fractions).

    Raises:
        ValueError: shapes differ, or labels do not match the number of rows.
    """
    reference = np.asarray(reference, dtype=np.float64)
    artifact = np.asarray(artifact, dtype=np.float64)
    if reference.shape != artifact.shape or reference.ndim != 2 or len(reference) == 0:
        raise ValueError(f"need two [N, classes] arrays of the same shape, got {reference.shape} and {artifact.shape}")
    diff = np.abs(reference - artifact)
    ref_top1, art_top1 = reference.argmax(1), artifact.argmax(1)
    rows = np.arange(len(reference))
    tolerance = TIE_TOLERANCE * np.maximum(1.0, np.abs(reference).max(1))
    agree = reference[rows, ref_top1] - reference[rows, art_top1] <= tolerance
    out: dict[str, Any] = {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "top1_agreement": float(agree.mean()),
        "n_inputs": int(len(reference)),
    }
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(reference):
            raise ValueError(f"{len(labels)} labels for {len(reference)} inputs")
        out["accuracy"] = float((art_top1 == labels).mean())
        out["reference_accuracy"] = float((ref_top1 == labels).mean())
    return out


def _reference_logits(model, inputs: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    outs = []
    with torch.inference_mode():
        for i in range(0, len(inputs), batch):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(inputs[i:i + batch]))).float().numpy())
    return np.concatenate(outs)


def _artifact_logits(runner, inputs: np.ndarray) -> np.ndarray:
    """Run ``inputs`` through ``runner`` in batches of its static batch size (a dynamic batch: 64)."""
    batch = runner.input_shape[0] if runner.input_shape and runner.input_shape[0] > 0 else 64
    outs = []
    for i in range(0, len(inputs), batch):
        chunk = inputs[i:i + batch]
        pad = batch - len(chunk) if runner.input_shape[0] > 0 else 0
        if pad:  # a static batch larger than the remainder: pad, then drop the padded rows
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
        out = runner.run(chunk)[0]
        outs.append(out[:len(out) - pad] if pad else out)
    return np.concatenate(outs).astype(np.float32)


def check_parity(reference_model, runner, inputs: np.ndarray, labels: np.ndarray | None = None,
                 precision: str = "fp32", strict: bool = True) -> dict[str, Any]:
    """Run ``inputs`` through the PyTorch model and the artifact; compare.

    Args:
        reference_model: the frozen ``nn.Module`` the artifact was exported from.
        runner: a :class:`bench.runtimes.Runner` holding the artifact.
        inputs: ``[N, C, H, W]`` float32, normalised as the model expects.
        labels: optional ``[N]`` integer class labels (adds accuracies).
        precision: "fp32", "fp16" or "int8": picks the thresholds.
        strict: raise on an FP32 disagreement (else it is only recorded in ``warning``).

    Returns:
        :func:`compare_logits`'s figures, plus ``passed`` (bool) and ``warning``
        (a one-line message or None).

    Raises:
        ParityError: FP32 top-1 agreement below :data:`FP32_MIN_AGREEMENT` and ``strict``.
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    if inputs.ndim != 4 or len(inputs) == 0:
        raise ValueError(f"parity inputs must be a non-empty [N, C, H, W] array, got shape {inputs.shape}")
    result = compare_logits(_reference_logits(reference_model, inputs), _artifact_logits(runner, inputs), labels)
    warning = None
    if precision == "fp32" and result["top1_agreement"] < FP32_MIN_AGREEMENT:
        warning = (f"FP32 artifact agrees with PyTorch on {result['top1_agreement']:.2%} of top-1 predictions "
                   f"(need {FP32_MIN_AGREEMENT:.1%}; max abs diff {result['max_abs_diff']:.3g})")
        if strict:
            raise ParityError(f"{runner.path.name}: {warning}")
    elif precision != "fp32" and labels is not None:
        drop = 100.0 * (result["reference_accuracy"] - result["accuracy"])
        if drop > MAX_ACCURACY_DROP_POINTS:
            warning = (f"{precision.upper()} accuracy {result['accuracy']:.2%} is {drop:.1f} points below "
                       f"PyTorch's {result['reference_accuracy']:.2%} (limit {MAX_ACCURACY_DROP_POINTS:g})")
    result["passed"] = warning is None
    result["warning"] = warning
    return result
