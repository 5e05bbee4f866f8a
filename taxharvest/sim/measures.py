"""The measures registry: every measure of a run once, with its label, format and how a
summary over several paths aggregates it.

:func:`~taxharvest.sim.metrics.compute_metrics` computes the measures (DOMAIN §4); this
module says what they are called and how they read, for the backtest JSON, ``evaluate``,
``stress``, ``sweep``, ``shadow``, the demo, the model card and the HTML report alike. Each
of those shows a selection of the registry, named here (:data:`BACKTEST_JSON`,
:data:`EVALUATION`, ...), so a measure is added or renamed in one place.

A summary over paths takes the mean of a measure, or its worst path (the largest value)
for the measures that are maxima or limits over each run (``worst``): a mean of per-path
maxima would hide the one path that broke the limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Measure:
    """One measure of a run.

    Attributes:
        key: its name in ``compute_metrics``, the JSON documents and the rows.
        label: what people read (``tax alpha (pre-liquidation)``).
        short: a column header for narrow tables (``tax α``).
        kind: ``fraction``, ``dollars``, ``count``, ``ratio``, ``years`` or ``seconds``.
        spec: the format spec of the value (``.2%``, ``+.2%``, ``,.0f``, ``,``, ``.2f``).
        unit: written after the value: ``/yr`` for an annual rate, ``s``.
        worst: a summary over paths takes the worst (largest) value instead of the mean.
    """

    key: str
    label: str
    short: str
    kind: str
    spec: str
    unit: str = ""
    worst: bool = False

    def format(self, value: float | None) -> str:
        """The value as people read it: ``0.52%/yr``, ``$12,345``, ``1,234`` (``–`` for a
        missing or non-finite value)."""
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "–"
        if self.kind == "count":
            value = int(value)
        text = format(value, self.spec)
        if text.lstrip("+-") == format(0.0, self.spec).lstrip("+-"):  # no "-0.00%"
            text = format(0.0, self.spec)
        return ("$" if self.kind == "dollars" else "") + text + self.unit

    def cell(self, value: float | None) -> str:
        """The value for a narrow column under :attr:`short`: no unit, dollars in thousands."""
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "–"
        if self.kind == "dollars":
            return format(value / 1e3, ",.0f")
        return format(int(value) if self.kind == "count" else value, self.spec)

    def summarize(self, values: Iterable[float]) -> float:
        """The summary over paths: the largest value for a ``worst`` measure, else the mean."""
        values = np.asarray(list(values), float)
        return float(values.max() if self.worst else values.mean())


def _registry(*measures: Measure) -> dict[str, Measure]:
    return {m.key: m for m in measures}


MEASURES: dict[str, Measure] = _registry(
    Measure("tax_alpha", "tax alpha (pre-liquidation)", "tax α", "fraction", ".2%", "/yr"),
    Measure("tax_alpha_net_of_fee", "tax alpha net of the fee", "net α", "fraction", ".2%",
            "/yr"),
    Measure("after_tax_excess_liquidated", "after-tax excess, liquidated", "liquid.",
            "fraction", ".2%", "/yr"),
    Measure("after_tax_excess_liquidated_net_of_fee", "after-tax excess, liquidated, net of "
            "the fee", "net liq.", "fraction", ".2%", "/yr"),
    Measure("after_tax_excess_step_up", "after-tax excess, step-up", "step-up", "fraction",
            ".2%", "/yr"),
    Measure("active_return", "active return (pre-tax)", "active", "fraction", "+.2%", "/yr"),
    Measure("harvested_losses", "harvested losses", "harvest $k", "dollars", ",.0f"),
    Measure("tax_savings", "tax savings (paid into the savings account)", "saved $k",
            "dollars", ",.0f"),
    Measure("harvest_yield", "harvest yield", "yield", "fraction", ".2%", "/yr"),
    Measure("tracking_error", "tracking error (realized)", "TE", "fraction", ".2%"),
    Measure("max_rolling_te", "max rolling TE (63 days)", "max roll.", "fraction", ".2%",
            worst=True),
    Measure("max_ex_ante_te", "max ex-ante TE", "max TE", "fraction", ".2%", worst=True),
    Measure("bias_statistic", "bias statistic (1 = unbiased)", "bias", "ratio", ".2f"),
    Measure("bias_statistic_robust", "bias statistic, robust (median absolute deviation)",
            "bias MAD", "ratio", ".2f"),
    Measure("bias_statistic_calm", "bias statistic, calm steps (no crash)", "bias calm",
            "ratio", ".2f"),
    Measure("bias_statistic_daily", "bias statistic, daily returns (each step's forecast)",
            "bias day", "ratio", ".2f"),
    Measure("te_above_limit", "steps above the TE limit", "above", "fraction", ".1%",
            worst=True),
    Measure("decoupling", "decoupling", "decoupl.", "fraction", ".2%", worst=True),
    Measure("relative_decoupling", "decoupling, relative (growth against the benchmark)",
            "rel. dec.", "fraction", ".2%", worst=True),
    Measure("embedded_gain", "embedded gain", "embedded", "fraction", ".1%"),
    Measure("turnover", "turnover (one-sided)", "turnover", "fraction", ".1%", "/yr"),
    Measure("n_trades", "trades", "trades", "count", ","),
    Measure("wash_sale_disallowed", "wash sale disallowed", "washed $k", "dollars", ",.0f"),
    Measure("guardrail_interventions", "guardrail interventions", "moved", "count", ","),
    Measure("guardrail_relaxed", "guardrail relaxations", "relaxed", "count", ",",
            worst=True),
    Measure("harvest_withheld", "harvest withheld (1 - preference, harvestable stocks)",
            "withheld", "fraction", ".1%"),
    Measure("te_budget_share", "TE budget share asked", "budget", "fraction", ".1%"),
    Measure("years", "years", "years", "years", ".2f"),
    Measure("runtime_s", "runtime", "s", "seconds", ".1f", "s"),
)


def select(*keys: str) -> tuple[Measure, ...]:
    """The measures of ``keys``, in that order (a ``KeyError`` names an unknown one)."""
    return tuple(MEASURES[key] for key in keys)


def keys(measures: Iterable[Measure]) -> tuple[str, ...]:
    return tuple(m.key for m in measures)


# The selections each output shows, in its order.
BACKTEST_JSON = select(  # the headline of ``taxharvest backtest --json``
    "tax_alpha", "active_return", "after_tax_excess_liquidated", "harvest_yield",
    "harvested_losses", "tracking_error", "max_rolling_te", "max_ex_ante_te", "bias_statistic",
    "bias_statistic_robust", "bias_statistic_calm", "bias_statistic_daily", "decoupling",
    "relative_decoupling",
    "embedded_gain", "turnover", "n_trades", "wash_sale_disallowed", "guardrail_interventions",
    "guardrail_relaxed", "harvest_withheld", "te_budget_share", "years", "runtime_s")
BACKTEST_SUMMARY = select(  # the terminal table of ``taxharvest backtest`` (then its pairs)
    "tax_alpha", "after_tax_excess_liquidated", "after_tax_excess_step_up", "active_return",
    "harvested_losses", "harvest_yield", "tracking_error", "max_rolling_te", "max_ex_ante_te",
    "bias_statistic", "te_above_limit", "decoupling", "relative_decoupling", "embedded_gain",
    "turnover")
REPORT = select(  # the measures table of the HTML report
    "tax_alpha", "after_tax_excess_liquidated", "active_return", "harvest_yield",
    "harvested_losses", "tracking_error", "max_rolling_te", "max_ex_ante_te", "decoupling",
    "embedded_gain", "turnover", "n_trades", "wash_sale_disallowed", "guardrail_interventions",
    "guardrail_relaxed", "years")
EVALUATION = select(  # a row of ``taxharvest evaluate`` per path and policy
    "tax_alpha", "after_tax_excess_liquidated", "active_return", "harvest_yield",
    "tracking_error", "bias_statistic", "max_ex_ante_te", "decoupling", "turnover", "n_trades",
    "wash_sale_disallowed", "guardrail_relaxed", "harvest_withheld", "te_budget_share")
SWEEP = select(  # a sweep row per seed: means (worst paths) over its paths
    "tax_alpha", "after_tax_excess_liquidated", "active_return", "harvest_yield",
    "tracking_error", "max_ex_ante_te", "decoupling", "turnover", "n_trades")
SWEEP_REPORT = select("tax_alpha", "after_tax_excess_liquidated", "active_return",
                      "tracking_error", "max_ex_ante_te", "turnover")
BREAKEVEN = select(  # per path and account size of ``taxharvest breakeven``
    "tax_alpha", "tax_alpha_net_of_fee", "after_tax_excess_liquidated",
    "after_tax_excess_liquidated_net_of_fee", "tax_savings", "harvested_losses",
    "max_ex_ante_te")
STRESS = select(  # a stress row per scenario, path, policy and guardrail mode
    "max_ex_ante_te", "max_rolling_te", "decoupling", "relative_decoupling",
    "harvested_losses", "tax_alpha", "guardrail_interventions", "guardrail_relaxed")
SHADOW = select(  # per policy of a historical shadow
    "tax_alpha", "tracking_error", "max_ex_ante_te", "max_rolling_te", "harvested_losses",
    "decoupling", "n_trades", "guardrail_interventions")
DEMO = select(  # the demo's comparison table (80 columns)
    "tax_alpha", "after_tax_excess_liquidated", "active_return", "harvested_losses",
    "tracking_error", "max_ex_ante_te", "n_trades")
CARD = select(  # a model card's comparison with the rules
    "tax_alpha", "after_tax_excess_liquidated", "active_return", "max_ex_ante_te",
    "max_rolling_te", "harvest_yield", "n_trades")
