"""Shared by the transport tests: a tiny ONNX model, and no user files leaking in."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_user_files(tmp_path, monkeypatch):
    """Keep the developer's device profiles and ~/.ssh (config, keys, known_hosts) out of the tests."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("EDGENAS_DEVICES_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def make_conv_onnx(path: Path, side: int = 8) -> Path:
    """Conv(3->4, 3x3) -> GlobalAveragePool -> Flatten on an input [1, 3, side, side]."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["input", "W"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["conv"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["logits"])]
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])], [numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def conv_onnx(tmp_path_factory) -> Path:
    """A tiny ONNX model (see :func:`make_conv_onnx`), made once per session."""
    pytest.importorskip("onnx")
    return make_conv_onnx(tmp_path_factory.mktemp("models") / "conv.onnx")


@pytest.fixture(scope="session")
def numpy_free_python() -> str:
    """A real python without numpy (the system one on Debian), else skip."""
    import shutil
    import subprocess

    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no /usr/bin/python3")
    done = subprocess.run([python, "-c", "import numpy"], capture_output=True, timeout=30, check=False)
    if done.returncode == 0:
        pytest.skip(f"{python} has numpy")
    return python
