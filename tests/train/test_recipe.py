"""The few-label recipe: linear schedule, cutout, weight averaging, and self-training on the unlabelled pool."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from edgenas.errors import ConfigError
from edgenas.schedules import linear_lr, schedule_lr
from edgenas.train import FinetuneConfig, run_finetune
from edgenas.train.augment import colour_jitter, cutout
from edgenas.train.ema import WeightAverage
from edgenas.train.selftrain import teacher_config


@pytest.fixture
def run(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("eval", "finetune", "pretrain"))
    return copy


def test_linear_schedule_is_a_triangle():
    lrs = [linear_lr(s, 100, 0.1, 0.0, warmup=25) for s in range(101)]
    assert lrs[0] < lrs[10] < lrs[24] < 0.1 and lrs[25] == pytest.approx(0.1)
    assert lrs[60] == pytest.approx(0.1 * (1 - 35 / 75)) and lrs[100] == 0.0
    assert all(a >= b for a, b in zip(lrs[25:], lrs[26:]))
    assert schedule_lr("linear", 50, 100, 0.1, 0.0, 25) == linear_lr(50, 100, 0.1, 0.0, 25)


def test_cutout_zeroes_one_square_per_image():
    x = torch.ones(64, 3, 32, 32)
    out = cutout(x, 8, torch.Generator().manual_seed(0))
    zero = (out == 0).all(1)  # [B, H, W]: every channel cut at the same pixels
    per_image = zero.flatten(1).sum(1)
    assert int(per_image.max()) == 64 and int(per_image.min()) >= 16  # whole, or clipped at a border
    assert ((out == 0) | (out == 1)).all() and (out == 0).any(1).eq(zero).all()
    for b in range(8):  # the zeros form one axis-aligned rectangle
        ys, xs = torch.nonzero(zero[b], as_tuple=True)
        assert len(ys) == (int(ys.max()) - int(ys.min()) + 1) * (int(xs.max()) - int(xs.min()) + 1)
    same = cutout(x, 8, torch.Generator().manual_seed(0))
    assert torch.equal(out, same) and cutout(x, 0, torch.Generator()) is x


def test_colour_jitter_changes_the_chosen_images_only():
    images = torch.randint(0, 256, (200, 3, 8, 8), dtype=torch.uint8)
    plain = images.float() / 255
    assert torch.equal(colour_jitter(images, 0.0, torch.Generator()), plain)
    out = colour_jitter(images, 0.4, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == plain.shape and 0 <= out.min() and out.max() <= 1
    changed = (out - plain).abs().flatten(1).amax(1) > 1e-6
    assert 0.7 < changed.float().mean() < 0.9  # p = 0.8 of the images; the others exactly as they were
    assert torch.equal(out, colour_jitter(images, 0.4, torch.Generator().manual_seed(0)))
    assert torch.equal(colour_jitter(images, 0.4, torch.Generator().manual_seed(0), p=0.0), plain)


def test_the_student_jitter_noises_the_student_only(run, tiny_finetune_options):
    options = {**tiny_finetune_options, "amp": "none"}
    cfg = FinetuneConfig(model=str(run), init="random", out=str(run / "sj"), unlabelled=True, student_jitter=0.4,
                         **options)
    assert teacher_config(cfg).student_jitter == 0.0  # the teacher trains, and labels, on plain images
    assert "student_jitter" not in cfg.replace(student_jitter=0.0).identity()  # earlier protocols keep their ids
    result = run_finetune(cfg).result
    assert result["student_jitter"] == 0.4 and result["unlabelled"]
    teacher_of_jittered = json.loads((run / "sj" / "teacher" / "result.json").read_text())
    plain = run_finetune(cfg.replace(student_jitter=0.0, out=str(run / "sn"))).result
    assert teacher_of_jittered["final_acc"] == plain["teacher_acc"]  # the same teacher
    a = torch.load(run / "sj" / "weights.pt", weights_only=True)
    b = torch.load(run / "sn" / "weights.pt", weights_only=True)
    assert any(not torch.allclose(a[k].float(), b[k].float()) for k in a)  # the students saw other images


def test_weight_average_follows_and_keeps_frozen_weights_exact():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    average = WeightAverage(model, decay=0.9)
    frozen = model[0].bias.detach().clone()
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    for _ in range(200):
        model(torch.randn(8, 4))  # BN statistics move too
        average.update(model)
    assert torch.equal(average.model[0].bias, frozen)
    assert torch.allclose(average.model[0].weight, start + 1.0, atol=1e-5)  # it converged to the weights
    assert torch.allclose(average.model[1].running_mean, model[1].running_mean, atol=0.2)
    assert int(average.model[1].num_batches_tracked) == 200
    other = WeightAverage(model, decay=0.9)
    other.load_state_dict(average.state_dict())
    assert other.steps == 200 and torch.equal(other.model[0].weight, average.model[0].weight)


def test_the_first_updates_forget_the_start():
    """With the warm-up of the decay, the first step already moves the average 9/10 of the way."""
    model = nn.Linear(2, 2)
    average = WeightAverage(model, decay=0.999)
    with torch.no_grad():
        model.weight.zero_()
    before = average.model.weight.detach().clone()
    average.update(model)
    assert torch.allclose(average.model.weight, before * (1 / 10), atol=1e-6)


def test_ema_is_what_is_saved_and_resumes_exactly(run, tiny_finetune_options):
    options = {**tiny_finetune_options, "amp": "none"}
    plain = run_finetune(FinetuneConfig(model=str(run), init="random", out=str(run / "plain"), ema=0.0, **options))
    cfg = FinetuneConfig(model=str(run), init="random", out=str(run / "ema"), ema=0.9, **options)
    averaged = run_finetune(cfg)
    a = torch.load(run / "plain" / "weights.pt", weights_only=True)
    b = torch.load(run / "ema" / "weights.pt", weights_only=True)
    assert not all(torch.equal(a[k], b[k]) for k in a)  # same steps, the average differs from the last weights
    assert averaged.result["ema"] == 0.9 and plain.result["ema"] == 0.0

    def stop(step):
        if step == 9:
            raise KeyboardInterrupt

    cut = cfg.replace(out=str(run / "cut"))
    with pytest.raises(KeyboardInterrupt):
        run_finetune(cut, on_step=stop)
    ckpt = torch.load(run / "cut" / "finetune.ckpt", weights_only=False)
    assert ckpt["average"]["steps"] == 8  # the checkpoint at step 8 holds the average
    run_finetune(cut)
    c = torch.load(run / "cut" / "weights.pt", weights_only=True)
    assert all(torch.allclose(b[k].float(), c[k].float(), atol=1e-6) for k in b)


def test_self_training_labels_the_pool_and_trains_a_student(run, tiny_finetune_options):
    options = {**tiny_finetune_options, "amp": "none"}
    cfg = FinetuneConfig(model=str(run), init="random", out=str(run / "st"), unlabelled=True, **options)
    whole = run_finetune(cfg).result
    teacher = json.loads((run / "st" / "teacher" / "result.json").read_text())
    assert whole["unlabelled"] is True and whole["n_unlabelled"] == 240 - 120
    assert whole["teacher_acc"] == teacher["final_acc"] and whole["steps"] == teacher["steps"] == 12
    assert 0 <= whole["pseudo_label_acc"] <= 100 and whole["cpu_s"] > whole["student_cpu_s"]
    saved = torch.load(run / "st" / "pseudo.pt", weights_only=True)
    assert saved["soft"].shape == (120, len(whole["classes"]))
    assert torch.allclose(saved["soft"].sum(1), torch.ones(120), atol=1e-4)
    assert len(set(saved["rows"].tolist())) == 120
    again = run_finetune(cfg)
    assert again.resumed and again.result == whole

    calls = []

    def stop(step):  # the teacher's 12 steps, then the student's: stop in the student, after its step-8 checkpoint
        calls.append(step)
        if len(calls) == 12 + 9:
            raise KeyboardInterrupt

    cut = cfg.replace(out=str(run / "cut"))
    with pytest.raises(KeyboardInterrupt):
        run_finetune(cut, on_step=stop)
    assert (run / "cut" / "teacher" / "result.json").is_file() and (run / "cut" / "pseudo.pt").is_file()
    resumed = run_finetune(cut).result
    assert resumed["final_acc"] == whole["final_acc"] and resumed["teacher_acc"] == whole["teacher_acc"]
    a = torch.load(run / "st" / "weights.pt", weights_only=True)
    b = torch.load(run / "cut" / "weights.pt", weights_only=True)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


def test_rounds_of_students_each_label_for_the_next(run, tiny_finetune_options):
    options = {**tiny_finetune_options, "amp": "none"}
    one = FinetuneConfig(model=str(run), init="random", out=str(run / "one"), unlabelled=True, **options)
    single = run_finetune(one).result
    assert single["rounds"] == 1 and "round_accs" not in single and "rounds" not in one.identity()
    cfg = one.replace(out=str(run / "three"), rounds=3)
    whole = run_finetune(cfg).result
    out = run / "three"
    first = json.loads((out / "round1" / "result.json").read_text())
    second = json.loads((out / "round2" / "result.json").read_text())
    # the first student is the one-round self-training's (the same teacher, labels and seeds)
    assert first["final_acc"] == single["final_acc"] and first["teacher_acc"] == single["teacher_acc"]
    w1, w = (torch.load(d / "weights.pt", weights_only=True) for d in (out / "round1", run / "one"))
    assert all(torch.allclose(w1[k].float(), w[k].float(), atol=1e-6) for k in w)
    assert whole["rounds"] == 3 and whole["round_accs"] == [first["final_acc"], second["final_acc"],
                                                            whole["final_acc"]]
    assert len(whole["round_pseudo_label_accs"]) == 3 and whole["pseudo_label_acc"] == whole["round_pseudo_label_accs"][2]
    # each student learned from the one before: its labels are that student's outputs, cached with its hash
    from exporters.manifest import sha256_of

    for student, labeller in ((out / "round1", out / "teacher"), (out / "round2", out / "round1"), (out, out / "round2")):
        saved = torch.load(student / "pseudo.pt", weights_only=True)
        assert saved["teacher_sha256"] == sha256_of(labeller / "weights.pt")
    labels = [torch.load(d / "pseudo.pt", weights_only=True)["soft"] for d in (out / "round1", out / "round2", out)]
    assert not torch.equal(labels[0], labels[1]) and not torch.equal(labels[1], labels[2])
    assert whole["cpu_s"] == pytest.approx(whole["teacher_cpu_s"] + sum(r["student_cpu_s"] for r in (first, second, whole)),
                                           abs=0.02)  # every stage counted once
    assert first["cpu_s"] == pytest.approx(first["teacher_cpu_s"] + first["student_cpu_s"], abs=0.02)

    calls = []

    def stop(step):  # the teacher's 12 steps, the first student's 12, then 5 of the second's: stop there
        calls.append(step)
        if len(calls) == 12 + 12 + 5:
            raise KeyboardInterrupt

    cut = cfg.replace(out=str(run / "cut"))
    with pytest.raises(KeyboardInterrupt):
        run_finetune(cut, on_step=stop)
    assert (run / "cut" / "round1" / "result.json").is_file() and (run / "cut" / "round2" / "finetune.ckpt").is_file()
    assert not (run / "cut" / "round2" / "result.json").exists()
    resumed = run_finetune(cut).result
    assert resumed["round_accs"] == whole["round_accs"]


def test_an_interrupted_teacher_is_kept(run, tiny_finetune_options):
    cfg = FinetuneConfig(model=str(run), init="random", out=str(run / "st"), unlabelled=True,
                         **{**tiny_finetune_options, "amp": "none"})

    def stop(step):
        if step == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_finetune(cfg, on_step=stop)
    assert (run / "st" / "teacher" / "finetune.ckpt").is_file()  # not undone with the failed job
    assert not (run / "st" / "pseudo.pt").exists()
    assert (run / "st" / "config.yaml").is_file()  # the job's own options: a --time-budget resumes its plan
    result = run_finetune(cfg).result  # the teacher resumes, then labels, then the student trains
    assert result["unlabelled"] and result["steps"] == 12 and (run / "st" / "weights.pt").is_file()


def test_the_teacher_trains_its_own_epochs(run, tiny_finetune_options):
    options = {**tiny_finetune_options, "amp": "none", "epochs": 3}
    cfg = FinetuneConfig(model=str(run), init="random", out=str(run / "te"), unlabelled=True, teacher_epochs=1,
                         **options)
    result = run_finetune(cfg).result
    teacher = json.loads((run / "te" / "teacher" / "result.json").read_text())
    assert teacher["steps"] == 6 and result["steps"] == 18  # 6 steps an epoch: 1 for the teacher, 3 for the student
    assert "teacher_epochs" not in FinetuneConfig(model="m").identity()  # earlier protocols keep their ids
    few = teacher_config(FinetuneConfig(model="m", out="o", unlabelled=True, epochs=120, teacher_epochs=40,
                                        min_steps=7500))
    assert (few.epochs, few.min_steps, few.unlabelled, few.teacher_epochs) == (40, 7500, False, None)
    assert Path(few.out) == Path("o") / "teacher"


@pytest.mark.parametrize("change, match", [
    ({"teacher_epochs": 2}, "it needs --unlabelled"),
    ({"unlabelled": True, "teacher_epochs": 0}, "--teacher-epochs must be a positive integer"),
    ({"unlabelled": True, "fraction": 1.0}, "with --fraction 1 every image is labelled"),
    ({"unlabelled": True, "fraction": None, "samples": 240, "select_fraction": 0}, "every image of the pool"),
    ({"unlabelled": True, "linear_probe": True}, "does not combine with a linear probe"),
    ({"labelled_share": 1.0}, r"--labelled-share must be in \(0, 1\)"),
    ({"student_jitter": 0.4}, "--student-jitter noises the self-training student: it needs --unlabelled"),
    ({"unlabelled": True, "student_jitter": 1.0}, r"--student-jitter must be in \[0, 1\)"),
    ({"rounds": 2}, "--rounds counts the self-training students: it needs --unlabelled"),
    ({"unlabelled": True, "rounds": 0}, r"--rounds must be an integer in 1\.\.5"),
    ({"unlabelled": True, "rounds": 6}, r"--rounds must be an integer in 1\.\.5"),
    ({"ema": 1.0}, r"--ema must be in \[0, 1\)"),
    ({"cutout": -0.1}, r"--cutout must be in \[0, 1\)"),
    ({"schedule": "step"}, "unknown --schedule 'step'"),
    ({"fraction": None, "samples": 4}, "classes have no labelled image"),
])
def test_bad_recipe_options(run, tiny_finetune_options, change, match):
    options = {**tiny_finetune_options, "model": str(run), "out": str(run / "bad"), **change}
    with pytest.raises(ConfigError, match=match):
        run_finetune(FinetuneConfig(**options))
    assert not (run / "bad").exists()


def test_bad_rounds_on_the_command_line_are_one_line(run):
    from click.testing import CliRunner

    from edgenas.cli.main import cli

    for args, needle in ((["--rounds", "0"], "--rounds must be an integer in 1..5"),
                         (["--rounds", "2", "--no-unlabelled"], "it needs --unlabelled"),
                         (["--rounds", "two"], "'two' is not a valid integer")):
        result = CliRunner().invoke(cli, ["finetune", str(run), "--synthetic-size", "240", "--no-progress",
                                          "--out", str(run / "bad"), *args])
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.startswith(("error:", "Error:"))]
        assert len(lines) == 1 and needle in lines[0], (args, result.output)
        assert not (run / "bad").exists()
