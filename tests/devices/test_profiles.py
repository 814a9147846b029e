"""Device profiles: shipped files, search path, validation, torch-free import, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from devices import DeviceProfile, DeviceProfileError, DevicesError, UnknownDeviceError
from devices.profiles import (
    SHIPPED_DIR,
    list_profiles,
    load_profile,
    load_profile_file,
    profile_dirs,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ["jetson-nano", "jetson-orin-nano", "local", "rpi4", "rpi5"]
REMOTE = [n for n in SHIPPED if n != "local"]

MINIMAL = """\
name = "{name}"
description = "a test board"
transport = "ssh"
runtime = "ort"
threads = 2
"""


@pytest.fixture(autouse=True)
def isolated_search_path(tmp_path, monkeypatch):
    """Keep the developer's own profiles out of the tests."""
    monkeypatch.delenv("EDGENAS_DEVICES_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def test_shipped_profiles_are_listed():
    assert list_profiles() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_profile_loads(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.source == str(SHIPPED_DIR / f"{name}.toml")
    assert profile.threads is not None and profile.threads >= 1
    assert json.loads(json.dumps(profile.to_dict()))["name"] == name


@pytest.mark.parametrize("name", REMOTE)
def test_remote_profiles_carry_latency_model_facts(name):
    profile = load_profile(name)
    assert profile.transport == "ssh" and profile.ssh.host == "" and profile.ssh.port == 22
    assert profile.arch == "aarch64" and profile.simd == "NEON" and profile.simd_width_bits == 128
    assert profile.clock_ghz > 1 and profile.mem_bandwidth_gbs > 1 and profile.cores >= 4
    assert profile.notes and profile.probed == ()


def test_local_profile_is_probed():
    profile = load_profile("local")
    assert profile.transport == "local" and profile.probe_host
    assert profile.cores == os.cpu_count() and profile.threads == profile.cores
    assert profile.python == sys.executable
    assert {"cores", "threads", "arch", "python"} <= set(profile.probed)
    assert profile.mem_bandwidth_gbs is None  # cannot be read from the OS: left unknown, not guessed


def test_round_trip_through_dict():
    profile = load_profile("rpi4")
    data = profile.to_dict()
    del data["probed"], data["source"]
    assert DeviceProfile.from_dict(data, source=profile.source) == profile


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownDeviceError) as info:
        load_profile("rpi")
    message = str(info.value)
    assert "did you mean" in message and "'rpi4'" in message and "'rpi5'" in message
    assert "\n" not in message
    assert isinstance(info.value, DevicesError) and isinstance(info.value, KeyError)


def test_user_directories_add_and_override(tmp_path, monkeypatch):
    env_dir, xdg_dir = tmp_path / "env", tmp_path / "xdg" / "edgenas" / "devices"
    write(xdg_dir, "board", MINIMAL.format(name="board"))
    write(xdg_dir, "rpi4", MINIMAL.format(name="rpi4").replace("a test board", "from xdg"))
    write(env_dir, "rpi4", MINIMAL.format(name="rpi4").replace("a test board", "from env"))
    monkeypatch.setenv("EDGENAS_DEVICES_DIR", str(env_dir))
    assert profile_dirs()[:2] == [env_dir, xdg_dir]
    assert "board" in list_profiles()
    assert load_profile("board").source == str(xdg_dir / "board.toml")
    assert load_profile("rpi4").description == "from env"  # first directory wins


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (MINIMAL + "coers = 4\n", "unknown key 'coers'; did you mean 'cores'"),
        (MINIMAL.replace('"ssh"', '"sssh"'), "transport 'sssh' is not one of local, ssh; did you mean 'ssh'"),
        (MINIMAL.replace('"ort"', '"tflite"'), "runtime 'tflite'"),
        (MINIMAL + "cores = -1\n", "cores must be a positive int"),
        (MINIMAL + "clock_ghz = 0\n", "clock_ghz must be a positive number"),
        (MINIMAL + "probe_host = true\n", "probe_host = true reads this machine"),
        (MINIMAL.replace("threads = 2\n", ""), "threads is required"),
        (MINIMAL + "[ssh]\nport = 70000\n", "ssh.port"),
        (MINIMAL + "[ssh]\nhots = 'x'\n", "unknown key ssh.'hots'; did you mean 'host'"),
        (MINIMAL.replace('description = "a test board"\n', ""), "missing required key"),
        (MINIMAL + "schema_version = 2\n", "schema_version 2"),
        (MINIMAL + "name = 'again'\n", "invalid TOML"),
    ],
)
def test_invalid_profiles_raise_one_line_errors(tmp_path, text, match):
    path = write(tmp_path / "p", "board", text.format(name="board"))
    with pytest.raises(DeviceProfileError, match=match) as info:
        load_profile_file(path)
    assert "\n" not in str(info.value)


def test_name_must_match_file_name(tmp_path):
    path = write(tmp_path / "p", "board", MINIMAL.format(name="other"))
    with pytest.raises(DeviceProfileError, match="differs from the file name"):
        load_profile_file(path)


def test_local_device_takes_no_ssh_host():
    with pytest.raises(DeviceProfileError, match="no \\[ssh\\] host"):
        DeviceProfile.from_dict(
            {"name": "x", "description": "", "transport": "local", "runtime": "ort", "threads": 1,
             "ssh": {"host": "pi.local"}}
        )


def test_devices_imports_without_torch_or_edgenas():
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
        "sys.modules['edgenas'] = None\n"
        "import devices, devices.profiles, devices.host\n"
        "names = devices.list_profiles()\n"
        "assert [devices.load_profile(n).name for n in names] == names\n"
        "print(len(names))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= len(SHIPPED)


# --- CLI ---------------------------------------------------------------------


def invoke(*args: str):
    from edgenas.cli.main import cli

    return CliRunner().invoke(cli, ["devices", *args])


@pytest.mark.parametrize("args", [[], ["list"], ["show"]])
def test_cli_help(args):
    result = invoke(*args, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_cli_list_shows_every_profile():
    result = invoke("list")
    assert result.exit_code == 0, result.output
    for name in SHIPPED:
        assert name in result.output
    assert "litert" in result.output and "ssh" in result.output


def test_cli_list_json():
    result = invoke("list", "--json")
    assert result.exit_code == 0, result.output
    assert [p["name"] for p in json.loads(result.output)] == SHIPPED


def test_cli_show_table_and_json():
    result = invoke("show", "rpi5")
    assert result.exit_code == 0, result.output
    assert "Cortex-A76" in result.output and "mem_bandwidth_gbs" in result.output
    data = json.loads(invoke("show", "rpi5", "--json").output)
    assert data["cores"] == 4 and data["clock_ghz"] == 2.4 and data["ssh"]["port"] == 22


def test_cli_show_unknown_is_one_line_error():
    result = invoke("show", "jetson")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown device 'jetson'")


def test_cli_broken_user_profile_is_one_line_error(tmp_path, monkeypatch):
    write(tmp_path / "env", "board", "name = 'board'\n")
    monkeypatch.setenv("EDGENAS_DEVICES_DIR", str(tmp_path / "env"))
    result = invoke("list")
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "missing required key" in result.output
