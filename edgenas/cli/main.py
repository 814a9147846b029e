"""Root ``edgenas`` group.

Subcommands live in their own modules and are imported only when invoked
(click's lazy-group pattern), so ``edgenas --help`` stays fast and does not
import torch. Our own errors become one-line messages and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import click

from edgenas.errors import EdgenasError

# name -> (module, attribute, short help shown by ``edgenas --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "search": ("edgenas.cli.search", "search", "Self-supervised, budget-constrained architecture search."),
    "profile": ("edgenas.cli.profile", "profile", "Parameters and MACs of a baseline, run directory or arch.json."),
    "devices": ("edgenas.cli.devices", "devices", "List and show device profiles."),
    "export": ("edgenas.cli.export", "export", "Freeze, quantize and export to ONNX, TFLite and OpenVINO, each artifact verified."),
    "deploy": ("edgenas.cli.deploy", "deploy",
               "Measure every format x precision on the target and bundle the fastest good one for an app."),
    "bench": ("edgenas.cli.bench", "bench", "Measure latency, memory and accuracy of exported models on a device."),
    "sweep": ("edgenas.cli.sweep", "sweep", "Resumable latency sweep: models x formats x precisions x threads x sizes."),
    "compare": ("edgenas.cli.sweep", "compare", "The searched network next to MobileNet/EfficientNet on one device."),
    "lut": ("edgenas.cli.lut", "lut", "Per-device latency tables of the search space and the latency predictor."),
    "space": ("edgenas.cli.lut", "space", "The search space: random architectures."),
    "finetune": ("edgenas.cli.finetune", "finetune", "Fine-tune a searched network or a baseline on few labels."),
    "evaluate": ("edgenas.cli.finetune", "evaluate",
                 "Data efficiency, few-shot and baselines under one protocol (resumable grid)."),
    "report": ("edgenas.cli.report", "report", "A run's tables (md, latex, csv, json) and plots."),
    "ablate": ("edgenas.cli.ablate", "ablate", "The evolution method with each component switched off, one table."),
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgenasError as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            click.echo(f"error: {message}", err=True)
            sys.exit(2)
        except OSError as exc:  # a read-only or full disk, a permission, a vanished file: the path and the reason
            where = exc.filename if exc.filename is not None else ""
            reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
            click.echo(f"error: {where}: {reason}" if where else f"error: {reason}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; run the same command again to resume", err=True)
            sys.exit(130)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="edgenas")
def cli() -> None:
    """edgenas: find, train, compress and measure tiny networks for edge devices.

    \b
    Typical flow:
      edgenas search --target rpi4 --out runs/demo
      edgenas profile runs/demo
    """


def main() -> None:
    cli(prog_name="edgenas")


if __name__ == "__main__":
    main()
