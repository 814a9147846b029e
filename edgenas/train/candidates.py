"""The networks a fine-tuning starts from: a searched network (three initialisations) or a baseline.

A *candidate* is the deployable network (no SSL projector) with a fresh
classifier for the fine-tuning data's classes, plus what tables need about it
(params, MACs). Every candidate exposes the same two hooks the protocol uses:
its classifier (the last ``nn.Linear``, trained alone by a linear probe) and
its features (the input of that layer, used by the few-shot episodes).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgenas.errors import CheckpointError, ConfigError
from edgenas.models import load_weights
from edgenas.space.registry import load_spec
from edgenas.space.spec import ArchSpec

__all__ = ["Candidate", "RANDOM_START_SPACES", "classifier_of", "default_init", "init_sha256", "init_weights",
           "is_searched", "is_stale", "load_candidate", "without_classifier"]


@dataclass
class Candidate:
    """A network ready to fine-tune.

    Attributes:
        name: ``searched`` or the baseline's name as given.
        kind: ``searched`` or ``baseline``.
        init: where the weights come from (``preserved``, ``random``, ``pretrained``).
        model: ``[B, 3, R, R] -> [B, classes]`` logits.
        spec: the ArchSpec of a searched network (its classifier sized to the data), else None.
        params, macs: of the deployable network at the fine-tuning resolution.
        weights_sha256: of the weights file a ``preserved`` or ``pretrained`` start loaded (None: random).
    """

    name: str
    kind: str
    init: str
    model: nn.Module
    spec: ArchSpec | None
    params: int
    macs: int
    weights_sha256: str | None = None


def is_searched(model: str) -> bool:
    """Whether ``model`` names a searched network, by :func:`edgenas.models.resolve_model_name`'s rule.

    Raises:
        UnknownNameError: neither a baseline nor a path; ConfigError: both.
    """
    from edgenas.models import resolve_model_name

    return resolve_model_name(model).kind == "searched"


#: spaces whose networks fine-tune better from a random start than from the search's weights (measured:
#: docs/performance.md, "The proxy search on the stage space"): their default ``--init`` is ``random``
RANDOM_START_SPACES = ("stages-cnn",)


def default_init(model: str) -> str:
    """The ``--init`` a fine-tuning of ``model`` takes when none is given: ``random`` for a baseline (its only
    start) and for a network of :data:`RANDOM_START_SPACES`, else ``preserved`` (the search's weights).

    Raises:
        UnknownNameError: neither a baseline nor a path; ArchSpecError: a run without a readable arch.json.
    """
    if not is_searched(model):
        return "random"
    from edgenas.space.registry import load_spec

    return "random" if load_spec(model).space in RANDOM_START_SPACES else "preserved"


def classifier_of(model: nn.Module) -> tuple[str, nn.Linear]:
    """(name, module) of the last ``nn.Linear``: the classifier of every network here.

    Raises:
        ConfigError: the network has no linear layer.
    """
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear classifier")
    return linears[-1]


def without_classifier(model: nn.Module) -> nn.Module:
    """The network with its classifier replaced by identity: ``[B, 3, R, R] -> [B, F]`` features (a copy)."""
    net = copy.deepcopy(model)
    name, _ = classifier_of(net)
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, child, nn.Identity())
    return net


def init_weights(model: str, init: str) -> Path | None:
    """The weights file a searched ``model`` starts from under ``init`` (None: a random start or a baseline)."""
    if init == "random" or not is_searched(model):
        return None
    from edgenas.train.pretrain import pretrained_weights

    path = Path(model)
    run = path if path.is_dir() else path.parent
    return run / "weights.pt" if init == "preserved" else pretrained_weights(run)


def init_sha256(model: str, init: str) -> str | None:
    """The sha256 of the weights ``model`` would start from under ``init`` now (None: random, a baseline,
    or no such file yet), to compare with a fine-tuning's recorded ``init_sha256``."""
    from exporters.manifest import sha256_of

    path = init_weights(model, init)
    return sha256_of(path) if path is not None and path.is_file() else None


def is_stale(recorded: str | None, current: str | None) -> bool:
    """Whether a record that started from weights hashed ``recorded`` was made on other weights than
    ``current`` (records from before the hash was kept, and starts with no weights now, count as current)."""
    return recorded is not None and current is not None and recorded != current


def _searched(model: str, init: str, num_classes: int, resolution: int, seed: int,
              pretrained: Path | None, reset_norms: bool) -> tuple[nn.Module, ArchSpec, str | None]:
    from edgenas.models import build

    path = Path(model)
    spec = load_spec(path)
    if resolution != spec.resolution:
        raise ConfigError(f"{model} was searched at {spec.resolution} px; fine-tune it at that resolution, "
                          f"not {resolution}")
    # the fine-tuned network: the data's classes, no SSL projector
    tuned = dataclasses.replace(spec, num_classes=num_classes, projector=())
    torch.manual_seed(seed)
    net = build(tuned)
    if init == "random":
        return net, tuned, None
    if init == "preserved":
        weights = init_weights(model, init)
        if not weights.is_file():
            raise CheckpointError(f"{model} has no weights.pt: --init preserved needs the weights the search "
                                  "kept (a finished search run directory); use --init random for a bare arch.json")
    else:
        if pretrained is None:
            raise ConfigError("--init pretrained needs the SSL pre-training of the run (edgenas.train.pretrain)")
        weights = pretrained
    state = load_weights(weights)
    own = net.state_dict()
    kept = {k: v for k, v in state.items() if k in own and not k.startswith("classifier.")}
    wrong = [k for k, v in kept.items() if v.shape != own[k].shape]
    missing = [k for k in own if not k.startswith("classifier.") and k not in kept]
    if wrong or missing:
        raise CheckpointError(f"{weights} does not fit {model}'s arch.json "
                              f"({'shape of ' + wrong[0] if wrong else 'no ' + missing[0]})")
    fresh = copy.deepcopy(net) if reset_norms else None
    net.load_state_dict(kept, strict=False)  # the classifier stays new: the data's classes
    if fresh is not None:
        from edgenas.train.norms import reset_weight_norms

        reset_weight_norms(net, fresh)
    from exporters.manifest import sha256_of

    return net, tuned, sha256_of(weights)


def load_candidate(model: str, init: str, num_classes: int, resolution: int, seed: int = 0,
                   pretrained: Path | None = None, reset_norms: bool = False) -> Candidate:
    """The network to fine-tune, with a freshly initialised classifier of ``num_classes``.

    Args:
        model: run directory / arch.json (searched) or baseline name.
        init: ``preserved`` (the search's weights), ``random``, or ``pretrained``
            (the weights file ``pretrained``); baselines take ``random`` only.
        seed: seeds the initialisation of everything new.
        reset_norms: rescale the loaded weights' scale-invariant convolutions to the
            norms of a fresh initialisation, keeping the function
            (:func:`edgenas.train.norms.reset_weight_norms`).

    Raises:
        ConfigError: an init a baseline cannot take, a resolution the run was not searched at.
        CheckpointError: missing, corrupt or mismatched weights.
        UnknownNameError: an unknown baseline (close names listed).
        ArchSpecError: a malformed arch.json.
    """
    from edgenas.profiler import count_macs, count_params

    if is_searched(model):
        net, spec, weights_sha256 = _searched(model, init, num_classes, resolution, seed, pretrained, reset_norms)
        name, kind = "searched", "searched"
    else:
        from edgenas.models.baselines import build_baseline

        if init != "random":
            raise ConfigError(f"{model} is a baseline: it starts from --init random (no pretrained weights are "
                              f"downloaded); --init {init} applies to a search run")
        torch.manual_seed(seed)
        net, spec, name, kind = build_baseline(model, num_classes=num_classes, resolution=resolution), None, \
            model, "baseline"
        weights_sha256 = None
    net.eval()
    return Candidate(name, kind, init, net, spec, count_params(net), count_macs(net, resolution), weights_sha256)
