"""The proxy strategy: rank random architectures without labels, then train the best one.

On the stage space and real images it races the first ``--race`` (8) sampled networks
on rotation prediction (:mod:`edgenas.search.race`) and keeps the best learner; else,
or with ``--race 0``, the zero-cost ranking below decides.

``edgenas search --strategy proxy`` samples ``--proxy-samples`` random networks
of the cell space at the layout the budgets give (:mod:`edgenas.search.layout`),
or of the stage space (``--space stages-cnn``) each scaled to fill the budgets,
scores each untrained network with the label-free proxies of ``--proxies``
(:mod:`edgenas.search.proxies`; their average rank decides), widens or narrows
the winner to fill the budget, and trains it with the search's SSL objective
for ``--epochs`` over the unlabelled images: the network it writes carries
those weights, as the other strategies' do. Every score is appended to
``proxy.jsonl`` as it is computed, and the training is its own resumable stage
(``train/``), so an interrupted search loses neither.

With ``--latency-ms`` (stage space), every candidate is scaled to the latency budget
too, predicted by the target's table of the space (:mod:`edgenas.latency.stages`; the
table as it was when the search began is kept in ``latency_table.json``, so a resumed
search ranks the same candidates); the winner's blocks are then measured into the table
when the target is reachable, and it is narrowed until the table says it fits.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import torch

from edgenas.errors import ConfigError
from edgenas.rundir import append_jsonl, atomic_torch_save, atomic_write_text, read_jsonl
from edgenas.search.loop import SearchLoop, SearchResult, resolve_target
from edgenas.seeds import derive_seed
from edgenas.space.spec import SPACE_NAME

__all__ = ["CKPT_VERSION", "ProxySearch", "race_score"]

CKPT_VERSION = 1
#: the proxy stage's own stream of seeds
PROXY_STREAM = 5


def race_score(cfg, spec, images: torch.Tensor, mean, std, device: torch.device, steps: int) -> dict[str, float]:
    """One candidate's run of the search's rotation race (:func:`edgenas.search.race.rotation_accuracy` with
    the race's ``steps`` and the search's seed and precision): what ``race.jsonl`` records, and what
    benchmarks/race_score.py reruns for any network."""
    from edgenas.accelerator import native_bf16
    from edgenas.search.race import rotation_accuracy

    return rotation_accuracy(spec, images, mean, std, steps, seed=derive_seed(cfg.seed, PROXY_STREAM, 4),
                             device=device, bf16=native_bf16(device))


class ProxySearch(SearchLoop):
    """State of one proxy search; :func:`edgenas.search.runner.run_search` drives it."""

    def prepare(self) -> None:
        from edgenas.accelerator import check_accelerator_options, resolve_device
        from edgenas.data.views import BarlowTwinsViews, channel_stats
        from edgenas.plugins import import_plugins
        from edgenas.search.layout import choose_layout
        from edgenas.search.proxies import PROXIES
        from edgenas.search.race import HELD, MIN_TRAIN
        from edgenas.ssl import two_view_loss
        from edgenas.space.ops import OPS

        cfg = self.cfg
        import_plugins(cfg.plugins)
        self.cells = cfg.search_space == SPACE_NAME
        if self.cells:
            for name in cfg.ops:
                OPS.get(name)
        for name in cfg.proxies:
            PROXIES.get(name)
        self.profile = resolve_target(cfg.target)
        self.device = resolve_device(cfg.device)
        check_accelerator_options(cfg, self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        data = cfg.load_images(holdout="train")
        self.race_n = cfg.race_for(len(data))  # whether it races; how many is settled once rank() sees the candidates
        if self.race_n:
            if len(data) < HELD + MIN_TRAIN:
                raise ConfigError(f"--race trains on rotations of the images and scores {HELD} others: "
                                  f"{len(data)} images are too few; raise --subset or leave --race 0")
        elif cfg.race is None and cfg.race_for(HELD + MIN_TRAIN):  # a default race the images are too few for
            self.console.print(f"[yellow]note[/]: {len(data)} images are too few to race candidates on rotation "
                               f"prediction (it needs {HELD + MIN_TRAIN:,}); the zero-cost proxies alone rank them")
        if len(data) < max(2 * cfg.batch_size, cfg.proxy_batch):
            raise ConfigError(f"{len(data)} images are too few for --batch-size {cfg.batch_size} and "
                              f"--proxy-batch {cfg.proxy_batch}; raise --subset")
        self.images, self.classes, self.data_name = data.images, list(data.classes), data.name
        self.num_classes = len(self.classes)
        self.mean, self.std = channel_stats(self.images)
        self.views = BarlowTwinsViews(resolution=cfg.resolution, mean=self.mean, std=self.std)
        self.criterion = two_view_loss(cfg.ssl, cfg)
        self.layout = choose_layout(cfg, self.num_classes) if self.cells else None
        self.latency = None
        if cfg.latency_ms is not None:
            self._prepare_latency()
        self.steps_per_epoch = len(self.images) // cfg.batch_size
        self.total_steps = self.steps_per_epoch * cfg.epochs

    def _prepare_latency(self) -> None:
        """The growing tables (the target's, then each ``--latency-also``), their budgets, and the predictors the
        candidates are scaled with (kept in the run: ``latency_table.json``, ``latency_table_also<i>.json``)."""
        from bench.latency_table import LatencyTable
        from edgenas.latency.files import parse_also
        from edgenas.latency.stages import StagePredictor, stage_search_table

        cfg = self.cfg
        tables = [(None, cfg.latency_ms), *parse_also(cfg.latency_also)]
        self.tables, self.snapshots, self.budgets = [], [], []
        for i, (lut, budget) in enumerate(tables):
            growing = stage_search_table(cfg, self.profile, self.console, self.num_classes, lut=lut)
            path = self.run_dir / ("latency_table.json" if i == 0 else f"latency_table_also{i}.json")
            if path.exists():  # a resumed search scales its candidates as it did when it began
                snapshot = LatencyTable.load(path)
            else:
                snapshot = LatencyTable(json.loads(growing.table.to_json()), growing.table.label)
                atomic_write_text(path, snapshot.to_json())
            self.tables.append(growing)
            self.snapshots.append(StagePredictor(snapshot))
            self.budgets.append(budget)
        self.latency = self.tables[0]

    def fits_latency(self, spec) -> bool:
        """Whether the predictors the candidates are scaled with put ``spec`` within every latency budget."""
        margin = 1 - self.cfg.latency_margin
        return all(p.predict(spec) <= b * margin for p, b in zip(self.snapshots, self.budgets))

    # --- ranking ----------------------------------------------------------------------------------------------
    def candidates(self) -> list:
        """The ``--proxy-samples`` random architectures (seeded), with the SSL projector: cell networks at the
        chosen layout, or stage networks each scaled to fill the budgets (:mod:`edgenas.space.stage_sampling`)."""
        from edgenas.latency.keys import Layout
        from edgenas.latency.spaces import sample_specs

        cfg = self.cfg
        if not self.cells:
            from edgenas.space.stage_sampling import sample_stage_specs

            return sample_stage_specs(cfg.proxy_samples, derive_seed(cfg.seed, PROXY_STREAM), cfg.max_params,
                                      cfg.max_macs, cfg.resolution, self.num_classes, cfg.projector,
                                      fits=self.fits_latency if self.latency is not None else None)
        layout = Layout(channels=self.layout.channels, cells=self.layout.cells, nodes=cfg.nodes,
                        resolution=cfg.resolution, stem_multiplier=cfg.stem_multiplier, num_classes=self.num_classes)
        specs = sample_specs(cfg.proxy_samples, derive_seed(cfg.seed, PROXY_STREAM), [layout], cfg.ops)
        return [dataclasses.replace(s, projector=cfg.projector) for s in specs]

    def rank(self) -> tuple[Any, list[dict]]:
        """Score every candidate not scored yet (appended to ``proxy.jsonl``); the winner and all records."""
        from edgenas.data.views import normalize_batch
        from edgenas.models import build
        from edgenas.progress import ProgressBar
        from edgenas.search.proxies import rank_average, score

        cfg = self.cfg
        path = self.run_dir / "proxy.jsonl"
        specs = self.candidates()
        if self.race_n:  # small candidates (a tight budget) race in greater number, longer, with NASWOT's help
            from edgenas.search.config import SMALL_MACS, SMALL_RACE
            from edgenas.search.race import small_candidates

            small = small_candidates(specs, SMALL_RACE, SMALL_MACS)
            self.race_n, self.race_steps = cfg.race_for(len(self.images), small), cfg.race_steps_for(small)
            self.race_by = cfg.race_by_for(small)
        if self.race_n and cfg.race_from == "sample":  # the race decides alone: score only the raced
            specs = specs[:self.race_n]
        done = {r["sha256"]: r for r in read_jsonl(path) if r.get("proxies") == list(cfg.proxies)}
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, PROXY_STREAM, 1))
        rows = torch.randperm(len(self.images), generator=g)[:cfg.proxy_batch]
        batch = normalize_batch(self.images[rows], self.mean, self.std).to(self.device,
                                                                           memory_format=torch.channels_last)
        todo = [s for s in specs if s.sha256() not in done]
        t0 = time.perf_counter()
        with ProgressBar("proxy", len(specs), len(specs) - len(todo), "scoring", self.console,
                         enabled=cfg.progress) as bar:
            for i, spec in enumerate(todo):
                torch.manual_seed(derive_seed(cfg.seed, PROXY_STREAM, 2, i))
                net = build(spec).to(self.device, memory_format=torch.channels_last)
                record = {"sha256": spec.sha256(), "proxies": list(cfg.proxies), **score(net, batch, cfg.proxies),
                          "spec": spec.to_dict()}
                append_jsonl(path, record)
                done[record["sha256"]] = record
                bar.update(1, info=f"{(i + 1) / (time.perf_counter() - t0):.1f} archs/s")
                if self.on_step is not None:
                    self.on_step(len(done))
        records = [done[s.sha256()] for s in specs]
        ranks = rank_average(records, cfg.proxies)
        best = min(range(len(specs)), key=lambda i: ranks[i])
        for r, rank in zip(records, ranks):
            r["rank"] = rank
        if self.race_n:
            best = self.race(specs, records, ranks)
        return specs[best], records

    def race(self, specs: list, records: list[dict], ranks: list[float]) -> int:
        """Train the ``--race`` best of the zero-cost ranking (``--race-from sample``: the first sampled) on
        rotation prediction (each appended to ``race.jsonl``); the index of the pick by ``--race-by`` (the best
        rotation learner, or the best rank average of rotation and NASWOT; label-free)."""
        from edgenas.progress import ProgressBar
        from edgenas.search.race import FLOOR, race_choice

        cfg = self.cfg
        steps = self.race_steps
        path, key = self.run_dir / "race.jsonl", f"rot_acc_{steps}"
        done = {r["sha256"]: r for r in read_jsonl(path) if r.get("steps") == steps}
        order = sorted(range(len(specs)), key=lambda i: ranks[i]) if cfg.race_from == "top" else range(len(specs))
        raced = [(i, records[i]["sha256"]) for i in order[:self.race_n]]  # the sample's order is random (seeded)
        t0 = time.perf_counter()
        with ProgressBar("race", len(raced), sum(sha in done for _, sha in raced), "rotation training",
                         self.console, enabled=cfg.progress) as bar:
            for i, sha in raced:
                if sha in done:
                    continue
                done[sha] = {"sha256": sha, "steps": steps,
                             **race_score(cfg, specs[i], self.images, self.mean, self.std, self.device, steps)}
                append_jsonl(path, done[sha])
                bar.update(1, info=f"{done[sha][key]:.1f}% rotation")
                if self.on_step is not None:
                    self.on_step(len(records) + sum(sha in done for _, sha in raced))
        for i, sha in raced:
            records[i]["rotation"] = done[sha][key]
        self.race_s = time.perf_counter() - t0
        index = [i for i, _ in raced]
        learner = index[race_choice([records[i] for i in index], "rotation")]
        best = index[race_choice([records[i] for i in index], self.race_by)]
        self.race_alone = None if best == learner else specs[learner].describe()  # what rotation alone would pick
        self.race_decided = records[learner]["rotation"] >= FLOOR
        if not self.race_decided:
            best = min((i for i, _ in raced), key=lambda i: ranks[i])
            self.console.print(f"[yellow]note[/]: no raced candidate learned to tell the turns apart (best "
                               f"{max(records[i]['rotation'] for i, _ in raced):.1f}%, chance 25%, needed "
                               f"{FLOOR:g}%): the zero-cost ranking of the raced decides")
        return best

    # --- training of the winner -------------------------------------------------------------------------------
    def save_checkpoint(self, done: bool) -> None:
        atomic_torch_save({"version": CKPT_VERSION, "strategy": "proxy", "config": self.cfg.identity(),
                           "done": done}, self.ckpt_path)

    def load_checkpoint(self) -> dict[str, Any] | None:
        from edgenas.rundir import load_checkpoint

        return load_checkpoint(self.ckpt_path, CKPT_VERSION, self.cfg.identity(), "a proxy search",
                               {"strategy": "proxy"})

    def train(self) -> tuple[float, bool]:
        """Rank, then train the winner (at the width that fills the budget) with the SSL objective."""
        from edgenas.models import build
        from edgenas.search.widen import fill_budget, widened_spec
        from edgenas.train.ssl_stage import SSLStage, run_ssl_stage

        cfg = self.cfg
        resumed = self.ckpt_path.exists() or (self.run_dir / "proxy.jsonl").exists()
        t0 = time.perf_counter()
        winner, self.records = self.rank()
        self.rank_s = time.perf_counter() - t0
        if self.cells:  # sampled at the layout's width: widened or narrowed to the budgets
            channels = winner.channels if cfg.channels and cfg.cells else fill_budget(
                winner, cfg.max_params, cfg.max_macs, least=4)
            winner = widened_spec(winner, channels)
        if self.latency is not None:
            winner = self.meet_latency(winner)
        self.spec = dataclasses.replace(winner, projector=cfg.projector)
        torch.manual_seed(derive_seed(cfg.seed, PROXY_STREAM, 3))
        self.net = build(self.spec).to(self.device, memory_format=torch.channels_last)
        stage = SSLStage(name="train", epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, lr_min=cfg.lr_min,
                         momentum=cfg.momentum, weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip,
                         seed=cfg.seed, rows=len(self.images), stream=PROXY_STREAM,
                         warmup_steps=max(1, self.total_steps // 10))
        self.trained = run_ssl_stage(self.net, stage, self.images, torch.arange(len(self.images)), self.views,
                                     self.criterion, self.run_dir / "train", self.device,
                                     arch_sha256=self.spec.sha256(), progress=cfg.progress, console=self.console)
        return time.perf_counter() - t0, resumed

    def meet_latency(self, spec):
        """``spec`` narrowed until every table (its blocks measured when the target is reachable, the fit of the
        others otherwise) puts it within its latency budget.

        Raises:
            BudgetError: no width of this shape meets the budgets.
        """
        from edgenas.errors import BudgetError
        from edgenas.latency.stages import StagePredictor
        from edgenas.space.stage_sampling import fill_stages

        cfg, margin = self.cfg, 1 - self.cfg.latency_margin
        for attempt in range(6):
            predicted = [self._predict_latency(t, spec) for t in self.tables]
            over = [i for i, ((ms, _), b) in enumerate(zip(predicted, self.budgets)) if ms > b * margin]
            if not over:
                self.predicted = predicted
                self.predicted_ms, self.blocks_measured = predicted[0]
                return spec
            predictors = [StagePredictor(t.table) for t in self.tables]  # refit with the blocks just measured
            goals = [b * margin * 0.97 ** attempt for b in self.budgets]
            narrower = fill_stages(spec, cfg.max_params, cfg.max_macs,
                                   fits=lambda s: all(p.predict(s) <= g for p, g in zip(predictors, goals)))
            if narrower is None:
                break
            i = over[0]
            self.console.print(f"the winner is predicted at {predicted[i][0]:.4f} ms by {self._table_name(i)} once "
                               f"its blocks are in it, over {self.budgets[i] * margin:.4f} ms: narrowed to "
                               f"{narrower.describe()}")
            spec = narrower
        budgets = " and ".join(f"{b:g} ms ({self._table_name(i)})" for i, b in enumerate(self.budgets))
        raise BudgetError(f"no width of {spec.describe()} is predicted within --latency-ms {budgets} less its "
                          f"{cfg.latency_margin:.0%} margin; raise the budget")

    def _table_name(self, i: int) -> str:
        table = self.tables[i].table
        return str(table.source or table.label)

    @staticmethod
    def _predict_latency(growing, spec) -> tuple[float, bool]:
        """(predicted ms, whether every block of ``spec`` is in the table): measured into it where possible."""
        from bench.latency_table import MissingEntryError
        from edgenas.latency.stages import StagePredictor

        try:
            return growing.predict(spec), True
        except MissingEntryError:  # a measured table whose device is out of reach: the fit stands in
            return StagePredictor(growing.table).predict(spec), False

    def _latency_summary(self, spec) -> dict:
        from edgenas.latency.target import measure_on_target

        if self.latency is None:
            return measure_on_target(spec, self.profile, None, self.console)
        table = self.latency.table
        also = []
        for growing, budget, (ms, measured) in list(zip(self.tables, self.budgets, self.predicted))[1:]:
            t = growing.table
            on = measure_on_target(spec, self.profile, t, self.console)
            also.append({"latency_table": t.label, "latency_budget_ms": budget, "predicted_latency_ms": round(ms, 5),
                         "budget_share": round(ms / budget, 4),
                         "latency_table_estimated": t.estimated, "latency_blocks_in_table": measured,
                         **({"measured_latency_ms": on["measured_latency_ms"]} if on else {})})
        return {"predicted_latency_ms": round(self.predicted_ms, 5), "latency_budget_ms": self.cfg.latency_ms,
                "latency_table": table.label, "latency_table_estimated": table.estimated,
                "latency_blocks_in_table": self.blocks_measured, **({"latency_also": also} if also else {}),
                **measure_on_target(spec, self.profile, table, self.console)}

    def finish(self, elapsed: float, resumed: bool) -> SearchResult:
        from edgenas.profiler import count_macs, count_params
        from edgenas.report import write_markdown

        cfg = self.cfg
        spec = dataclasses.replace(self.spec, extra=(("classes", ",".join(self.classes)),
                                                     ("mean", ",".join(f"{m:.5f}" for m in self.mean)),
                                                     ("std", ",".join(f"{s:.5f}" for s in self.std))))
        deploy = self.net.deployable().cpu()
        params, macs = count_params(deploy), count_macs(deploy, cfg.resolution)
        spec.save(self.run_dir / "arch.json")
        atomic_torch_save({k: v.detach().cpu() for k, v in self.net.state_dict().items()}, self.run_dir / "weights.pt")
        ranks = sorted(self.records, key=lambda r: r["rank"])
        summary = {
            "run_dir": str(self.run_dir), "strategy": "proxy", "target": cfg.target,
            "target_device": getattr(self.profile, "name", None), "data": self.data_name,
            "images": int(len(self.images)), "params": params, "macs": macs, "max_params": cfg.max_params,
            "max_macs": cfg.max_macs, "budget_share": {"params": round(params / cfg.max_params, 4),
                                                       "macs": round(macs / cfg.max_macs, 4),
                                                       **({"latency": round(self.predicted_ms / cfg.latency_ms, 4)}
                                                          if self.latency is not None else {})},
            "space": spec.space, "proxies": list(cfg.proxies),
            **({"layout": self.layout.to_dict(), "channels": spec.channels} if self.cells else
               {"architecture": spec.describe()}),
            "proxy_samples": len(self.records), "proxy_rank_s": round(self.rank_s, 1),
            "proxy_best": {k: ranks[0][k] for k in cfg.proxies},
            **({"race": {"candidates": self.race_n, "from": cfg.race_from, "steps": self.race_steps,
                         "seconds": round(self.race_s, 1),
                         "best_rotation_acc": max(r["rotation"] for r in self.records if "rotation" in r),
                         "decided_by": self.race_by if self.race_decided else "zero-cost",
                         **({"rotation_alone": self.race_alone} if self.race_decided and self.race_alone else {})}}
               if self.race_n else {}),
            "epochs": cfg.epochs, "steps": self.trained["steps"], "elapsed_s": round(elapsed, 2),
            "images_per_s_median": None, "final_train_loss": self.trained["final_loss"],
            "device": str(self.device), "torch": torch.__version__, "arch_sha256": spec.sha256(),
            **self._latency_summary(spec),
        }
        atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        write_markdown(self.run_dir)
        self.save_checkpoint(done=True)
        return SearchResult(self.run_dir, spec, params, macs, elapsed, resumed, summary)

