"""The documented Python API: one entry point per pipeline step, never hidden by a subpackage import,
and the README's Python blocks run as written."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import edgenas

REPO = Path(__file__).resolve().parent.parent


def test_every_entry_point_is_a_function_no_module_shadows():
    modules = {m.name for m in pkgutil.iter_modules(edgenas.__path__)}
    for name in edgenas.ENTRY_POINTS:
        assert name not in modules, f"edgenas.{name} would be rebound by importing a module of that name"
        assert callable(getattr(edgenas, name)), name
    assert set(edgenas.ENTRY_POINTS) <= set(dir(edgenas)) and set(edgenas.ENTRY_POINTS) <= set(edgenas.__all__)


def test_entry_points_survive_subpackage_imports():
    code = ("import edgenas\nfrom edgenas.search.config import SearchConfig\nimport edgenas.deploy.sweep, "
            "edgenas.latency.api, edgenas.train.finetune\n"
            "assert all(callable(getattr(edgenas, n)) for n in edgenas.ENTRY_POINTS)\n"
            "print(edgenas.run_search.__module__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "edgenas.search.runner"


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_import_edgenas_is_light():
    code = "import sys, edgenas\nassert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("block", _python_blocks(REPO / "README.md") or [pytest.param("", marks=pytest.mark.skip)])
def test_readme_python_blocks_run_as_written(block, tmp_path):
    """Each ```python block of the README, in a fresh interpreter in an empty directory (tiny sizes)."""
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
