"""The measures registry: every computed measure is registered once and reads as intended."""

from __future__ import annotations

import math

import numpy as np
import pytest

from taxharvest.sim import measures
from taxharvest.sim.measures import MEASURES, Measure
from taxharvest.sim.metrics import Trajectory, compute_metrics


def test_every_computed_measure_is_registered_and_every_selection_is_known():
    n = 5
    t = Trajectory(dates=np.datetime64("2025-01-06") + 7 * np.arange(n),
                   portfolio=np.linspace(1e6, 1.1e6, n), benchmark=np.linspace(1e6, 1.08e6, n),
                   savings=np.zeros(n), ex_ante_te=np.full(n, 0.005), tax_savings=np.zeros(n),
                   harvested_losses=np.zeros(n), sold=np.zeros(n), n_trades=np.zeros(n, int),
                   wash_sale_disallowed=np.zeros(n), guardrail_status=np.array(["ok"] * n),
                   step_days=5, unrealized_gain=0.0, realized_gain=0.0)
    computed = set(compute_metrics(t, year_tax=lambda s, lo, c: 0.2 * max(0.0, s + lo),
                                   te_limit=0.01))
    computed |= {"runtime_s", "harvest_withheld", "te_budget_share"}  # added by the run
    assert computed == set(MEASURES)
    for name in dir(measures):
        selection = getattr(measures, name)
        if name.isupper() and isinstance(selection, tuple):
            assert all(isinstance(m, Measure) and MEASURES[m.key] is m for m in selection)


def test_formats_cells_and_summaries():
    assert MEASURES["tax_alpha"].format(0.0123) == "1.23%/yr"
    assert MEASURES["active_return"].format(-0.00001) == "+0.00%/yr"
    assert MEASURES["harvested_losses"].format(12345.6) == "$12,346"
    assert MEASURES["n_trades"].format(1234) == "1,234"
    assert MEASURES["bias_statistic"].format(1.2345) == "1.23"
    assert MEASURES["bias_statistic"].cell(0.98) == "0.98"
    assert MEASURES["max_ex_ante_te"].format(math.nan) == "–"
    assert MEASURES["harvested_losses"].cell(123_456.0) == "123"
    assert MEASURES["max_ex_ante_te"].summarize([0.008, 0.0142]) == 0.0142
    assert MEASURES["tax_alpha"].summarize([0.01, 0.02]) == pytest.approx(0.015)
    worst = {m.key for m in MEASURES.values() if m.worst}
    assert worst == {"max_rolling_te", "max_ex_ante_te", "te_above_limit", "decoupling",
                     "relative_decoupling", "guardrail_relaxed"}
