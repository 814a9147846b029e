"""Self-training on the unlabelled pool (``edgenas finetune --unlabelled``): a teacher labels, a student learns.

1. The *teacher* is the ordinary fine-tuning on the labelled images (``OUT/teacher/``).
2. It labels every image of the pool outside the labelled set: soft labels, the softmax of its logits
   averaged over the image and its horizontal flip (``OUT/pseudo.pt``, reused while the teacher is the same).
3. The *student*, the same network from the same start, trains for ``--epochs`` (the teacher for
   ``--teacher-epochs``, by default as many; each at least ``--min-steps``) on batches of which
   ``--labelled-share`` are labelled images (smoothed one-hot targets) and the rest pseudo-labelled ones
   (the teacher's distributions): noisy-student style distillation (Xie et al., CVPR 2020) without the
   larger student; ``--student-jitter`` adds a colour jitter to the student's images, the teacher's
   augmentation being the only noise otherwise. The student is the result, in ``OUT/``.

Only the training pool is read: the evaluation hold-out is never labelled, selected on or seen.
Each stage resumes on its own after an interruption.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from edgenas.errors import ConfigError
from edgenas.rundir import atomic_torch_save
from edgenas.train.config import MAX_ROUNDS

__all__ = ["DURABLE", "pseudo_labels", "round_config", "self_train", "teacher_config"]

#: what a self-training has finished in ``OUT`` besides its student's checkpoint (a failure keeps the directory)
DURABLE = ("teacher/finetune.ckpt", "teacher/result.json",
           *(f"round{r}/finetune.ckpt" for r in range(1, MAX_ROUNDS)))


@torch.no_grad()
def pseudo_labels(model: torch.nn.Module, images: torch.Tensor, mean, std, device: torch.device, amp_cfg,
                  batch: int = 500) -> torch.Tensor:
    """Soft labels ``[N, K]`` of uint8 ``images``: the softmax of ``model``'s logits (eval mode) averaged with
    those of the flipped image."""
    from edgenas.accelerator import autocast
    from edgenas.data.views import normalize_batch

    model.eval()
    out = []
    for start in range(0, len(images), batch):
        x = normalize_batch(images[start:start + batch], mean, std).to(device, memory_format=torch.channels_last)
        with autocast(amp_cfg, device):
            logits = model(x).float() + model(x.flip(3)).float()
        out.append(((logits / 2).softmax(1)).cpu())
    return torch.cat(out)


def teacher_config(cfg):
    """The teacher's fine-tuning of the self-training ``cfg``: on the labels alone, in ``OUT/teacher``, for
    ``teacher_epochs`` (the same ``min_steps`` floor as the student), on plain images (no student jitter)."""
    return cfg.labels_alone(epochs=cfg.teacher_epochs or cfg.epochs, out=str(Path(cfg.out) / "teacher"))


def round_config(cfg, r: int):
    """The config of student ``r`` of ``cfg``'s ``rounds`` (1-based) before the last: the last student of an
    ``r``-round self-training, in ``OUT/round{r}``."""
    return cfg.replace(rounds=r, out=str(Path(cfg.out) / f"round{r}"))


def _unlabelled_rows(tuner) -> torch.Tensor:
    labelled = torch.zeros(len(tuner.pool), dtype=torch.bool)
    labelled[tuner.fit_idx] = True
    labelled[tuner.select_idx] = True
    return torch.nonzero(~labelled).flatten()


def _soft_labels(tuner, weights: Path, rows: torch.Tensor) -> torch.Tensor:
    """The soft labels the network in ``weights`` gives the pool's ``rows``, for ``tuner``'s student; cached in
    its ``pseudo.pt`` and reused while those weights and rows are the same."""
    from exporters.manifest import sha256_of

    from edgenas.models import load_into

    sha = sha256_of(weights)
    cache = tuner.out / "pseudo.pt"
    if cache.is_file():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        if saved.get("teacher_sha256") == sha and torch.equal(saved["rows"], rows):
            return saved["soft"]
    model = copy.deepcopy(tuner.eval_model)
    load_into(model, weights)
    soft = pseudo_labels(model.to(tuner.device), tuner.pool.images[rows], tuner.mean, tuner.std, tuner.device,
                         tuner.cfg)
    if tuner.world.main:
        atomic_torch_save({"teacher_sha256": sha, "rows": rows, "soft": soft}, cache)
    return soft


def _learn(tuner, weights: Path, rows: torch.Tensor) -> tuple[dict, bool, float]:
    """Train (or resume) ``tuner``'s student on the pool labelled by ``weights``: its result, whether it
    resumed, and the share of those labels that are right (a diagnostic, from the pool's own labels)."""
    soft = _soft_labels(tuner, weights, rows)
    tuner.pseudo = (tuner.pool.images[rows], soft)
    state, resumed = tuner.train()
    result = tuner.finish(state, resumed).result
    return result, resumed, float((soft.argmax(1) == tuner.pool.labels[rows]).float().mean())


def self_train(student, teach) -> tuple[dict, bool]:
    """Teacher, pseudo-labels, student(s) (see the module docstring); returns the last student's result and
    whether any stage resumed.

    ``student`` is the :class:`~edgenas.train.finetune.Finetuner` of the whole job (``cfg.out``, its config
    with ``unlabelled``); ``teach(cfg)`` runs (or resumes) the teacher's ordinary fine-tuning of ``cfg`` and
    returns its ``FinetuneResult``.

    Raises:
        ConfigError: no unlabelled image is left in the pool.
    """
    from edgenas.train.config import write_config

    cfg = student.cfg
    out = Path(cfg.out)
    student.prepare()
    rows = _unlabelled_rows(student)
    if not len(rows):
        raise ConfigError("--unlabelled: every image of the pool is labelled; lower --fraction or --samples")
    if student.world.main:
        write_config(cfg, out)  # first: a --time-budget resumed during the teacher finds its plan here
    teacher = teach(teacher_config(cfg))
    resumed = teacher.resumed
    weights = out / "teacher" / "weights.pt"
    students = []  # each student's (hold-out accuracy, share of its labels right, CPU s, wall s)
    for r in range(1, cfg.rounds + 1):
        tuner = student
        if r < cfg.rounds:  # an earlier student: a Finetuner of its own directory
            tuner = type(student)(round_config(cfg, r), student.console, student.data, student.on_step)
            tuner.prepare()
            if tuner.world.main:
                write_config(tuner.cfg, tuner.out)
        result, again, right = _learn(tuner, weights, rows)
        resumed = resumed or again
        students.append((result["final_acc"], right, result["cpu_s"], result["elapsed_s"]))
        _record(tuner, result, teacher.result, students, len(rows))
        weights = tuner.out / "weights.pt"
    return result, resumed


def _record(tuner, result: dict, teacher: dict, students: list[tuple[float, float, float, float]],
            n_unlabelled: int) -> None:
    """Complete the last of ``students``' ``result`` (in place) as a self-training's and write it to its
    ``result.json``: the teacher's, the totals of every stage so far and, after more than one round, each
    student's hold-out accuracy and its labels' share right."""
    result.update(unlabelled=True, n_unlabelled=n_unlabelled, student_jitter=tuner.cfg.student_jitter,
                  rounds=len(students), teacher_acc=teacher["final_acc"], teacher_cpu_s=teacher["cpu_s"],
                  student_cpu_s=students[-1][2], cpu_s=round(teacher["cpu_s"] + sum(s[2] for s in students), 2),
                  elapsed_s=round(teacher["elapsed_s"] + sum(s[3] for s in students), 2),
                  pseudo_label_acc=round(100 * students[-1][1], 3))
    if len(students) > 1:
        result.update(round_accs=[s[0] for s in students],
                      round_pseudo_label_accs=[round(100 * s[1], 3) for s in students])
    if tuner.world.main:
        import json

        from edgenas.rundir import atomic_write_text

        atomic_write_text(tuner.out / "result.json", json.dumps(result, indent=2) + "\n")
