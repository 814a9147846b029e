"""``edgenas deploy`` as a Python function: a run to an app-ready bundle of the fastest artifact measured on the target.

1. The network: a search run's fine-tuning (the one ``finetune`` names, else the
   only or best one, as ``export`` chooses), or a fine-tuning directory itself.
   A run whose classifier was never trained is refused unless ``allow_untrained``.
2. The device is reached and probed: the candidates are every precision of every
   format whose runtime is installed there (or the formats asked for, each of
   which must be). Where TensorRT and polygraphy are, the ONNX exports are also
   measured as TensorRT engines (format ``tensorrt``), built on the device.
3. Every candidate is exported on this host and measured on the device by the
   sweep machinery (:mod:`edgenas.deploy.sweep`): latency percentiles, peak
   memory and accuracy on the labelled hold-out. The records live in
   ``RUN/deploy/measurements/<device>/<fine-tuning>-<weights sha>/`` and are
   reused: a second deploy, or one resumed after a kill, measures only what is missing.
4. The PyTorch network's own accuracy on the same images is the FP32 reference;
   :func:`edgenas.deploy.bundle.choose` picks the fastest artifact within
   ``max_drop`` points of it, and :func:`~edgenas.deploy.bundle.write_bundle`
   writes the bundle (default ``RUN/deploy/<device>``); when none qualifies,
   :class:`~edgenas.deploy.bundle.NoArtifactError` carries the table and no bundle is written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgenas.deploy.bundle import EXAMPLE_NAME
from edgenas.errors import ConfigError

__all__ = ["DEPLOY_PRECISIONS", "Deployment", "deploy_formats", "deploy_source", "run_deploy"]

DEPLOY_PRECISIONS = ("fp32", "fp16", "int8")
RUNTIME_ORDER = ("ort", "litert", "openvino", "tensorrt")


@dataclass(frozen=True)
class Deployment:
    """What a deploy did: the bundle, the choice (every candidate with its verdict) and where the records are."""

    bundle: Path
    choice: object  # edgenas.deploy.bundle.Choice
    device: str
    measurements: Path
    source: Path

    @property
    def predict_command(self) -> str:
        """The command that tries the bundle: on its example image when it has one."""
        example = self.bundle / EXAMPLE_NAME
        return f"python {self.bundle / 'predict.py'} {example if example.is_file() else 'IMAGE'}"

    def to_dict(self) -> dict:
        return {"bundle": str(self.bundle), "device": self.device, "source": str(self.source),
                "measurements": str(self.measurements), **self.choice.to_dict(), "predict": self.predict_command}


def deploy_source(run: Path, finetune: str | None, allow_untrained: bool) -> tuple[Path, str | None]:
    """(the directory whose network ships, a one-line note of which and why).

    Raises:
        ConfigError: not a run or fine-tuning directory, an unknown ``finetune``, or an
            untrained classifier without ``allow_untrained``.
    """
    from edgenas.deploy.source import choose_finetune

    if not run.is_dir():
        raise ConfigError(f"no run directory at {run}")
    if (run / "result.json").is_file():  # a fine-tuning directory (of a searched network or a baseline)
        if finetune is not None:
            raise ConfigError(f"--finetune names a fine-tuning of a search run; {run} is a fine-tuning itself")
        return run, None
    if not (run / "arch.json").is_file():
        raise ConfigError(f"{run} is neither a search run (no arch.json) nor a fine-tuning (no result.json)")
    chosen, note = choose_finetune(run, finetune)
    if chosen is not None:
        return chosen, note.replace("exporting", "deploying", 1)
    if not allow_untrained:
        raise ConfigError(f"{run} has no fine-tuned weights, so its classifier is untrained and its accuracy chance: "
                          f"run edgenas finetune {run} first, or pass --allow-untrained")
    return run, f"deploying {run}'s search weights: its classifier was never trained (--allow-untrained)"


def deploy_formats(probe: dict, formats: Sequence[str] | None, device: str, where: str) -> tuple[str, ...]:
    """The formats to measure: those asked for, else every format whose runtime the device's probe shows.

    Raises:
        ConfigError: a format asked for whose runtime is missing there, or no runtime at all.
    """
    from bench.runtimes.base import format_of_runtime, runtime_of_format
    from bench.errors import UnknownRuntimeError
    from devices.transport import RUNTIME_NEEDS, RUNTIME_PACKAGES, missing_runtime

    installed = [rt for rt in RUNTIME_ORDER if not missing_runtime(probe, rt)]
    if formats:
        for fmt in formats:
            try:
                runtime = runtime_of_format(fmt)
            except UnknownRuntimeError as exc:
                raise ConfigError(str(exc)) from None
            if runtime not in installed:
                needs = " and ".join((RUNTIME_PACKAGES[runtime][0], *RUNTIME_NEEDS.get(runtime, ())))
                raise ConfigError(f"--formats {fmt}: its runtime ({needs}) is not installed "
                                  f"on {device} ({where})")
        return tuple(formats)
    if not installed:
        wanted = ", ".join(RUNTIME_PACKAGES[rt][0] for rt in RUNTIME_ORDER)
        raise ConfigError(f"none of the runtimes edgenas measures ({wanted}) is installed on {device} ({where}); "
                          f"pip install one of them there")
    return tuple(format_of_runtime(rt) for rt in installed)


def _weights_tag(source: Path) -> str:
    from exporters.manifest import sha256_of

    weights = source / "weights.pt"
    return sha256_of(weights)[:10] if weights.is_file() else "random"


def _export_manifest(measurements: Path, sha: str | None):
    """(export directory, manifest) of the sweep's export that holds the artifact of this sha256."""
    from exporters.errors import ExportError
    from exporters.manifest import read_manifest

    for path in sorted((measurements / "exports").glob("*/manifest.json")):
        try:
            manifest = read_manifest(path)
        except ExportError:
            continue
        if any(a.sha256 == sha for a in manifest.artifacts):
            return path.parent, manifest
    raise ConfigError(f"the measured artifact (sha256 {sha}) is no longer in {measurements / 'exports'}; "
                      "remove that folder and deploy again")


def _reference_accuracy(source: Path, measurements: Path, records: list[dict], cache
                        ) -> tuple[float | None, tuple | None]:
    """Top-1 accuracy (%) of the PyTorch network itself on the images the artifacts were measured on, and the
    first of those images with its class name (the bundle's ``example.png``).

    The images are preprocessed as the artifacts' manifest says (the same mean, std and scale),
    so an FP32 artifact that passed its parity check agrees with it to a few hundredths.
    (None, None) when no artifact was measured or there is no labelled hold-out.
    """
    import numpy as np
    import torch

    from edgenas.deploy.source import resolve_source

    measured = next((r for r in records if "error" not in r and r.get("accuracy") is not None), None)
    if measured is None:
        return None, None
    npz = cache.path_for(int(measured["resolution"]))
    _, manifest = _export_manifest(measurements, measured.get("artifact_sha256"))
    norm = manifest.artifacts[0].normalisation
    model = resolve_source(str(source)).model.eval()
    with np.load(npz) as archive:
        images, labels = archive["images"], archive["labels"].astype(np.int64)
        classes = [str(c) for c in archive["classes"]] if "classes" in archive else []
    example = (images[0], classes[labels[0]] if labels[0] < len(classes) else str(labels[0]))
    mean = torch.tensor(norm["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(norm["std"], dtype=torch.float32).view(1, 3, 1, 1)
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(images), 256):
            x = torch.from_numpy(images[start:start + 256]).permute(0, 3, 1, 2).float() * float(norm["scale"])
            logits = model((x - mean) / std)
            correct += int((logits.argmax(1).numpy() == labels[start:start + 256]).sum())
    return round(100.0 * correct / len(images), 3), example


def run_deploy(run: str | Path, reach=None, formats: Sequence[str] | None = None,
               precisions: Sequence[str] = DEPLOY_PRECISIONS, max_drop: float = 1.0, out: str | Path | None = None,
               finetune: str | None = None, allow_untrained: bool = False, threads: int | None = None,
               bench_options=None, data: str | None = None, data_root: str | None = None, samples: int = 1000,
               calib: int = 300, remeasure: bool = False, progress: bool = True,
               note: Callable[[str], None] = lambda m: None,
               warn: Callable[[str], None] = lambda m: None) -> Deployment:
    """Measure every artifact of ``run``'s network on the device ``reach`` names and bundle the fastest good one.

    Args:
        reach: :class:`devices.transport.Reach` (device profile, host, key, known_hosts, python); default local.
        formats: formats to measure (default: every one the device has a runtime for); precisions likewise.
        max_drop: accuracy points an artifact may lose against the FP32 network (PyTorch's, on the same
            images) and still ship.
        out: the bundle folder (default ``RUN/deploy/<device>``); an earlier bundle there is replaced.
        threads: inference threads (default: the device profile's).
        data, data_root: labelled data for accuracy (default: what the network was fine-tuned on).
        samples: labelled hold-out images for accuracy.
        remeasure: measure every candidate again (the exports are kept).

    Raises:
        ConfigError: bad options, an untrained run, a runtime missing on the device (before anything is measured).
        NoArtifactError: no artifact meets ``max_drop`` (its ``choice`` holds the table; no bundle is written).
        DevicesError: the device cannot be reached.
    """
    from bench.files import read_jsonl
    from devices.transport import Reach
    from edgenas.deploy.bench import BenchOptions, DataCache
    from edgenas.deploy.bundle import CardFacts, NoArtifactError, check_bundle_target, choose, write_bundle
    from edgenas.deploy.source import run_data
    from edgenas.deploy.sweep import SweepPlan, sweep_transports
    from edgenas.outputs import check_writable, job_output
    from edgenas.progress import ProgressBar

    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not math.isfinite(max_drop) \
            or max_drop < 0:
        raise ConfigError(f"--max-drop takes accuracy points >= 0, got {max_drop!r}")
    run = Path(run)
    source, message = deploy_source(run, finetune, allow_untrained)
    precisions = tuple(precisions or DEPLOY_PRECISIONS)
    SweepPlan(models=(str(source),), precisions=precisions)  # precisions checked before the device is reached
    trained = run_data(source)
    data_name = data or trained.name
    root = data_root if data_root is not None else (trained.root if data_name == trained.name else None)
    level = trained.level if data_name == trained.name else 1
    reach = reach or Reach()
    profile, transport = reach.open()
    try:
        probe = transport.probe()
        fmts = deploy_formats(probe, formats, profile.name, transport.address)
        plan = SweepPlan(models=(str(source),), formats=fmts, precisions=precisions,
                         threads=(threads or profile.threads,), calib=calib)
        bundle = Path(out) if out else run / "deploy" / profile.name
        check_bundle_target(bundle)
        check_writable(bundle.parent)
        measurements = run / "deploy" / "measurements" / profile.name / f"{source.name}-{_weights_tag(source)}"
        if message:
            note(message)
        note(f"measuring {len(fmts) * len(precisions)} candidates ({', '.join(fmts)} x {', '.join(precisions)}) "
             f"on {profile.name} ({transport.address}), {plan.threads[0]} thread(s); records in {measurements}")
        cache = DataCache(data_name, root, samples, level=level)
        options = bench_options or BenchOptions()
        planned = {(f, p) for f in fmts for p in precisions}

        def ours(r: dict) -> bool:
            p = r.get("plan") or {}
            return (p.get("format"), p.get("precision")) in planned and p.get("threads") == plan.threads[0]

        try:
            with job_output(measurements, "deploy", durable=lambda: (measurements / "records.jsonl").exists()), \
                    ProgressBar(f"deploy on {profile.name}", enabled=progress, only_on_terminal=True,
                                transient=True) as bar:
                if remeasure:
                    (measurements / "records.jsonl").unlink(missing_ok=True)
                sweep_transports(plan, measurements, [(profile, transport.run_job)], options, cache,
                                 progress=bar.report, warn=warn)
                records = [r for r in read_jsonl(measurements / "records.jsonl") if ours(r)]
                reference, example = _reference_accuracy(source, measurements, records, cache)
        finally:
            cache.close()
    finally:
        transport.close()
    choice = choose(records, float(max_drop), reference)
    if choice.winner is None:
        raise NoArtifactError(f"{choice.reason}; no bundle written (the table above; records in {measurements})",
                              choice)
    # the winner's own export: a later deploy that asked for more formats may have re-exported into a new one
    export_dir, manifest = _export_manifest(measurements, choice.winner.record.get("artifact_sha256"))
    meta = choice.winner.record.get("meta") or {}
    facts = CardFacts(name=run.name if source != run else source.name, device=profile.name,
                      device_address=transport.address, run=str(run), params=int(meta.get("params") or 0),
                      macs=int(meta.get("macs") or 0), resolution=int(choice.winner.record.get("resolution") or 0))
    written = write_bundle(bundle, export_dir, manifest, choice, facts,
                           {"device": profile.name, "address": transport.address, "run": str(run),
                            "source": str(source), "data": data_name, "measurements": str(measurements)},
                           example=example)
    return Deployment(written, choice, profile.name, measurements, source)
