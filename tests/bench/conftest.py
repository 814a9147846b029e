"""Shared by the runtime tests: run bench code in a fresh interpreter where torch cannot be imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(name="run_without_torch")
def run_without_torch_fixture():
    """``run(code, *args) -> stdout``: ``code`` runs with ``sys.modules['torch'] = None``; fails the test on error."""

    def run(code: str, *args: str) -> str:
        script = "import sys; sys.modules['torch'] = None\n" + code
        done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    return run

