"""Parity figures (hand-computed), thresholds, and batching of static-batch artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from exporters.errors import ParityError
from exporters.parity import check_parity, compare_logits


def test_compare_logits_hand_computed():
    ref = np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0]])
    art = np.array([[1.5, 1.0, 0.0], [3.0, 0.5, 1.0]])
    out = compare_logits(ref, art, labels=np.array([1, 0]))
    assert out["max_abs_diff"] == pytest.approx(1.0)
    assert out["mean_abs_diff"] == pytest.approx(2.0 / 6)
    assert out["top1_agreement"] == 0.5 and out["n_inputs"] == 2
    assert out["accuracy"] == 0.5 and out["reference_accuracy"] == 1.0


def test_near_ties_count_as_agreement():
    ref = np.array([[1.0, 1.0 + 1e-7, 0.0]])
    art = np.array([[1.0 + 1e-7, 1.0, 0.0]])
    assert compare_logits(ref, art)["top1_agreement"] == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        compare_logits(np.zeros((2, 3)), np.zeros((2, 4)))


class FakeRunner:
    """A runner with a static batch that applies ``fn`` to numpy inputs."""

    def __init__(self, fn, batch: int = 1) -> None:
        self.fn, self.batch, self.calls = fn, batch, []
        self.path = Path("fake.onnx")

    @property
    def input_shape(self):
        return (self.batch, 2)

    def run(self, x):
        assert len(x) == self.batch or self.batch == -1
        self.calls.append(len(x))
        return [self.fn(x)]


class Linear(torch.nn.Module):
    def forward(self, x):
        return x * torch.tensor([1.0, -1.0])


def _inputs(n=7):
    return np.random.default_rng(0).standard_normal((n, 2, 1, 1)).astype(np.float32)


def test_static_batch_is_looped_and_padded():
    x = _inputs(7)
    runner = FakeRunner(lambda a: a.reshape(len(a), 2) * np.array([1.0, -1.0], dtype=np.float32), batch=3)
    model = lambda t: Linear()(t.reshape(len(t), 2))  # noqa: E731
    out = check_parity(model, runner, x, precision="fp32")
    assert runner.calls == [3, 3, 3]  # 7 inputs: two full batches, one padded
    assert out["n_inputs"] == 7 and out["top1_agreement"] == 1.0 and out["max_abs_diff"] == 0.0
    assert out["passed"] and out["warning"] is None


def test_fp32_disagreement_raises_unless_not_strict():
    x = _inputs(10)
    flipped = FakeRunner(lambda a: -a.reshape(len(a), 2) * np.array([1.0, -1.0], dtype=np.float32))
    model = lambda t: Linear()(t.reshape(len(t), 2))  # noqa: E731
    with pytest.raises(ParityError, match="fake.onnx: FP32 artifact agrees"):
        check_parity(model, flipped, x, precision="fp32")
    out = check_parity(model, flipped, x, precision="fp32", strict=False)
    assert not out["passed"] and "need 99.9%" in out["warning"]


def test_int8_accuracy_drop_is_flagged_not_raised():
    x = _inputs(10)
    model = lambda t: Linear()(t.reshape(len(t), 2))  # noqa: E731
    labels = model(torch.from_numpy(x)).argmax(1).numpy()  # the reference is 100% right
    flipped = FakeRunner(lambda a: -a.reshape(len(a), 2) * np.array([1.0, -1.0], dtype=np.float32))
    out = check_parity(model, flipped, x, labels=labels, precision="int8")
    assert out["accuracy"] == 0.0 and out["reference_accuracy"] == 1.0
    assert not out["passed"] and "INT8 accuracy" in out["warning"] and "points below" in out["warning"]
