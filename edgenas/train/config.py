"""The fine-tuning configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenas.configs import config_from_dict, config_to_dict
from edgenas.errors import ConfigError
from edgenas.schedules import SCHEDULES

__all__ = ["INITS", "MAX_ROUNDS", "RESUMABLE_CHANGES", "FinetuneConfig"]

#: where a searched network's weights start: the search's own (weight preservation), a fresh
#: initialisation, or a separate SSL pre-training of the derived network (the two-stage method)
INITS = ("preserved", "random", "pretrained")

#: the most self-training rounds (students in turn) a fine-tuning may ask for
MAX_ROUNDS = 5

#: fields that may differ between a checkpoint and the command that resumes it
RESUMABLE_CHANGES = frozenset({"out", "device", "threads", "checkpoint_every", "progress", "amp", "channels_last",
                               "sync_bn", "trust_plugins"})


#: options added after protocols were recorded, with the behaviour from before they existed;
#: at that value they are left out of the identity, so earlier runs keep their ids
ADDED_LATER = {"reset_norms": False, "probe_epochs": 0, "schedule": "cosine", "ema": 0.0, "cutout": 0.0,
               "unlabelled": False, "labelled_share": 0.25, "min_steps": 0, "teacher_epochs": None,
               "student_jitter": 0.0, "rounds": 1}


@dataclass(frozen=True)
class FinetuneConfig:
    """Every option of ``edgenas finetune`` (written to ``config.yaml`` as used).

    Attributes:
        model: a search run directory, an ``arch.json``, or a baseline name
            (``mobilenet_v2_035``, ``mobilenet_v3_small``, ``efficientnet_b0``).
        init: for a searched network, one of :data:`INITS`; baselines start from ``random``
            (no pretrained weights are downloaded).
        reset_norms: with ``preserved`` or ``pretrained``, rescale every convolution that only
            feeds a batch norm to the norm of a fresh initialisation, batch-norm statistics
            with it, so the network is the same function but the fine-tuning's effective
            learning rate is that of a random start (:mod:`edgenas.train.norms`). Not with
            ``linear_probe``, which trains no backbone weight.
        fraction / samples: the labelled share of the training images (stratified,
            seeded), or the number of labelled images in total; give one.
        class_subset: train on these classes only (the base classes of a few-shot split).
        select_fraction: share of the labelled images held out to pick the best epoch
            (0: no selection, "best" is the last epoch). Accuracies are always measured
            on the data set's fixed hold-out, which no training or selection sees.
        eval_samples: size of the (stratified, fixed) part of the hold-out to measure on (None: all).
        min_steps: the fewest optimizer steps: a small labelled set trains more epochs than ``epochs``
            (at 1% of CIFAR-10's labels, 40 epochs are 240 steps; measured in docs/evaluation.md).
        epochs, batch_size, lr, lr_min, warmup_epochs, momentum, weight_decay, label_smoothing:
            SGD with Nesterov momentum, a linear warm-up (``warmup_epochs``; None: a quarter of the
            epochs) then the ``schedule`` down to ``lr_min`` (``linear``: the fast CIFAR recipes'
            triangle; ``cosine``), per step; no weight decay on biases and batch-norm parameters.
        ema: decay of an exponential moving average of the weights (0: none); the average is what
            is evaluated, selected and saved.
        cutout: side of the square cut out of each augmented image, as a share of the image side (0: none).
        unlabelled: self-training: the fine-tuned network (the teacher) labels every image of the pool
            that is not labelled (soft labels, averaged over a horizontal flip), then the same network
            from the same start (the student) trains on both, ``labelled_share`` of each batch labelled,
            for ``epochs``; the student is the result. The hold-out is never used.
        teacher_epochs: with ``unlabelled``, the teacher's epochs (None: ``epochs``, as many as the student);
            ``min_steps`` is the floor of each.
        student_jitter: with ``unlabelled``, the strength of a colour jitter (brightness, contrast, saturation
            by factors in ``[1 - s, 1 + s]``, on 80% of the images) of the student's batches, labelled and
            pseudo-labelled: the student's noise of noisy-student training (0: none, the teacher's augmentation).
        rounds: with ``unlabelled``, how many students train in turn, each on the pool labelled by the one
            before (the first by the teacher): noisy-student iterations; the last student is the result, the
            others are kept in ``OUT/round1`` ... (1: one student).
        linear_probe: train the classifier only, the backbone frozen in eval mode.
        probe_epochs: the first of the ``epochs`` train the classifier only, as ``linear_probe``
            does (at the peak learning rate, no schedule), then the whole network trains with
            the warm-up and cosine schedule over the epochs left: linear probing then
            fine-tuning (LP-FT, Kumar et al., ICLR 2022), so a fresh classifier's first
            gradients do not distort the features of a preserved start.
        augment: random crop (reflection padding) and horizontal flip.
        trust_plugins: ``--init pretrained`` may import the plugins the run's search recorded
            (Python code from the run directory); otherwise they must be named with ``--plugin``.
    """

    model: str
    out: str = "runs/finetune"
    init: str = "preserved"
    reset_norms: bool = True
    # data
    data: str = "synthetic"
    data_root: str | None = None
    level: int = 2
    synthetic_size: int = 10_000
    resolution: int | None = None
    fraction: float | None = 0.1
    samples: int | None = None
    class_subset: tuple[int, ...] | None = None
    select_fraction: float = 0.1
    eval_samples: int | None = None
    # optimisation
    epochs: int = 40
    min_steps: int = 2500  # at least this many steps: more epochs when the labelled set is small
    batch_size: int = 64
    lr: float = 0.1
    lr_min: float = 0.0
    warmup_epochs: int | None = None
    schedule: str = "linear"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    ema: float = 0.995
    cutout: float = 0.25
    unlabelled: bool = False
    teacher_epochs: int | None = None
    labelled_share: float = 0.25
    student_jitter: float = 0.0
    rounds: int = 1
    linear_probe: bool = False
    probe_epochs: int = 0
    augment: bool = True
    # run
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    sync_bn: bool = False
    threads: int = 0
    checkpoint_every: int = 50
    progress: bool = True
    trust_plugins: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.min_steps, int) or isinstance(self.min_steps, bool) or \
                not 0 <= self.min_steps <= 10_000_000:
            raise ConfigError(f"--min-steps must be an integer in 0..10,000,000, got {self.min_steps!r}")
        for name in ("epochs", "batch_size", "checkpoint_every", "synthetic_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.init not in INITS:
            raise ConfigError(f"unknown --init {self.init!r} (known: {', '.join(INITS)})")
        if (self.fraction is None) == (self.samples is None):
            raise ConfigError("give one of --fraction and --samples")
        if self.fraction is not None and not (isinstance(self.fraction, (int, float)) and 0 < self.fraction <= 1):
            raise ConfigError(f"--fraction must be in (0, 1], got {self.fraction!r}")
        if self.samples is not None and (not isinstance(self.samples, int) or self.samples < 1):
            raise ConfigError(f"--samples must be a positive integer, got {self.samples!r}")
        if not 0 <= self.select_fraction < 1:
            raise ConfigError(f"--select-fraction must be in [0, 1), got {self.select_fraction}")
        if self.eval_samples is not None and self.eval_samples < 1:
            raise ConfigError(f"--eval-samples must be >= 1, got {self.eval_samples}")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}")
        for name in ("lr_min", "momentum", "weight_decay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not isinstance(self.probe_epochs, int) or not 0 <= self.probe_epochs < self.epochs:
            raise ConfigError(f"--probe-epochs must be in 0..epochs-1 ({self.epochs - 1}), got {self.probe_epochs!r}")
        if self.probe_epochs and self.linear_probe:
            raise ConfigError("--probe-epochs needs a fine-tuning: a --linear-probe trains the classifier only throughout")
        if self.warmup_epochs is not None and not 0 <= self.warmup_epochs <= self.epochs - self.probe_epochs:
            raise ConfigError(f"--warmup-epochs must be in 0..{self.epochs - self.probe_epochs} (the epochs after "
                              f"--probe-epochs), got {self.warmup_epochs}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown --schedule {self.schedule!r} (known: {', '.join(SCHEDULES)})")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"--ema must be in [0, 1), got {self.ema}")
        if not 0 <= self.cutout < 1:
            raise ConfigError(f"--cutout must be in [0, 1) (a share of the image side), got {self.cutout}")
        if not 0 < self.labelled_share < 1:
            raise ConfigError(f"--labelled-share must be in (0, 1), got {self.labelled_share}")
        if not (isinstance(self.student_jitter, (int, float)) and 0 <= self.student_jitter < 1):
            raise ConfigError(f"--student-jitter must be in [0, 1), got {self.student_jitter!r}")
        if self.student_jitter and not self.unlabelled:
            raise ConfigError("--student-jitter noises the self-training student: it needs --unlabelled")
        if self.unlabelled and (self.linear_probe or self.probe_epochs):
            raise ConfigError("--unlabelled trains a whole network twice; it does not combine with a linear probe")
        if self.teacher_epochs is not None:
            if not isinstance(self.teacher_epochs, int) or isinstance(self.teacher_epochs, bool) or \
                    self.teacher_epochs < 1:
                raise ConfigError(f"--teacher-epochs must be a positive integer, got {self.teacher_epochs!r}")
            if not self.unlabelled:
                raise ConfigError("--teacher-epochs is the self-training teacher's: it needs --unlabelled")
        if not isinstance(self.rounds, int) or isinstance(self.rounds, bool) or not 1 <= self.rounds <= MAX_ROUNDS:
            raise ConfigError(f"--rounds must be an integer in 1..{MAX_ROUNDS}, got {self.rounds!r}")
        if self.rounds > 1 and not self.unlabelled:
            raise ConfigError("--rounds counts the self-training students: it needs --unlabelled")
        if self.unlabelled and self.fraction is not None and self.fraction >= 1:
            raise ConfigError("--unlabelled needs unlabelled images: with --fraction 1 every image is labelled")
        if self.batch_size < 2:
            raise ConfigError("--batch-size must be >= 2 (batch norm needs more than one image)")
        if self.data not in ("synthetic", "cifar10", "imagefolder"):
            raise ConfigError(f"unknown --data {self.data!r} (synthetic, cifar10, imagefolder)")
        if self.data != "synthetic" and not self.data_root:
            raise ConfigError(f"--data {self.data} needs --data-root")
        if not 1 <= self.level <= 4:
            raise ConfigError(f"--level must be 1..4, got {self.level}")
        if self.resolution is not None and not 8 <= self.resolution <= 512:
            raise ConfigError(f"--resolution must be in [8, 512], got {self.resolution}")
        if self.class_subset is not None and (len(self.class_subset) < 2 or len(set(self.class_subset))
                                              != len(self.class_subset) or min(self.class_subset) < 0):
            raise ConfigError(f"--classes must name at least 2 distinct class indices, got {self.class_subset}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"--device must be auto, cpu or cuda[:N], got {self.device!r}")
        if self.amp not in ("none", "bf16", "auto"):
            raise ConfigError(f"--amp must be none, bf16 or auto, got {self.amp!r}")
        if self.threads < 0:
            raise ConfigError(f"--threads must be >= 0 (0: PyTorch's default), got {self.threads}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {self.seed}")

    @property
    def labels_label(self) -> str:
        """``10% labels`` or ``500 labels``: how much supervision, for tables."""
        if self.fraction is not None:
            return f"{100 * self.fraction:g}% labels"
        return f"{self.samples} labels"

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FinetuneConfig":
        """Build from a plain dict (``config.yaml``).

        Raises:
            ConfigError: unknown keys (with close matches) or invalid values.
        """
        return config_from_dict(cls, data, "finetune")

    def replace(self, **changes: Any) -> "FinetuneConfig":
        return dataclasses.replace(self, **changes)

    def labels_alone(self, **changes: Any) -> "FinetuneConfig":
        """This fine-tuning without self-training (its teacher's, or a plan's probe): every option that only a
        student has set back to its default, then ``changes``."""
        return self.replace(unlabelled=False, teacher_epochs=None, student_jitter=0.0, rounds=1, **changes)

    def identity(self) -> dict[str, Any]:
        """The options that define the training (what a resume must match)."""
        d = self.to_dict()
        for k in RESUMABLE_CHANGES:
            d.pop(k, None)
        for k, before in ADDED_LATER.items():
            if d.get(k) == before:
                d.pop(k)  # as it behaved before the option existed: the identity (and protocol id) it had
        return d


def write_config(cfg: FinetuneConfig, out: Path) -> None:
    """``OUT/config.yaml``: the options of the fine-tuning in ``out``."""
    import yaml

    from edgenas.rundir import atomic_write_text

    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
