"""The options of every command that reaches a device, measures on it or needs labelled data for accuracy."""

from __future__ import annotations

import click

from edgenas.cli.params import key_values

__all__ = ["data_options", "measure_options", "reach_of", "transport_options"]


def _stack(options):
    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f
    return decorate


#: which device and how to reach it (bench, sweep, compare, lut)
transport_options = _stack([
    click.option("--device", "device", default="local", show_default=True, help="Device profile (edgenas devices list)."),
    click.option("--host", default=None, help="USER@HOST[:PORT] of an SSH device (overrides the profile)."),
    click.option("--key", type=click.Path(dir_okay=False), default=None, help="SSH private key file."),
    click.option("--known-hosts", type=click.Path(dir_okay=False), default=None,
                 help="known_hosts file to verify the host key against. [default: ~/.ssh/known_hosts]"),
    click.option("--python", "python", default=None,
                 help="Python on the device that runs the bench worker. [default: the profile's]"),
])


def reach_of(device: str, host, key, known_hosts, python):
    """The :class:`devices.transport.Reach` of the transport options."""
    from devices.transport import Reach

    return Reach(device, host, key, known_hosts, python)


#: how each artifact is measured (bench, sweep, compare)
measure_options = _stack([
    click.option("--threads", type=click.IntRange(min=1), default=None,
                 help="Inference threads. [default: the device profile's]"),
    click.option("--batch", type=click.IntRange(min=1), default=None, help="Batch size. [default: the artifact's own]"),
    click.option("--warmup", type=click.IntRange(min=0), default=50, show_default=True,
                 help="Untimed runs before timing."),
    click.option("--runs", type=click.IntRange(min=1), default=300, show_default=True, help="Timed runs."),
    click.option("--runtime", default=None,
                 help="ort, litert, openvino, or tensorrt (an NVIDIA GPU; builds an engine from an .onnx there). "
                      "[default: by file extension]"),
    click.option("--inference-precision", type=click.Choice(["f32", "bf16", "f16"]), default=None,
                 help="OpenVINO only: compute precision. [default: the artifact's own (f32 for FP32)]"),
    click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
                 help="Seconds each measurement may take on the device."),
    click.option("--energy-seconds", type=click.FloatRange(min=0), default=2.0, show_default=True,
                 help="Length of the energy phase after the timed runs, where the device has a meter (Jetson "
                      "tegrastats, x86 RAPL); 0: none."),
    click.option("--option", "runtime_options", multiple=True, callback=key_values(require_value=False),
                 metavar="KEY=VALUE",
                 help="Runtime setting, repeatable: ort providers=CUDAExecutionProvider,CPUExecutionProvider "
                 "or a session config entry; openvino compile properties; litert op_resolver=..."),
])

#: labelled images for on-device accuracy (bench, sweep, compare)
data_options = _stack([
    click.option("--data", default=None,
                 help="Labelled data for accuracy: synthetic, cifar10 or imagefolder (held-out images)."),
    click.option("--data-root", type=click.Path(), default=None, help="Where the data set's files are."),
    click.option("--samples", type=click.IntRange(min=1), default=1000, show_default=True,
                 help="Labelled images for accuracy."),
])
