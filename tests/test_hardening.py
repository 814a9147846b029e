"""The failure classes a careful user or an attacker hits, one test (or a few) per class:

1. opening a run directory never runs its code (crafted checkpoints, a run's recorded plugins);
2. one job per output directory (a second job stops at once; a killed holder blocks nothing);
3. I/O errors are one line and a failed job leaves nothing behind (read-only and full disks);
4. bad values stop at the door (absurd specs and options, a garbage summary.json);
5. records are never lost to a torn line, and manifests cannot name files outside their folder.

Each asserts the one-line ``error:``, the exit code and what is left on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgenas.cli.main import cli

REPO = Path(__file__).resolve().parent.parent
TINY = ["--strategy", "darts", "--supernet", "full", "--subset", "96", "--resolution", "16", "--channels", "4", "--cells", "2", "--nodes", "2", "--projector",
        "16,16", "--epochs", "2", "--batch-size", "8", "--checkpoint-every", "2", "--threads", "1", "--no-progress"]


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def one_error_line(result) -> str:
    """The one ``error:`` line of a failed command (and nothing that looks like a traceback)."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


# --- 1. a run directory never runs its code ----------------------------------------------------------------

class _Payload:
    """Unpickling this creates ``marker``: what a crafted checkpoint would do to whoever loads it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("name", ["search.ckpt", "refine/refine.ckpt"])
def test_a_crafted_checkpoint_is_refused_before_it_runs(tmp_path, tiny_run, name):
    import torch

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    marker = tmp_path / "pwned"
    (run_dir / name).parent.mkdir(exist_ok=True)
    torch.save({"version": 1, "payload": _Payload(marker)}, run_dir / name)
    args = ["search", "--out", run_dir, "--seed", "3", *TINY] + (["--refine-epochs", "1", "--refine-batch-size",
                                                                    "16"] if "refine" in name else [])
    line = one_error_line(run(*args))
    assert "not a checkpoint edgenas can read safely" in line and not marker.exists()


def test_a_crafted_finetune_checkpoint_is_refused(tmp_path, tiny_run):
    import torch

    out = tmp_path / "ft"
    out.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"version": 1, "payload": _Payload(marker)}, out / "finetune.ckpt")
    line = one_error_line(run("finetune", tiny_run, "--out", out, "--epochs", "1", "--min-steps", "0", "--synthetic-size", "120",
                              "--threads", "1", "--no-progress"))
    assert "not a checkpoint edgenas can read safely" in line and not marker.exists()
    assert tree(out) == ["finetune.ckpt"]  # the user's file is left as it was


def test_a_garbage_checkpoint_is_one_line(tmp_path, tiny_run):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    (run_dir / "search.ckpt").write_bytes(b"\x80\x04not a pickle at all" * 10)
    line = one_error_line(run("search", "--out", run_dir, "--seed", "3", *TINY))
    assert str(run_dir / "search.ckpt") in line


def test_a_runs_recorded_plugins_are_not_imported_unless_named_or_trusted(tmp_path, tiny_run):
    import yaml

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    marker = tmp_path / "pwned"
    plugin = tmp_path / "evil_plugin.py"
    plugin.write_text(f"open({str(marker)!r}, 'w').close()\n")
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg["plugins"] = [str(plugin)]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    common = ["finetune", run_dir, "--init", "pretrained", "--epochs", "1", "--min-steps", "0", "--synthetic-size", "120",
              "--resolution", "16", "--threads", "1", "--no-progress", "--out", tmp_path / "ft"]
    line = one_error_line(run(*common))
    assert "--plugin" in line and "--trust-plugins" in line and not marker.exists()
    assert not (tmp_path / "ft").exists() and not (run_dir / "pretrain").exists()
    # named on the command line, it is the user's choice: it runs
    subprocess.run([sys.executable, "-m", "edgenas", *map(str, common), "--plugin", str(plugin)], cwd=tmp_path,
                   capture_output=True, text=True, timeout=300, check=True)
    assert marker.exists()


def test_plugin_help_says_it_is_code():
    for command in ("search", "finetune", "export", "profile"):
        text = " ".join(run(command, "--help").output.split())
        assert "code that runs" in text, command


# --- 2. one job per output directory ----------------------------------------------------------------------

_HOLD = """
import sys, time
sys.path.insert(0, {repo!r})
from edgenas.outputs import job_output
with job_output({path!r}, "search"):
    print("holding", flush=True)
    time.sleep(120)
"""


def _holder(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD.format(repo=str(REPO), path=str(path))],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_second_job_on_the_same_directory_stops_at_once_naming_the_first(tmp_path):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        t0 = time.perf_counter()
        line = one_error_line(run("search", "--out", out, *TINY))
        assert time.perf_counter() - t0 < 30
        assert f"pid {holder.pid}" in line and "is in use by" in line
        assert not (out / "config.yaml").exists() and not (out / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_job_does_not_block_the_next(tmp_path):
    out = tmp_path / "sweep"
    holder = _holder(out)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (out / ".edgenas.lock").exists()  # the file is left, the lock is not
    result = run("space", "sample", "--n", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["arch-0.json", "arch-1.json"]


def test_concurrent_searches_on_one_run_directory(tmp_path):
    """Two real `edgenas search` processes a moment apart: one searches, the other says who holds the run."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgenas", "search", "--out", str(out), *TINY]
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(600):  # until the first holds the directory
        if (out / ".edgenas.lock").exists():
            break
        time.sleep(0.05)
    second = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out1, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 2 and "is in use by" in second.stderr, second.stderr
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len([s for s in steps if s.get("event") == "step"]) == len({s["global_step"] for s in steps
                                                                      if s.get("event") == "step"})


# --- 3. I/O errors: one line, nothing left behind ---------------------------------------------------------

def _mount(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only file system (a tmpfs mounted ro), or a mode-555 directory for a user that is not root."""
    path = tmp_path / "ro"
    if os.geteuid() != 0:
        path.mkdir()
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    _mount(path, "ro,size=1m")
    yield path
    subprocess.run(["umount", str(path)], check=False)


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs: room for a config file, not for a checkpoint or a model."""
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root")
    path = tmp_path / "full"
    _mount(path, "size=64k")
    yield path
    subprocess.run(["umount", str(path)], check=False)


@pytest.mark.parametrize("command", [
    ["search", "--out", "{d}/run", *TINY],
    ["space", "sample", "--n", "3", "--out", "{d}/archs"],
    ["export", "{run}", "--out", "{d}/exports", "--parity-samples", "16"],
    ["finetune", "{run}", "--out", "{d}/ft", "--epochs", "1", "--min-steps", "0", "--synthetic-size", "120", "--threads", "1"],
    ["bench", "{exports}", "--out", "{d}/records.jsonl", "--runs", "3", "--warmup", "0"],
    ["sweep", "mobilenet_v3_small", "--out", "{d}/sweep", "--runs", "3", "--warmup", "0"],
])
def test_a_read_only_output_is_one_line_before_any_work(read_only_dir, tiny_run, tiny_exports, command):
    args = [a.format(d=read_only_dir, run=tiny_run, exports=tiny_exports) for a in command]
    t0 = time.perf_counter()
    line = one_error_line(run(*args))
    assert "Read-only file system" in line or "Permission denied" in line, line
    assert time.perf_counter() - t0 < 60
    assert tree(read_only_dir) == []


def test_a_search_on_a_full_disk_leaves_nothing(full_disk):
    line = one_error_line(run("search", "--out", full_disk / "run", *TINY))
    assert "No space left on device" in line
    assert tree(full_disk) == []


def test_space_sample_on_a_full_disk_leaves_nothing(full_disk):
    line = one_error_line(run("space", "sample", "--n", "2000", "--out", full_disk / "archs"))
    assert "No space left on device" in line
    assert tree(full_disk) == []


def test_a_failed_job_in_an_existing_directory_removes_only_what_it_added(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    one_error_line(run("search", "--out", out, *TINY, "--data", "imagefolder", "--data-root", tmp_path / "nope"))
    assert tree(out) == ["notes.txt"]


@pytest.fixture(scope="module")
def tiny_exports(tmp_path_factory):
    from edgenas.deploy.export import run_export

    out = tmp_path_factory.mktemp("exports") / "e"
    run_export("mobilenet_v3_small", "onnx", "fp32", out=str(out), parity_samples=8, resolution=32)
    return out


# --- 4. bad values stop at the door -----------------------------------------------------------------------

def _arch(tmp_path: Path, tiny_run: Path, **changes) -> Path:
    data = json.loads((tiny_run / "arch.json").read_text())
    data.update(changes)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"channels": 10**9}, "too large to build"),
    ({"resolution": 2**20}, "beyond what edgenas builds"),
    ({"num_classes": 0}, "has no classifier"),
])
def test_absurd_specs_are_refused_before_anything_is_allocated(tmp_path, tiny_run, changes, message):
    line = one_error_line(run("profile", _arch(tmp_path, tiny_run, **changes)))
    assert message in line


@pytest.mark.parametrize("option", [["--channels", "1000000000"], ["--resolution", "1000000"],
                                    ["--projector", "16,1000000"], ["--channels", "1000", "--cells", "60"]])
def test_absurd_search_options_are_refused_before_any_work(tmp_path, option):
    line = one_error_line(run("search", "--out", tmp_path / "run", *TINY, *option))
    assert "beyond" in line or "must be" in line, line
    assert not (tmp_path / "run").exists()


def test_a_garbage_summary_is_one_line(tmp_path, tiny_run):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    (run_dir / "summary.json").write_text('{"params": 12, ')
    line = one_error_line(run("report", run_dir))
    assert "summary.json is not a valid search summary" in line


# --- 5. records are never lost, paths never escape --------------------------------------------------------

def test_a_torn_last_line_does_not_cost_the_next_record(tmp_path, capsys):
    from bench.files import append_jsonl, read_jsonl

    path = tmp_path / "records.jsonl"
    append_jsonl(path, {"n": 1})
    with open(path, "a") as fh:
        fh.write('{"n": 2, "p50')  # a kill in the middle of a write
    assert [r["n"] for r in read_jsonl(path)] == [1]
    assert capsys.readouterr().err == ""  # a torn last line is expected, not reported
    append_jsonl(path, {"n": 3})
    assert [r["n"] for r in read_jsonl(path)] == [1, 3]
    with open(path, "a") as fh:
        fh.write("garbage\n")
    append_jsonl(path, {"n": 4})
    assert [r["n"] for r in read_jsonl(path)] == [1, 3, 4]
    err = capsys.readouterr().err
    assert f"{path}:2:" in err and f"{path}:4:" in err


def test_a_killed_sweep_measures_again_only_what_it_lost(tmp_path, capsys):
    from bench.sweep import done_keys

    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"device": "local", "model": "m", "format": "onnx", "precision": "fp32",
                                "threads": 1, "p50_ms": 1.0}) + "\n" + '{"device": "local", "mod')
    assert len(done_keys(path)) == 1


@pytest.mark.parametrize("escape", ["../secret/model.onnx", "/etc/passwd.onnx", "sub/../../secret/model.onnx"])
def test_a_manifest_cannot_name_a_file_outside_its_folder(tmp_path, tiny_exports, escape):
    exports = tmp_path / "exports"
    shutil.copytree(tiny_exports, exports)
    secret = tmp_path / "secret"
    secret.mkdir()
    shutil.copy(next(exports.glob("*.onnx")), secret / "model.onnx")
    manifest = json.loads((exports / "manifest.json").read_text())
    manifest["artifacts"][0]["path"] = escape
    (exports / "manifest.json").write_text(json.dumps(manifest))
    line = one_error_line(run("bench", exports, "--runs", "3", "--warmup", "0"))
    assert "outside its folder" in line
