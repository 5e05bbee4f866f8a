"""Whole backtests on the histories real data produce, read through the loader: flat market
days, a name's price repeated for weeks, a late listing, a recorded split, dividends small
and large (read as distributions), a crash. A book that never harvests tracks its
benchmark but for the cash its dividends leave until the next decision; the guarded optimizer keeps its bound or says why, creates no wash sale, reports
on Form 8949 every gain it realized, and its days close every step on the step's values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taxharvest.agents.registry import make_policy
from taxharvest.envs.direct_index import DirectIndexEnv
from taxharvest.market.loader import load_prices
from taxharvest.market.risk import WARMUP_DAYS
from taxharvest.market.synthetic import business_days
from taxharvest.sim.backtest import run_backtest
from taxharvest.sim.quiet import quiet_guardrail

SECTORS, PER_SECTOR = ("Information Technology", "Health Care"), 5
DAYS = WARMUP_DAYS + 140  # the warm-up, then about half a year of weekly decisions
TE_LIMIT = 0.01


@st.composite
def price_files(draw) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A long price frame (``date, ticker, close, adj_close, dividend, split``) and its
    sectors, as a vendor writes them: total returns with a sector factor, then the quirks."""
    n = len(SECTORS) * PER_SECTOR
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.005, 0.015, 0.03]))
    sector = np.repeat(np.arange(len(SECTORS)), PER_SECTOR)
    returns = (rng.normal(0.0, scale, (DAYS, 1)) + rng.normal(0.0, scale, (DAYS, 2))[:, sector]
               + rng.normal(0.0, scale, (DAYS, n)))
    returns[0] = 0.0
    for day in draw(st.lists(st.integers(1, DAYS - 1), max_size=15)):  # flat market days
        returns[day] = 0.0
    name, start, length = draw(st.tuples(st.integers(0, n - 1), st.integers(1, DAYS - 1),
                                         st.integers(5, 40)))
    returns[start:start + length, name] = 0.0  # the same price for weeks
    if draw(st.booleans()):  # a crash after the warm-up: -3% a day for two weeks
        crash = draw(st.integers(WARMUP_DAYS + 5, DAYS - 15))
        returns[crash:crash + 10] -= 0.03
    returns = np.maximum(returns, -0.5)
    dividend_rate = np.zeros((DAYS, n))
    for day, who, rate in draw(st.lists(st.tuples(
            st.integers(1, DAYS - 1), st.integers(0, n - 1),
            st.sampled_from([0.003, 0.02, 0.25, 0.6])), max_size=6)):
        dividend_rate[day, who] = rate  # of the day's price before it: 25% and 60% are large
    split = np.ones((DAYS, n))
    who, day, ratio = draw(st.tuples(st.integers(0, n - 1), st.integers(2, DAYS - 1),
                                     st.sampled_from([2.0, 3.0, 0.5])))
    split[day, who] = ratio
    close, adjusted = np.empty((DAYS, n)), np.empty((DAYS, n))
    close[0], adjusted[0] = np.exp(rng.normal(4.0, 0.5, n)), 1.0
    dividend = np.zeros((DAYS, n))
    for t in range(1, DAYS):
        # a holder of one share at t - 1: (1 + r) P_{t-1} = s (P_t + D_t)
        value = (1.0 + returns[t]) * close[t - 1] / split[t]
        dividend[t] = dividend_rate[t] * value
        close[t] = value - dividend[t]
        adjusted[t] = adjusted[t - 1] * (1.0 + returns[t])
    late = draw(st.integers(0, n - 1))
    listed = np.ones((DAYS, n), bool)
    listed[:draw(st.integers(1, WARMUP_DAYS + 60)), late] = False  # a late listing
    dates = business_days("2020-01-02", DAYS)
    tickers = [f"T{i}" for i in range(n)]
    rows = [(str(dates[t]), tickers[i], close[t, i], adjusted[t, i], dividend[t, i], split[t, i])
            for t in range(DAYS) for i in range(n) if listed[t, i]]
    frame = pd.DataFrame(rows, columns=["date", "ticker", "close", "adj_close", "dividend",
                                        "split"])
    sectors = pd.DataFrame({"ticker": tickers, "sector": [SECTORS[s] for s in sector]})
    return frame, sectors


def loaded(files, folder):
    frame, sectors = files
    frame.to_csv(folder / "prices.csv", index=False)
    sectors.to_csv(folder / "sectors.csv", index=False)
    return load_prices(folder / "prices.csv", folder / "sectors.csv")


def backtest(market, spec: str):
    env = DirectIndexEnv(market=market, profile="mfj-800k", random_start=False,
                         te_limit=TE_LIMIT, episode_years=(DAYS - WARMUP_DAYS) / 252)
    with quiet_guardrail():
        return run_backtest(make_policy(spec, "mfj-800k", env), env, seed=0)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=price_files())
def test_whole_backtests_keep_their_invariants_on_any_history(files, tmp_path):
    market = loaded(files, tmp_path)
    held = backtest(market, "hold")
    assert held.metrics["harvested_losses"] == 0.0
    # every day's gap is the cash of a dividend or a distribution waiting for the next
    # decision (in a crash week a large distribution's reads a point or two): nothing else
    days = held.trajectory.daily
    waiting = days.cash[:-1] / days.portfolio[:-1]
    unexplained = days.active_returns() + waiting * (days.benchmark[1:] / days.benchmark[:-1] - 1)
    assert np.abs(unexplained).max() < 1e-4 and np.abs(np.cumsum(unexplained)).max() < 5e-4

    result = backtest(market, "optimizer")
    m, t = result.metrics, result.trajectory
    assert all(np.isfinite(m[key]) for key in ("tax_alpha", "tracking_error", "max_rolling_te",
                                               "decoupling", "relative_decoupling"))
    assert m["wash_sale_disallowed"] == 0.0  # the program never washes a loss
    if m["max_ex_ante_te"] > TE_LIMIT * (1 + 1e-9):  # only a decision that says why
        assert result.relaxations and all(r["reason"] for r in result.relaxations)
    gains = sum(row["gain"] for row in result.form_8949)
    assert gains == pytest.approx(t.realized_gain, abs=0.01 * (len(result.form_8949) + 1))
    d = t.daily
    ends = np.searchsorted(d.dates, t.dates)
    assert np.array_equal(d.portfolio[ends], t.portfolio)
    assert np.array_equal(d.benchmark[ends], t.benchmark)
    assert np.isfinite(d.portfolio).all() and (d.portfolio > 0).all()
