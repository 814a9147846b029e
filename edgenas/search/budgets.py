"""The budgets of a DARTS search: the target's latency model, the budget term of the loss, and the derived
network widened to fill them, then checked and measured (a mixin of :class:`edgenas.search.darts.DartsSearch`)."""

from __future__ import annotations

import dataclasses

import torch

from edgenas.errors import BudgetError, ConfigError
from edgenas.seeds import derive_seed

__all__ = ["BudgetsMixin"]


class BudgetsMixin:
    """Needs ``cfg``, ``console``, ``profile``, ``net``, ``template``, ``layout`` and ``cost_model`` of the search."""

    def _latency_model(self):
        """The latency model of the target's table (None without --target/--lut); checks the budget can be met.

        Raises:
            ConfigError: --latency-ms without a table for the target.
            LutError: a table for another device, runtime or space version; a missing entry.
            BudgetError: even the fastest network is predicted over --latency-ms.
        """
        from bench.latency_table import MissingEntryError
        from edgenas.latency.target import target_table, warn_if_estimated
        from edgenas.search.cost import LatencyModel, check_latency_feasible

        cfg = self.cfg
        self.latency_table = None
        table = target_table(cfg.lut, self.profile, self.template.space, self.template.space_version)
        if table is None:
            if cfg.latency_ms is not None and self.profile is not None:
                raise ConfigError(
                    f"no latency table for {self.profile.name}/{self.profile.runtime}/fp32: measure one with "
                    f"edgenas lut build --device {self.profile.name} --channels {self.layout.channels} --cells "
                    f"{self.layout.cells} --nodes {cfg.nodes} --resolution {cfg.resolution}, or pass --lut FILE")
            return None
        try:
            model = LatencyModel(self.template, self.net.op_names, table)
        except MissingEntryError as exc:
            if cfg.latency_ms is not None:
                raise
            # without a latency budget the table only reports: a layout it does not cover is a note, not an error
            self.console.print(f"[yellow]no latency prediction: {exc}[/]")
            return None
        self.latency_table = table
        warn_if_estimated(table, self.console)
        if cfg.latency_ms is not None:
            check_latency_feasible(model, self.latency_target, table.label)
        return model

    @property
    def latency_target(self) -> float | None:
        """What the predicted latency must meet: the budget less the prediction margin (--latency-margin)."""
        return None if self.cfg.latency_ms is None else self.cfg.latency_ms * (1 - self.cfg.latency_margin)

    def penalty(self) -> torch.Tensor:
        """Budget hinge on the expected cost: zero while within budget, linear past it."""
        params, macs = self.cost_model.expected(*self.net.arch_weights())
        over = torch.relu(params / self.cfg.max_params - 1) + torch.relu(macs / self.cfg.max_macs - 1)
        if self.latency_model is not None and self.cfg.latency_ms is not None:
            over = over + torch.relu(self.latency_model.expected(*self.net.arch_weights()) / self.latency_target - 1)
        return (self.cfg.cost_weight * over).float()

    def _fill(self, derived, spec):
        """Widen the derived network (function-preserving) while it fits every budget; returns (net, spec, old C).

        The predicted latency counts as a budget with ``--latency-ms``: a width the table does not
        cover is not taken.
        """
        from bench.latency_table import MissingEntryError
        from edgenas.latency.spaces import arch_keys
        from edgenas.search.widen import WidenError, fill_budget, widen

        cfg = self.cfg
        if cfg.channels and cfg.cells:
            return derived, spec, None  # a layout the user fixed is kept as given

        def fits(candidate) -> bool:
            if cfg.latency_ms is None or self.latency_table is None:
                return True
            try:
                return self.latency_table.predict(arch_keys(dataclasses.replace(candidate, projector=()))) \
                    <= self.latency_target
            except MissingEntryError:
                return False

        channels = fill_budget(spec, cfg.max_params, cfg.max_macs, fits)
        if channels <= spec.channels:
            return derived, spec, None
        try:
            wide, wide_spec = widen(derived, spec, channels, seed=derive_seed(cfg.seed, 77))
        except WidenError as exc:
            self.console.print(f"[yellow]{exc}[/]")
            return derived, spec, None
        self.console.print(f"widened the derived network from C={spec.channels} to C={channels} to fill the "
                           "budget (the same function: new channels start disconnected)")
        return wide, wide_spec, spec.channels

    def _latency_summary(self, spec) -> dict:
        """Predicted latency of the derived network and, on a device reachable without a host, measured."""
        from bench.latency_table import MissingEntryError
        from edgenas.latency.spaces import arch_keys
        from edgenas.latency.target import measure_on_target

        if self.latency_model is None:
            return {}
        table = self.latency_table
        try:
            predicted = table.predict(arch_keys(dataclasses.replace(spec, projector=())))
        except MissingEntryError:  # widened past the table's layouts (no --latency-ms: nothing to keep within)
            return {"latency_table": table.label, "latency_table_estimated": table.estimated,
                    "predicted_latency_ms": None, "latency_budget_ms": self.cfg.latency_ms,
                    "measured_latency_ms": None, "latency_measured_on": None,
                    **measure_on_target(spec, self.profile, table, self.console)}
        out = {"predicted_latency_ms": round(predicted, 5), "latency_budget_ms": self.cfg.latency_ms,
               "latency_table": table.label, "latency_table_estimated": table.estimated,
               "measured_latency_ms": None, "latency_measured_on": None}
        if self.cfg.latency_ms is not None and predicted > self.latency_target:  # repair guarantees this; a guard
            raise BudgetError(f"derived network is predicted at {predicted:.4f} ms, over --latency-ms "
                              f"{self.cfg.latency_ms:g} less its {self.cfg.latency_margin:.0%} margin")
        out.update(measure_on_target(spec, self.profile, table, self.console))
        return out
