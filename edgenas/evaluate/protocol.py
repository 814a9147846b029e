"""``edgenas evaluate``: the searched network and the baselines under one protocol, resumable.

A plan is a grid: models (the run's searched network with each of its
initialisations, and the baselines) x label budgets (fractions of the labels,
or numbers of labelled images) x seeds. Every cell is one fine-tuning with the
same protocol (:class:`~edgenas.train.config.FinetuneConfig`: data, epochs,
augmentation, optimiser, schedule), in ``RUN/eval/<protocol>/jobs/<job>/``;
its result is one line of ``RUN/eval/results.jsonl``. Few-shot episodes run on
the features of networks fine-tuned on the *base* classes, over the *novel*
classes no label of which was seen (``RUN/eval/fewshot.jsonl``); the searched
network is also evaluated on its self-supervised features alone (no labels at
all). Running the same command again skips finished cells and resumes the
interrupted one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgenas.distributed import is_main_process
from edgenas.errors import ConfigError
from edgenas.rundir import append_jsonl, read_jsonl, rewrite_jsonl
from edgenas.train.config import INITS, FinetuneConfig

__all__ = ["DEFAULT_BASELINES", "EvalPlan", "features_of", "protocol_id", "run_evaluation"]

#: the baselines of the product brief, at their published widths
DEFAULT_BASELINES = ("mobilenet_v2_035", "mobilenet_v3_small", "efficientnet_b0")
SEARCHED = "searched"


@dataclass(frozen=True)
class EvalPlan:
    """The grid of an evaluation.

    Attributes:
        models: ``searched`` (the run's network) and baseline names.
        inits: initialisations of the searched network (the ablation: preserved, random, pretrained).
        fractions, samples: label budgets; each is a column of the data-efficiency table.
        seeds: every cell is repeated per seed (label subset and initialisation change with it).
        few_shot: N-way K-shot settings (``5w1s``); empty to skip the episodes.
        novel_classes: the few-shot classes (default: the upper half of the class indices);
            the backbones are fine-tuned on the others with ``fewshot_fraction`` of their labels.
        episodes, queries, fewshot_method: the episodes (600, 15 queries per class, prototypical).
    """

    models: tuple[str, ...] = (SEARCHED, *DEFAULT_BASELINES)
    inits: tuple[str, ...] = ("preserved",)
    fractions: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2)
    samples: tuple[int, ...] = ()
    seeds: tuple[int, ...] = (0,)
    few_shot: tuple[str, ...] = ("5w1s", "5w5s")
    novel_classes: tuple[int, ...] | None = None
    fewshot_fraction: float = 0.1
    episodes: int = 600
    queries: int = 15
    fewshot_method: str = "prototypical"

    def __post_init__(self) -> None:
        from edgenas.evaluate.fewshot import METHODS, parse_shots

        if not self.models or len(set(self.models)) != len(self.models):
            raise ConfigError(f"--models must list distinct names, got {list(self.models)}")
        bad = [i for i in self.inits if i not in INITS]
        if bad or not self.inits:
            raise ConfigError(f"unknown --inits {bad or '(none)'} (known: {', '.join(INITS)})")
        for f in self.fractions:
            if not 0 < f <= 1:
                raise ConfigError(f"--fractions must lie in (0, 1], got {f}")
        if any(not isinstance(n, int) or n < 1 for n in self.samples):
            raise ConfigError(f"--samples must be positive integers, got {list(self.samples)}")
        if not self.fractions and not self.samples:
            raise ConfigError("give --fractions or --samples (or both)")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise ConfigError(f"--seeds must be non-negative, got {list(self.seeds)}")
        for setting in self.few_shot:
            parse_shots(setting)
        if self.fewshot_method not in METHODS:
            raise ConfigError(f"unknown --fewshot-method {self.fewshot_method!r} (known: {', '.join(METHODS)})")
        if not 0 < self.fewshot_fraction <= 1:
            raise ConfigError(f"--fewshot-fraction must lie in (0, 1], got {self.fewshot_fraction}")
        if self.episodes < 1 or self.queries < 1:
            raise ConfigError("--episodes and --queries must be >= 1")


#: the options that vary from one fine-tuning of a protocol to the next
PER_CELL = ("model", "init", "fraction", "samples", "seed", "class_subset")


def shared_options(options: dict[str, Any], ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """What a protocol's fine-tunings share of their (recorded) ``options``, less the ``ignore`` ones."""
    return {k: v for k, v in options.items() if k not in PER_CELL and k not in ignore}


def protocol_id(protocol: FinetuneConfig) -> str:
    """A short hash of everything the protocol fixes (not the model, labels, seed or output)."""
    return hashlib.sha256(json.dumps(shared_options(protocol.identity()), sort_keys=True).encode()).hexdigest()[:8]


def _fixed_options(options: dict[str, Any]) -> dict[str, Any]:
    """A recorded protocol's options that bear on a random start (everything but ``reset_norms``)."""
    return shared_options(options, ("reset_norms",))


def reuse_random_starts(path: Path, pid: str, options: dict[str, Any], wanted: set[tuple],
                        match: dict[str, Any] | None = None) -> int:
    """Record under ``pid`` the random-start cells another protocol measured; returns how many.

    ``wanted``: the cells asked for, as ``(job, n_way, k_shot, method)`` (None for a fine-tuning record);
    ``match``: other fields a record must hold (the few-shot episodes' settings).

    ``reset_norms`` only touches weights loaded from training, so a random start (and every baseline)
    is the same fine-tuning under two protocols that differ in it alone. Each such record is copied
    with ``protocol`` set to ``pid`` and ``reused_from`` naming its own; its job stays where it ran.
    """
    records = read_jsonl(path)
    key = _fixed_options(options)
    own = {_record_key(r) for r in records if r.get("protocol") == pid}
    reused = []
    for r in records:
        if (r.get("protocol") != pid and "protocol_options" in r and r.get("init") == "random"
                and _record_key(r) in wanted and _record_key(r) not in own
                and all(r.get(k) == v for k, v in (match or {}).items())
                and _fixed_options(r["protocol_options"]) == key):
            reused.append({**r, "protocol": pid, "protocol_options": options, "reused_from": r["protocol"]})
            own.add(_record_key(r))
    if reused and is_main_process():
        for r in reused:
            append_jsonl(path, r)
    return len(reused)


def _record_key(r: dict[str, Any]) -> tuple:
    return r["job"], r.get("n_way"), r.get("k_shot"), r.get("method")


def _slug(model: str, init: str, fraction: float | None, samples: int | None, seed: int) -> str:
    labels = f"f{fraction:g}" if fraction is not None else f"n{samples}"
    return f"{model}-{init}-{labels}-s{seed}"


def features_of(model: torch.nn.Module, images: torch.Tensor, mean, std, device) -> torch.Tensor:
    """Penultimate features (the classifier's input) of uint8 ``images``, in eval mode."""
    from edgenas.data.views import normalize_batch
    from edgenas.train.candidates import without_classifier

    net = without_classifier(model).to(device).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), 256):
            x = normalize_batch(images[start:start + 256], mean, std).to(device, memory_format=torch.channels_last)
            out.append(net(x).float().cpu())
    return torch.cat(out)


def _trained(job: Path, source: str, num_classes: int, resolution: int) -> torch.nn.Module:
    """The network a finished job trained (its ``weights.pt``)."""
    from edgenas.models import build, load_weights
    from edgenas.space.registry import load_spec
    from edgenas.train.candidates import load_candidate

    if (job / "arch.json").is_file():
        net = build(load_spec(job / "arch.json"))
    else:
        net = load_candidate(source, "random", num_classes, resolution).model
    net.load_state_dict(load_weights(job / "weights.pt"))
    return net


def _drop_stale(run: Path, path: Path, pid: str, console) -> list[dict[str, Any]]:
    """The records of protocol ``pid`` in ``path`` that were measured on the run's current weights.

    A preserved (or two-stage) record whose start weights the run no longer holds (the search was
    refined since, ``--refine-epochs``) is stale: it is dropped from ``path`` and its job directory
    moved aside (``<job>.stale-<sha8>``), so that it is measured again.
    """
    from edgenas.train.candidates import init_sha256, is_stale

    current = {init: init_sha256(str(run), init) for init in ("preserved", "pretrained")}  # one hash per start
    records = read_jsonl(path)
    stale = [r for r in records if r.get("protocol") == pid and r.get("model") == SEARCHED
             and is_stale(r.get("init_sha256"), current.get(r.get("init")))]
    if stale and is_main_process():
        for r in stale:
            job = run / "eval" / pid / "jobs" / r["job"]
            if job.is_dir():
                job.rename(job.with_name(f"{job.name}.stale-{r['init_sha256'][:8]}"))
            console.print(f"[yellow]{r['job']} was measured on weights the run no longer holds: again[/]")
        rewrite_jsonl(path, [r for r in records if r not in stale])
    return [r for r in records if r.get("protocol") == pid and r not in stale]


def run_evaluation(run: str | Path, plan: EvalPlan, protocol: FinetuneConfig, console=None) -> dict[str, list]:
    """Fine-tune every cell of ``plan`` not yet recorded, then run the few-shot episodes.

    Args:
        run: a search run directory (its ``arch.json`` and ``weights.pt``).
        protocol: the options every fine-tuning shares; its model, init, labels,
            seed and output are set per cell.

    Returns:
        ``{"results": [...], "fewshot": [...]}``: the records of this protocol.

    Raises:
        ConfigError, DataError, CheckpointError, UnknownNameError: as ``edgenas finetune``,
            before any training where they can be told up front.
    """
    from edgenas.outputs import job_output

    root = Path(run) / "eval"

    def durable() -> bool:
        return (root / "results.jsonl").exists() or any(root.glob("*/jobs/*/finetune.ckpt"))

    with job_output(root, "evaluation", durable=durable):
        return _run_evaluation(run, plan, protocol, console)


def _run_evaluation(run: str | Path, plan: EvalPlan, protocol: FinetuneConfig, console=None) -> dict[str, list]:
    from rich.console import Console

    from edgenas.models.baselines import resolve_baseline
    from edgenas.space.registry import load_spec
    from edgenas.train.data import load_protocol_data
    from edgenas.train.finetune import run_finetune

    console = console or Console(stderr=True)
    run = Path(run)
    spec = load_spec(run)  # a one-line error without arch.json
    if "preserved" in plan.inits and SEARCHED in plan.models and not (run / "weights.pt").is_file():
        raise ConfigError(f"{run} has no weights.pt: --inits preserved needs a finished search run")
    for m in plan.models:
        if m != SEARCHED:
            resolve_baseline(m)
    resolution = protocol.resolution or spec.resolution
    protocol = protocol.replace(resolution=resolution)
    pid = protocol_id(protocol)
    root = run / "eval"
    jobs = root / pid / "jobs"
    data = load_protocol_data(protocol.data, protocol.data_root, resolution, protocol.level, protocol.synthetic_size)
    num_classes = len(data.pool.classes)
    for n in plan.samples:
        if n > len(data.pool):
            raise ConfigError(f"--samples {n} is more than the {len(data.pool)} training images")
    if plan.few_shot:
        _few_shot_split(plan, data, num_classes)  # bad settings fail before hours of fine-tuning

    cells = []
    for model in plan.models:
        for init in (plan.inits if model == SEARCHED else ("random",)):
            budgets = [(f, None) for f in plan.fractions] + [(None, n) for n in plan.samples]
            for fraction, samples in budgets:
                for seed in plan.seeds:
                    cells.append((model, init, fraction, samples, seed))
    reused = reuse_random_starts(root / "results.jsonl", pid, protocol.identity(),
                                 {(_slug(*c), None, None, None) for c in cells})
    if reused:
        console.print(f"{reused} random-start fine-tunings reused from protocols that differ only in --reset-norms")
    done = {r["job"] for r in _drop_stale(run, root / "results.jsonl", pid, console)}
    todo = [c for c in cells if _slug(*c) not in done]
    console.print(f"evaluate {run}: {len(cells)} fine-tunings ({len(cells) - len(todo)} done), protocol {pid}")
    for i, (model, init, fraction, samples, seed) in enumerate(todo, 1):
        slug = _slug(model, init, fraction, samples, seed)
        console.print(f"[{i}/{len(todo)}] {slug}")
        cfg = protocol.replace(model=str(run) if model == SEARCHED else model, init=init, fraction=fraction,
                               samples=samples, seed=seed, out=str(jobs / slug))
        result = run_finetune(cfg, console, data).result
        if is_main_process():
            append_jsonl(root / "results.jsonl", {"job": slug, "protocol": pid,
                                                  "protocol_options": protocol.identity(), **result,
                                                  "model": model if model != SEARCHED else SEARCHED})

    fewshot = _few_shot(run, plan, protocol, pid, data, num_classes, resolution, console) if plan.few_shot else []
    results = [r for r in read_jsonl(root / "results.jsonl") if r.get("protocol") == pid]
    return {"results": results, "fewshot": fewshot}


def _few_shot_split(plan: EvalPlan, data, num_classes: int):
    """(novel classes, base classes, [(n_way, k_shot)]) of the plan, checked against the hold-out.

    Raises:
        ConfigError: unknown classes, too few base or novel classes, or more shots (plus queries) than a
            novel class has hold-out images.
    """
    from edgenas.evaluate.fewshot import parse_shots

    novel = plan.novel_classes if plan.novel_classes is not None else tuple(range(num_classes // 2, num_classes))
    bad = [c for c in novel if not 0 <= c < num_classes]
    if bad:
        raise ConfigError(f"novel class {bad[0]} does not exist ({num_classes} classes)")
    base = tuple(c for c in range(num_classes) if c not in novel)
    if len(base) < 2:
        raise ConfigError("the few-shot split leaves fewer than 2 base classes to fine-tune on")
    settings = [parse_shots(s) for s in plan.few_shot]
    counts = torch.bincount(data.holdout.labels, minlength=num_classes)
    smallest = min(int(counts[c]) for c in novel)
    for n_way, k_shot in settings:
        if n_way > len(novel):
            raise ConfigError(f"{n_way}-way episodes need {n_way} novel classes; there are {len(novel)}")
        if k_shot + plan.queries > smallest:
            raise ConfigError(f"{k_shot}-shot episodes with {plan.queries} queries need {k_shot + plan.queries} "
                              f"images per class; a novel class has {smallest} hold-out images")
    return novel, base, settings


def _few_shot(run: Path, plan: EvalPlan, protocol: FinetuneConfig, pid: str, data, num_classes: int,
              resolution: int, console) -> list[dict[str, Any]]:
    from edgenas.evaluate.fewshot import run_episodes
    from edgenas.accelerator import resolve_device
    from edgenas.train.candidates import load_candidate
    from edgenas.train.data import only_classes
    from edgenas.train.finetune import run_finetune

    novel, base, settings = _few_shot_split(plan, data, num_classes)
    holdout = only_classes(data.holdout, novel)
    path = run / "eval" / "fewshot.jsonl"
    device = resolve_device(protocol.device)
    backbones: list[tuple[str, str, str, int, bool]] = []  # (job, model, init, seed, fine-tuned on base classes)
    for seed in plan.seeds:
        if SEARCHED in plan.models and "preserved" in plan.inits:
            backbones.append((f"{SEARCHED}-preserved-ssl-s{seed}", SEARCHED, "preserved", seed, False))
        for model in plan.models:
            for init in (plan.inits if model == SEARCHED else ("random",)):
                job = f"{_slug(model, init, plan.fewshot_fraction, None, seed)}-base"
                backbones.append((job, model, init, seed, True))
    reuse_random_starts(path, pid, protocol.identity(),
                        {(b[0], n, k, plan.fewshot_method) for b in backbones for n, k in settings},
                        {"n_query": plan.queries, "episodes": plan.episodes, "method": plan.fewshot_method,
                         "novel_classes": list(novel)})
    records = _drop_stale(run, path, pid, console)
    done = {(r["job"], r["n_way"], r["k_shot"], r["method"]) for r in records}
    for job, model, init, seed, tuned in backbones:
        missing = [(n, k) for n, k in settings if (job, n, k, plan.fewshot_method) not in done]
        if not missing:
            continue
        source = str(run) if model == SEARCHED else model
        backbone_acc, init_sha256 = None, None
        if not tuned:  # the search's own features: no label used at all
            candidate = load_candidate(source, "preserved", len(base), resolution, seed)
            net, init_sha256 = candidate.model, candidate.weights_sha256
            labels_used = "none (self-supervised only)"
        else:
            cfg = protocol.replace(model=source, init=init, fraction=plan.fewshot_fraction, samples=None, seed=seed,
                                   class_subset=base, out=str(run / "eval" / pid / "jobs" / job))
            console.print(f"few-shot backbone {job}: fine-tuned on base classes {list(base)}")
            tuned_result = run_finetune(cfg, console, data).result
            backbone_acc, init_sha256 = tuned_result["final_acc"], tuned_result.get("init_sha256")
            net = _trained(Path(cfg.out), source, len(base), resolution)
            labels_used = f"{100 * plan.fewshot_fraction:g}% of base classes {list(base)}"
        features = features_of(net, holdout.images, data.mean, data.std, device)
        for n_way, k_shot in missing:
            record = run_episodes(features, holdout.labels, n_way, k_shot, plan.queries, plan.episodes,
                                  seed, plan.fewshot_method)
            record.update(job=job, protocol=pid, protocol_options=protocol.identity(), model=model, init=init,
                          labels_used=labels_used,
                          base_acc=backbone_acc, init_sha256=init_sha256,
                          novel_classes=list(novel), feature_dim=int(features.shape[1]))
            if is_main_process():
                append_jsonl(path, record)
            console.print(f"  {n_way}-way {k_shot}-shot: {record['acc']:.2f} +/- {record['ci95']:.2f}%")
    return [r for r in read_jsonl(path) if r.get("protocol") == pid]
