"""`edgenas` and `edgenas search` from the command line: help, runs, and one-line errors."""

import json

import pytest
from click.testing import CliRunner

from edgenas.cli.main import COMMANDS, cli

TINY = ["--strategy", "darts", "--subset", "96", "--resolution", "16", "--channels", "4", "--cells", "2", "--nodes", "2",
        "--projector", "16,16", "--epochs", "1", "--batch-size", "8", "--no-progress"]


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_root_help_lists_commands():
    result = run("--help")
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name):
    result = run(name, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_search_help_states_defaults():
    out = run("search", "--help").output
    for text in ("--target", "--max-params", "1000000", "--max-macs", "100000000", "--order", "first",
                 "--accum-steps", "--subset", "--plugin", "--config", "default:"):
        assert text in out


def test_search_json_summary(tmp_path):
    result = run("search", *TINY, "--out", str(tmp_path / "r"), "--target", "rpi5", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["target"] == "rpi5" and isinstance(summary["params"], int)


def test_config_file_with_command_line_override(tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("strategy: darts\nchannels: 4\ncells: 2\nnodes: 2\nsubset: 96\nresolution: 16\nprojector: [16, 16]\n"
                   "epochs: 3\nbatch_size: 8\n")
    result = run("search", "--config", str(cfg), "--epochs", "1", "--out", str(tmp_path / "r"), "--no-progress",
                 "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["epochs"] == 1
    assert "channels: 4" in (tmp_path / "r" / "config.yaml").read_text()


def test_custom_op_from_a_plugin_file(tmp_path):
    plugin = tmp_path / "my_ops.py"
    plugin.write_text(
        "from torch import nn\nfrom edgenas.space import register_op\n"
        "@register_op('plugin_dw5x5')\n"
        "def dw5x5(C, stride, affine):\n"
        "    return nn.Sequential(nn.Conv2d(C, C, 5, stride, 2, groups=C, bias=False), nn.BatchNorm2d(C, affine=affine))\n"
    )
    result = run("search", *TINY, "--out", str(tmp_path / "r"), "--plugin", str(plugin),
                 "--ops", "zero,identity,plugin_dw5x5", "--json")
    assert result.exit_code == 0, result.output
    assert "plugin_dw5x5" in (tmp_path / "r" / "arch.json").read_text()


@pytest.mark.parametrize("args, message", [
    (["--ops", "zero,ds_cnv"], "unknown op 'ds_cnv'"),
    (["--target", "rpi9"], "rpi9"),
    (["--data", "imagefolder", "--data-root", "/nonexistent/tree"], "does not exist"),
    (["--data", "cifar10", "--data-root", "/nonexistent/tree"], "nonexistent"),
    (["--max-params", "1000"], "no network in this space meets the budget"),
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--plugin", "/nonexistent/plugin.py"], "does not exist"),
    (["--config", "/nonexistent/exp.yaml"], "cannot read --config"),
])
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    result = run("search", *TINY, "--out", str(tmp_path / "r"), *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "r" / "arch.json").exists()


def test_the_proxy_strategy_refuses_torchrun(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = run("search", "--out", str(tmp_path / "r"), "--no-progress")
    assert result.exit_code != 0 and "runs in one process" in result.output and "--strategy darts" in result.output
    assert not (tmp_path / "r").exists()
