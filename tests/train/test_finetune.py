"""`edgenas finetune`: the three initialisations, baselines, resume, linear probe, selection, bad input."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from edgenas.errors import CheckpointError, ConfigError
from edgenas.train import FinetuneConfig, run_finetune
from edgenas.train.candidates import classifier_of, load_candidate, without_classifier


@pytest.fixture
def run(tiny_run, tmp_path):
    """A private copy of the tiny search run (tests write into it)."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("eval", "finetune", "pretrain"))
    return copy


def test_preserved_init_loads_the_search_weights_and_a_new_classifier(run):
    state = torch.load(run / "weights.pt", weights_only=True)
    candidate = load_candidate(str(run), "preserved", num_classes=7, resolution=16, seed=0)
    own = candidate.model.state_dict()
    backbone = [k for k in own if not k.startswith("classifier.")]
    assert backbone and all(torch.equal(own[k], state[k]) for k in backbone)
    assert own["classifier.weight"].shape[0] == 7 and candidate.model.projector is None
    fresh = load_candidate(str(run), "random", num_classes=7, resolution=16, seed=0).model.state_dict()
    assert not all(torch.equal(fresh[k], state[k]) for k in backbone)
    assert candidate.params == sum(p.numel() for p in candidate.model.parameters())


def test_classifier_and_features_hooks():
    candidate = load_candidate("mobilenet_v3_small", "random", num_classes=4, resolution=32)
    name, head = classifier_of(candidate.model)
    assert head.out_features == 4 and name == "classifier.3"
    features = without_classifier(candidate.model).eval()(torch.zeros(2, 3, 32, 32))
    assert features.shape == (2, head.in_features)


@pytest.mark.parametrize("init", ["preserved", "random", "pretrained"])
def test_finetune_writes_a_result(run, tiny_finetune_options, init):
    result = run_finetune(FinetuneConfig(model=str(run), init=init, out=str(run / "ft"), **tiny_finetune_options))
    r = result.result
    assert r["model"] == "searched" and r["init"] == init and r["kind"] == "searched"
    assert r["reset_norms"] is (init != "random")  # the default, for weights that come from training
    assert r["n_labelled"] == 120 and r["n_select"] == 10 and r["n_fit"] == 110 and r["n_eval"] == 100
    assert 0 <= r["final_acc"] <= 100 and 0 <= r["best_acc"] <= 100 and r["cpu_s"] > 0 and r["steps"] == 12
    for name in ("config.yaml", "metrics.jsonl", "weights.pt", "best.pt", "arch.json", "result.json"):
        assert (run / "ft" / name).is_file()
    epochs = [json.loads(line) for line in (run / "ft" / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2] and all(e["select_acc"] is not None for e in epochs)
    if init == "pretrained":  # the two-stage pre-training ran with the search's budget and is reused
        summary = json.loads((run / "pretrain" / "summary.json").read_text())
        assert summary["steps"] == json.loads((run / "summary.json").read_text())["steps"]


def test_finished_directory_is_reported_not_recomputed(run, tiny_finetune_options):
    cfg = FinetuneConfig(model=str(run), out=str(run / "ft"), **tiny_finetune_options)
    first = run_finetune(cfg)
    steps = []
    again = run_finetune(cfg, on_step=steps.append)
    assert again.result == first.result and again.resumed and steps == []


def test_interrupted_finetuning_resumes_to_the_same_weights(run, tiny_finetune_options):
    cfg = FinetuneConfig(model=str(run), init="random", out=str(run / "whole"), **tiny_finetune_options)
    whole = run_finetune(cfg)

    def stop(step):
        if step == 9:  # mid-epoch, after the checkpoint at step 8
            raise KeyboardInterrupt

    cut = cfg.replace(out=str(run / "cut"))
    with pytest.raises(KeyboardInterrupt):
        run_finetune(cut, on_step=stop)
    resumed = run_finetune(cut)
    a = torch.load(run / "whole" / "weights.pt", weights_only=True)
    b = torch.load(run / "cut" / "weights.pt", weights_only=True)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert resumed.resumed and resumed.result["final_acc"] == whole.result["final_acc"]


def test_other_options_on_an_existing_directory_are_refused(run, tiny_finetune_options):
    cfg = FinetuneConfig(model=str(run), out=str(run / "ft"), **tiny_finetune_options)
    run_finetune(cfg)
    with pytest.raises(CheckpointError, match="lr"):
        run_finetune(cfg.replace(lr=0.3))


def test_linear_probe_trains_only_the_classifier(run, tiny_finetune_options):
    run_finetune(FinetuneConfig(model=str(run), out=str(run / "lp"), linear_probe=True, **tiny_finetune_options))
    before = torch.load(run / "weights.pt", weights_only=True)
    after = torch.load(run / "lp" / "weights.pt", weights_only=True)
    backbone = [k for k in after if not k.startswith("classifier.")]
    assert all(torch.equal(after[k], before[k]) for k in backbone)  # weights and BN statistics


def test_probe_epochs_train_the_classifier_first_then_everything(run, tiny_finetune_options):
    """LP-FT: the backbone (weights and BN statistics) stays as loaded through the probe epoch, then trains;
    an interruption right after the phase change resumes to the same weights."""
    options = {**tiny_finetune_options, "warmup_epochs": 1}
    cfg = FinetuneConfig(model=str(run), out=str(run / "whole"), probe_epochs=1, reset_norms=False, **options)
    whole = run_finetune(cfg).result
    assert whole["probe_epochs"] == 1 and whole["steps"] == 12

    def stop(step):
        if step == 7:  # the first step after the probe epoch, whose end was checkpointed
            raise KeyboardInterrupt

    cut = cfg.replace(out=str(run / "cut"))
    with pytest.raises(KeyboardInterrupt):
        run_finetune(cut, on_step=stop)
    start = torch.load(run / "weights.pt", weights_only=True)
    probed = torch.load(run / "cut" / "finetune.ckpt", weights_only=False)["model"]
    backbone = [k for k in probed if not k.startswith("classifier.")]
    assert all(torch.equal(probed[k], start[k]) for k in backbone)
    head0 = load_candidate(str(run), "preserved", num_classes=len(whole["classes"]), resolution=16, seed=0,
                           reset_norms=False).model.state_dict()["classifier.weight"]
    assert not torch.equal(probed["classifier.weight"], head0)  # while the classifier trained
    resumed = run_finetune(cut).result
    assert resumed["final_acc"] == whole["final_acc"]
    end = torch.load(run / "cut" / "weights.pt", weights_only=True)
    assert not all(torch.equal(end[k], start[k]) for k in backbone)  # then the whole network trained
    lrs = [json.loads(line)["lr"] for line in (run / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert lrs[0] == cfg.lr  # constant while probing


def test_baseline_and_class_subset(tmp_path, tiny_finetune_options):
    options = {**tiny_finetune_options, "epochs": 1, "warmup_epochs": 0, "fraction": None, "samples": 30}
    r = run_finetune(FinetuneConfig(model="mobilenet_v3_small", init="random", resolution=16, out=str(tmp_path / "b"),
                                    class_subset=(0, 3, 5), **options)).result
    assert r["kind"] == "baseline" and r["classes"] == ["circle", "star", "ring"]
    assert r["n_labelled"] == 30 and r["params"] > 1_000_000 and r["n_eval"] <= 100


@pytest.mark.parametrize("change, error, match", [
    ({"fraction": 1.5}, ConfigError, r"--fraction must be in \(0, 1\]"),
    ({"fraction": None, "samples": 10_000}, ConfigError, "more than the 240 training images"),
    ({"model": "mobilenet_v3_small", "init": "preserved"}, ConfigError, "is a baseline"),
    ({"model": "no/such/run"}, ConfigError, "does not exist"),
    ({"probe_epochs": 2}, ConfigError, r"--probe-epochs must be in 0\.\.epochs-1"),
    ({"probe_epochs": 1, "linear_probe": True}, ConfigError, "--probe-epochs needs a fine-tuning"),
    ({"probe_epochs": 1, "warmup_epochs": 2}, ConfigError, "the epochs after --probe-epochs"),
])
def test_bad_input(run, tiny_finetune_options, change, error, match):
    options = {**tiny_finetune_options, "model": str(run), "out": str(run / "bad"), **change}
    with pytest.raises(error, match=match):
        run_finetune(FinetuneConfig(**options))
    assert not (run / "bad").exists()


def test_run_without_or_with_corrupt_weights(run, tiny_finetune_options):
    (run / "weights.pt").unlink()
    with pytest.raises(CheckpointError, match="has no weights.pt"):
        run_finetune(FinetuneConfig(model=str(run), out=str(run / "x"), **tiny_finetune_options))
    (run / "weights.pt").write_bytes(b"not a state dict")
    with pytest.raises(CheckpointError, match="not a readable PyTorch state dict"):
        run_finetune(FinetuneConfig(model=str(run), out=str(run / "x"), **tiny_finetune_options))
    assert not (run / "x").exists()


def test_a_small_labelled_set_trains_at_least_min_steps(run, tiny_finetune_options):
    """110 labelled images at batch 16 are 6 steps an epoch: --min-steps 30 trains 5 epochs, not 2."""
    options = {**tiny_finetune_options, "min_steps": 30}
    r = run_finetune(FinetuneConfig(model=str(run), init="random", out=str(run / "ft"), **options)).result
    assert r["steps"] == 30 and r["epochs"] == 5 and r["min_steps"] == 30
    epochs = [json.loads(line)["epoch"] for line in (run / "ft" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4, 5]
    # no floor is how fine-tunings ran before it existed: their identity (and protocol id) is unchanged
    assert "min_steps" not in FinetuneConfig(model="m", min_steps=0).identity()
    with pytest.raises(ConfigError, match="--min-steps"):
        FinetuneConfig(model="m", min_steps=-1)


def test_a_stage_network_fine_tunes_from_a_random_start_by_default(tmp_path, run):
    """The stage space's short SSL training fine-tuned worse than a random start: that is its default."""
    from click.testing import CliRunner

    from edgenas.cli.main import cli
    from edgenas.search.config import SearchConfig
    from edgenas.search.runner import run_search
    from edgenas.train.candidates import default_init

    stage = tmp_path / "stage"
    run_search(SearchConfig(out=str(stage), subset=96, resolution=16, projector=(16, 16), epochs=1, batch_size=8,
                            progress=False, threads=1, proxy_samples=4, proxy_batch=16, max_params=40_000,
                            max_macs=4_000_000))
    assert default_init(str(stage)) == "random" and default_init(str(run)) == "preserved"
    assert default_init("fast_cnn") == "random"
    result = CliRunner().invoke(cli, ["finetune", str(stage), "--epochs", "1", "--min-steps", "0",
                                      "--synthetic-size", "120", "--eval-samples", "40", "--threads", "1",
                                      "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    assert "note: --init random" in result.stderr
    assert json.loads(result.stdout)["init"] == "random" and (stage / "finetune" / "random-f0.1-s0").is_dir()


def test_the_finetune_command_defaults_to_the_deploy_recipe(tmp_path):
    """`edgenas finetune` trains the deploy recipe with self-training; --fraction 1 leaves no unlabelled image
    and `evaluate`'s protocol (FinetuneConfig's defaults) stays 40 epochs on the labels alone."""
    from click.testing import CliRunner

    from edgenas.cli.finetune import DEPLOY_EPOCHS, DEPLOY_ROUNDS, DEPLOY_SELECT_FRACTION, DEPLOY_STUDENT_JITTER
    from edgenas.cli.main import cli

    common = ["fast_cnn", "--resolution", "16", "--synthetic-size", "120", "--eval-samples", "40", "--min-steps",
              "0", "--batch-size", "32", "--threads", "1", "--no-progress", "--json"]
    result = CliRunner().invoke(cli, ["finetune", *common, "--fraction", "0.5", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    teacher = json.loads((tmp_path / "a" / "teacher" / "result.json").read_text())
    assert r["unlabelled"] is True and r["epochs"] == DEPLOY_EPOCHS
    assert teacher["epochs"] == DEPLOY_EPOCHS and r["student_jitter"] == DEPLOY_STUDENT_JITTER
    assert r["rounds"] == DEPLOY_ROUNDS and len(r.get("round_accs", [0])) == DEPLOY_ROUNDS
    assert r["n_labelled"] == 60 and (r["n_select"] > 0) == (DEPLOY_SELECT_FRACTION > 0)  # they pick an epoch
    result = CliRunner().invoke(cli, ["finetune", *common, "--fraction", "1", "--epochs", "1",
                                      "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unlabelled"] is False  # and no student to jitter: no error
    saved = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    assert saved["student_jitter"] == 0.0 and saved["rounds"] == 1  # no student, no rounds: no error
    assert FinetuneConfig(model="m").epochs == 40 and FinetuneConfig(model="m").unlabelled is False


def test_an_fp32_cpu_is_told_why_training_is_slow(monkeypatch):
    import torch

    import edgenas.accelerator as accelerator

    cpu = torch.device("cpu")
    monkeypatch.setattr(accelerator, "cpu_bf16", lambda: False)
    note = accelerator.fp32_note(FinetuneConfig(model="m"), cpu)
    assert note.startswith("note: this CPU has no native bf16") and "--time-budget" in note
    assert accelerator.fp32_note(FinetuneConfig(model="m", amp="none"), cpu) is None  # asked for fp32
    assert accelerator.fp32_note(FinetuneConfig(model="m"), torch.device("cuda")) is None
    monkeypatch.setattr(accelerator, "cpu_bf16", lambda: True)
    assert accelerator.fp32_note(FinetuneConfig(model="m"), cpu) is None
