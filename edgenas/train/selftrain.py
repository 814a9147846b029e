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

__all__ = ["pseudo_labels", "self_train", "teacher_config"]


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


def _unlabelled_rows(tuner) -> torch.Tensor:
    labelled = torch.zeros(len(tuner.pool), dtype=torch.bool)
    labelled[tuner.fit_idx] = True
    labelled[tuner.select_idx] = True
    return torch.nonzero(~labelled).flatten()


def self_train(student, teach) -> tuple[dict, bool]:
    """Teacher, pseudo-labels, student (see the module docstring); returns the student's result and whether
    any stage resumed.

    ``student`` is the :class:`~edgenas.train.finetune.Finetuner` of the whole job (``cfg.out``, its config
    with ``unlabelled``); ``teach(cfg)`` runs (or resumes) the teacher's ordinary fine-tuning of ``cfg`` and
    returns its ``FinetuneResult``.

    Raises:
        ConfigError: no unlabelled image is left in the pool.
    """
    from exporters.manifest import sha256_of

    from edgenas.models import load_into
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
    weights = out / "teacher" / "weights.pt"
    sha = sha256_of(weights)
    cache = out / "pseudo.pt"
    soft = None
    if cache.is_file():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        if saved.get("teacher_sha256") == sha and torch.equal(saved["rows"], rows):
            soft = saved["soft"]
    if soft is None:
        model = copy.deepcopy(student.eval_model)
        load_into(model, weights)
        soft = pseudo_labels(model.to(student.device), student.pool.images[rows], student.mean, student.std,
                             student.device, cfg)
        if student.world.main:
            atomic_torch_save({"teacher_sha256": sha, "rows": rows, "soft": soft}, cache)
    student.pseudo = (student.pool.images[rows], soft)
    state, resumed = student.train()
    result = student.finish(state, resumed).result
    t = teacher.result
    agreement = float((soft.argmax(1) == student.pool.labels[rows]).float().mean())  # a diagnostic only
    result.update(unlabelled=True, n_unlabelled=len(rows), student_jitter=cfg.student_jitter,
                  teacher_acc=t["final_acc"], teacher_cpu_s=t["cpu_s"], student_cpu_s=result["cpu_s"],
                  cpu_s=round(t["cpu_s"] + result["cpu_s"], 2),
                  elapsed_s=round(t["elapsed_s"] + result["elapsed_s"], 2),
                  pseudo_label_acc=round(100 * agreement, 3))
    if student.world.main:
        import json

        from edgenas.rundir import atomic_write_text

        atomic_write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    return result, resumed or teacher.resumed
