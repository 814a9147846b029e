"""``edgenas export`` as a Python function: a run, an arch.json or a baseline to verified artifacts and a manifest.

Errors of the exporters (``ExportError``) that mean some artifacts failed become
:class:`~edgenas.errors.ExportFailedError`, naming the manifest that lists them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edgenas.errors import ConfigError, ExportFailedError
from edgenas.outputs import job_output

__all__ = ["run_export"]


def run_export(target: str, formats: str, precisions: str, out: str | None = None, calib: int = 300,
               dynamic_batch: bool = False, resolution: int | None = None, num_classes: int | None = None,
               width: float | None = None, weights: str | None = None, data: str | None = None,
               data_root: str | None = None, seed: int | None = None, parity_samples: int = 1000,
               mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
               batch: int = 1, warn=lambda message: None, finetune: str | None = None,
               note=lambda message: None):
    """Export ``target`` (run directory, arch.json or baseline name): the Python form of ``edgenas export``.

    ``mean``/``std`` override the normalisation (in [0, 1] pixel units) the
    network was trained with; by default a run's arch.json gives it, else the data's usual one.
    ``batch`` is the static batch size of the input (the dynamic batch's example size with ``dynamic_batch``).
    A search run exports its fine-tuning ``finetune`` (else the only or best one; ``note`` says which), or
    warns that its classifier was never trained.

    Returns:
        ``(manifest, out_dir)``; the manifest is ``exporters.manifest.Manifest``.

    Raises:
        ConfigError: unknown format or precision, bad options (before anything is written).
        ArchSpecError, CheckpointError, UnknownNameError, DataError: the model or data cannot be loaded.
        ExportFailedError: some artifacts failed (the others are written and listed in the manifest).
    """
    from exporters.api import validate_request
    from exporters.errors import ExportError, UnsupportedError

    try:
        fmts, precs = validate_request(formats, precisions)
    except UnsupportedError as exc:
        raise ConfigError(str(exc)) from None
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    if "int8" in precs and calib < 1:
        raise ConfigError("--precision int8 needs calibration images: --calib must be at least 1")

    import torch

    from edgenas.deploy.source import DataOptions, load_data, resolve_source
    from exporters.api import export
    from exporters.manifest import Source
    from exporters.spec import InputSpec

    if (mean is None) != (std is None):
        raise ConfigError("give --mean and --std together")
    if mean is not None and (len(mean) != 3 or len(std) != 3 or min(std) <= 0):
        raise ConfigError(f"--mean and --std need 3 values each, std positive; got {mean} and {std}")
    source = resolve_source(target, weights=weights, resolution=resolution, num_classes=num_classes, width=width,
                            finetune=finetune)
    if mean is not None:
        source = replace(source, mean=tuple(mean), std=tuple(std))
    for message in source.warnings:
        warn(message)
    for message in source.notes:
        note(message)
    out_dir = Path(out) if out else source.default_out
    with job_output(out_dir, "export", durable=lambda: (out_dir / "manifest.json").exists()):
        defaults = source.data
        options = DataOptions(
            name=data or defaults.name,
            root=data_root if data_root is not None else (defaults.root if data in (None, defaults.name) else None),
            seed=seed if seed is not None else defaults.seed,
            level=defaults.level if (data or defaults.name) == defaults.name else 1,
        )
        torch.manual_seed(options.seed)
        arrays = load_data(source, options, calib if "int8" in precs else 0, parity_samples)
        if arrays.parity_labels is None:
            warn(f"the {options.name} data has {len(arrays.classes)} classes, the model {source.num_classes}: "
                 "parity without accuracy")
        labels = source.labels or (arrays.classes if len(arrays.classes) == source.num_classes else ())
        spec = InputSpec(shape=(batch, 3, source.resolution, source.resolution), mean=arrays.mean, std=arrays.std,
                         labels=tuple(labels), dynamic_batch=dynamic_batch)
        try:
            manifest = export(source.model, spec, fmts, precs, out_dir, calib=arrays.calib,
                              parity_inputs=arrays.parity, parity_labels=arrays.parity_labels,
                              source=Source(source.kind, source.name, source.arch_sha256, source.weights,
                                            source.fine_tuned))
        except UnsupportedError as exc:
            raise ConfigError(str(exc)) from None
        except ExportError as exc:
            raise ExportFailedError(f"{exc} (manifest: {out_dir / 'manifest.json'})") from None
    return manifest, out_dir
