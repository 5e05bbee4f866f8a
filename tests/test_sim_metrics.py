"""The measures of DOMAIN §4 on hand-computable runs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from taxharvest.agents.rules import ThresholdPolicy
from taxharvest.envs.direct_index import DirectIndexEnv
from taxharvest.sim.backtest import run_backtest
from taxharvest.sim.metrics import (
    MIN_TESTED_TE,
    Daily,
    Trajectory,
    compute_metrics,
    crash_steps,
    rolling_te,
    rolling_windows,
    standardized_active_returns,
    tax_alpha,
    yearly_measures,
)
from taxharvest.tax.law import tax_for_year


def FLAT(short: float, long: float, carry: tuple[float, float]) -> float:
    """A flat 20% on the net gain after carryforwards, none on a net loss."""
    return 0.2 * max(0.0, short + long - sum(carry))


def trajectory(portfolio, benchmark, *, days=None, **fields) -> Trajectory:
    """Weekly steps; four calendar years (1461 days = 4 * 365.25) from 2024-01-01 by default."""
    portfolio, benchmark = np.asarray(portfolio, float), np.asarray(benchmark, float)
    steps = len(portfolio)
    if days is None:
        days = np.linspace(0, 1461, steps).round().astype(int)
    zeros = np.zeros(steps)
    base = {
        "dates": np.datetime64("2024-01-01") + np.asarray(days),
        "portfolio": portfolio, "benchmark": benchmark, "savings": zeros,
        "ex_ante_te": zeros, "tax_savings": zeros, "harvested_losses": zeros, "sold": zeros,
        "n_trades": np.zeros(steps, int), "wash_sale_disallowed": zeros,
        "guardrail_status": np.array(["off"] * steps), "step_days": 5,
        "unrealized_gain": 0.0, "realized_gain": 0.0,
    }
    return Trajectory(**{**base, **fields})


def test_savings_account_of_known_size_gives_known_tax_alpha():
    flat = np.full(5, 1e6)
    savings = np.array([0, 0, 0, 0, 1e6 * (1.01**4 - 1)])
    t = trajectory(flat, flat, savings=savings)
    assert t.years == 4.0
    m = compute_metrics(t, year_tax=FLAT, te_limit=0.01, fee=0.005)
    assert m["tax_alpha"] == pytest.approx(0.01, abs=1e-12)
    assert m["tax_alpha_net_of_fee"] == pytest.approx(1.01 * 0.995 - 1)
    assert tax_alpha(2e6, 2e6 * (1.02**4 - 1), 4.0) == pytest.approx(0.02)
    assert m["active_return"] == 0.0 and m["decoupling"] == 0.0


def test_active_return_decoupling_and_step_up():
    bench = 1e6 * 1.01 ** np.linspace(0, 4, 5)
    port = 1e6 * 1.02 ** np.linspace(0, 4, 5)
    m = compute_metrics(trajectory(port, bench), year_tax=FLAT, te_limit=0.01)
    assert m["active_return"] == pytest.approx(0.01)
    assert m["decoupling"] == pytest.approx(1.02**4 - 1.01**4)
    assert m["after_tax_excess_step_up"] == pytest.approx(1.02 / 1.01 - 1)
    assert m["relative_decoupling"] == pytest.approx((1.02 / 1.01) ** 4 - 1)


def test_relative_decoupling_takes_the_index_growth_out():
    """A book 1% ahead of an index that grows five-fold: decoupling, a gap of cumulative
    returns, reads 5 points; the relative measure reads the 1% (and the same 1% in a fall)."""
    bench = 1e6 * np.array([1.0, 1.0, 2.0, 5.0])
    ahead = bench * np.array([1.0, 1.01, 1.01, 1.01])
    m = compute_metrics(trajectory(ahead, bench), year_tax=FLAT, te_limit=0.01)
    assert m["decoupling"] == pytest.approx(0.05)
    assert m["relative_decoupling"] == pytest.approx(0.01)
    falling = bench * np.array([1.0, 1.0, 0.3, 0.2])
    m = compute_metrics(trajectory(falling * np.array([1.0, 0.99, 0.99, 0.99]), falling),
                        year_tax=FLAT, te_limit=0.01)
    assert m["relative_decoupling"] == pytest.approx(0.01)
    assert m["decoupling"] == pytest.approx(0.01)  # the largest gap, before the fall


def test_liquidation_taxes_embedded_gains_net_of_carryforward():
    # portfolio and benchmark both end at 1.5M from 1M; the harvester's basis is 0.1M lower
    values = np.array([1e6, 1.5e6])
    t = trajectory(values, values, days=[0, 1461], unrealized_gain=6e5)
    m = compute_metrics(t, year_tax=FLAT, te_limit=0.01)
    assert m["after_tax_excess_liquidated"] == pytest.approx((1.38 / 1.40) ** 0.25 - 1)
    assert m["embedded_gain"] == pytest.approx(0.4)
    # an unused loss carryforward of 0.1M offsets the extra gain: no cliff left
    t = trajectory(values, values, days=[0, 1461], unrealized_gain=6e5, carry_with=(0.0, 1e5))
    assert compute_metrics(t, year_tax=FLAT, te_limit=0.01)[
        "after_tax_excess_liquidated"] == pytest.approx(0.0, abs=1e-12)
    # reinvested dividends raise the benchmark's basis and lower its tax
    t = trajectory(values, values, days=[0, 1461], unrealized_gain=4e5, benchmark_basis=1.1e6)
    assert compute_metrics(t, year_tax=FLAT, te_limit=0.01)[
        "after_tax_excess_liquidated"] == pytest.approx(0.0, abs=1e-12)


def test_liquidation_is_taxed_in_brackets_and_by_term():
    """A large gain climbs the brackets (the 20% band, NIIT) and short-term lots pay ordinary
    rates: the first dollar's 15% would flatter the harvester's lower basis."""
    def year_tax(short, long, carry):
        return tax_for_year("single-60k", 2028, short, long, *carry).total

    values = np.array([1e6, 1.5e6])
    t = trajectory(values, values, days=[0, 1461], unrealized_gain=6e5)
    unsold = year_tax(0.0, 0.0, (0.0, 0.0))
    ours, bench = year_tax(0.0, 6e5, (0.0, 0.0)) - unsold, year_tax(0.0, 5e5, (0.0, 0.0)) - unsold
    assert ours - bench == pytest.approx((0.20 + 0.038) * 1e5)
    liquidated = compute_metrics(t, year_tax=year_tax, te_limit=0.01)["after_tax_excess_liquidated"]
    assert liquidated == pytest.approx(((1.5e6 - ours) / (1.5e6 - bench)) ** 0.25 - 1)
    assert liquidated < compute_metrics(t, year_tax=lambda s, lo, c: 0.15 * max(0.0, s + lo),
                                        te_limit=0.01)["after_tax_excess_liquidated"]
    short = replace(t, unrealized_short_gain=1e5)
    assert compute_metrics(short, year_tax=year_tax, te_limit=0.01)[
        "after_tax_excess_liquidated"] < liquidated - 1e-3


def test_tracking_error_rolling_and_counts():
    steps = 41
    active = np.where(np.arange(steps - 1) % 2 == 0, 0.01, -0.01)
    port = np.concatenate([[1.0], np.cumprod(1 + active)])  # benchmark flat: active = r
    status = np.array(["off"] + ["unchanged", "projected", "relaxed", "fallback"] * 10)
    t = trajectory(port, np.ones(steps), guardrail_status=status,
                   ex_ante_te=np.linspace(0, 0.02, steps), sold=np.full(steps, 1e4 / steps),
                   realized_gain=-0.04 * 4, n_trades=np.ones(steps, int))
    m = compute_metrics(t, year_tax=FLAT, te_limit=0.01)
    expected = 0.01 * np.sqrt(40 / 39) * np.sqrt(252 / 5)
    assert m["tracking_error"] == pytest.approx(expected)
    window = rolling_te(t)  # 63 trading days = 13 weekly steps
    assert np.isnan(window[:13]).all() and not np.isnan(window[13:]).any()
    assert window[13] == pytest.approx(0.01 * np.sqrt(13 / 12 * (1 - 1 / 169)) * np.sqrt(50.4))
    assert m["max_ex_ante_te"] == pytest.approx(0.02)
    assert m["te_above_limit"] == pytest.approx(20 / 40)
    assert m["guardrail_interventions"] == 30 and m["guardrail_relaxed"] == 10
    assert m["n_trades"] == steps
    assert m["harvest_yield"] == pytest.approx(0.04 / port.mean())
    assert m["turnover"] == pytest.approx(1e4 / 4 / port.mean())
    assert set(yearly_measures(t)) == {"2024", "2025", "2026", "2027", "2028"}


def test_one_stock_one_harvest_known_tax_saving(hand_market):
    # $1M in one stock from 2025-06-09; it drops 20% and stays there into 2026
    prices = np.full((300, 1), 100.0)
    prices[15:] = 80.0
    env = DirectIndexEnv(market=hand_market(prices), profile="single-60k", guardrail=False,
                         warmup_days=5, random_start=False, episode_years=10, decision="rules")
    result = run_backtest(ThresholdPolicy(0.10), env)
    m = result.metrics
    # the $200,000 short-term loss offsets $3,000 of 60k ordinary income a year at 22%
    assert m["harvested_losses"] == pytest.approx(200_000)
    assert {y: b["tax_savings"] for y, b in result.yearly.items()} == pytest.approx(
        {"2025": 660.0, "2026": 660.0})
    assert result.trajectory.savings[-1] == pytest.approx(1320.0)  # benchmark flat after the drop
    assert m["tax_alpha"] == pytest.approx((801_320 / 800_000) ** (1 / m["years"]) - 1)
    assert [d["ticker"] for d in result.decisions] == ["S0"]
    assert result.form_8949[0]["gain"] == -200_000.0 and result.form_8949[0]["part"] == "I"
    assert result.yearly["2025"]["form_8949_rows"] == len(result.form_8949)


def test_cash_flows_are_not_returns():
    """A deposit and a withdrawal on both sides: time-weighted, the book that grows like its
    benchmark has no active return and no decoupling, and its own growth is what it earned."""
    flows = np.array([0.0, 0.0, 500_000.0, 0.0, -300_000.0])
    bench = np.array([1e6, 1.1e6, 1.1e6 * 1.05 + 5e5, (1.1e6 * 1.05 + 5e5) * 1.02, 0.0])
    bench[4] = bench[3] * 0.99 - 3e5
    t = trajectory(bench.copy(), bench, cash_flow=flows)
    measures = compute_metrics(t, year_tax=FLAT, te_limit=0.01)
    assert measures["active_return"] == pytest.approx(0.0, abs=1e-12)
    assert measures["decoupling"] == pytest.approx(0.0, abs=1e-12)
    assert t.index(t.portfolio)[-1] == pytest.approx(1.1 * 1.05 * 1.02 * 0.99)
    ahead = bench.copy()
    ahead[2:] += 10_000.0  # 10,000 earned in step 2 and kept
    shifted = compute_metrics(trajectory(ahead, bench, cash_flow=flows), year_tax=FLAT,
                              te_limit=0.01)
    assert shifted["decoupling"] > 0 and shifted["active_return"] > 0


def standardized_run(z, te, bench_returns=None, **fields) -> Trajectory:
    """A weekly run whose step ``t`` holds a book of ex-ante TE ``te[t]`` and earns the
    standardized active return ``z[t]`` over the benchmark's ``bench_returns[t]``."""
    z, te = np.asarray(z, float), np.broadcast_to(te, np.shape(z))
    bench_returns = np.zeros(len(z)) if bench_returns is None else bench_returns
    active = z * te / np.sqrt(252 / 5)
    bench = 1e6 * np.concatenate([[1.0], np.cumprod(1 + bench_returns)])
    port = 1e6 * np.concatenate([[1.0], np.cumprod(1 + bench_returns + active)])
    return trajectory(port, bench, ex_ante_te=np.concatenate([[0.0], te]), **fields)


def measured(t: Trajectory) -> dict:
    return compute_metrics(t, year_tax=FLAT, te_limit=0.01)


def test_bias_statistic_of_known_standardized_returns():
    rng = np.random.default_rng(3)
    te = rng.uniform(0.002, 0.02, 2000)  # each step's z is read against its own book's TE
    constant = standardized_run(np.full(2000, 0.7), te)
    np.testing.assert_allclose(standardized_active_returns(constant), 0.7)
    assert measured(constant)["bias_statistic"] == pytest.approx(0.0, abs=1e-9)
    m = measured(standardized_run(rng.normal(0, 2, 2000), te))
    assert m["bias_statistic"] == pytest.approx(2.0, abs=0.1)  # standard error ~0.03
    assert m["bias_statistic_robust"] == pytest.approx(2.0, abs=0.15)
    unbiased = measured(standardized_run(rng.normal(0, 1, 2000), te,
                                         rng.normal(0.002, 0.02, 2000)))
    assert unbiased["bias_statistic"] == pytest.approx(1.0, abs=0.05)


def test_a_few_tail_steps_move_the_plain_figure_not_the_robust_one():
    z = np.random.default_rng(4).normal(0, 1, 1000)
    z[::100] = 30.0
    m = measured(standardized_run(z, 0.005))
    assert m["bias_statistic"] > 2.5
    assert m["bias_statistic_robust"] == pytest.approx(1.0, abs=0.1)


def test_books_at_the_benchmark_test_nothing():
    rng = np.random.default_rng(5)
    te = np.where(np.arange(400) < 100, 1e-12, 0.005)  # a warm-up held at the benchmark
    z = rng.normal(0, 1, 400)
    z[:100] = 1e-6 / (1e-12 / np.sqrt(252 / 5))  # a rounding-sized active return: z ~ 1e7
    t = standardized_run(z, te)
    assert np.isnan(standardized_active_returns(t)[:100]).all()
    assert measured(t)["bias_statistic"] == pytest.approx(1.0, abs=0.1)
    held = measured(standardized_run(rng.normal(0, 1, 50), MIN_TESTED_TE / 2))
    assert np.isnan([held["bias_statistic"], held["bias_statistic_robust"],
                     held["bias_statistic_calm"]]).all()


def test_calm_figure_leaves_out_the_crash_steps():
    """A benchmark of steady volatility with a six-week burst and a 30% bear market: the model
    is unbiased when calm and underestimates the TE by 3x in the crashes."""
    rng = np.random.default_rng(6)
    steps = 600
    bench_returns = 0.002 + 0.01 * (-1.0) ** np.arange(steps)
    bench_returns[200:206] *= 6.0  # volatility burst
    bench_returns[400:430] = -0.012  # a slow grind down: -30%, calm weekly moves
    bench_returns[430:] = 0.0
    t = standardized_run(rng.normal(0, 1, steps), 0.005, bench_returns)
    crash = crash_steps(t)
    assert crash[200:206].all() and not crash[:200].any()
    assert not crash[210:400].any()  # the trailing month has left the burst behind
    assert crash[420:].all()  # below -20% from its peak, and it never recovers
    z = rng.normal(0, 1, steps)
    z[crash] *= 3.0
    m = measured(standardized_run(z, 0.005, bench_returns))
    assert m["bias_statistic_calm"] == pytest.approx(1.0, abs=0.1)
    assert m["bias_statistic"] > 1.5


def test_bias_statistic_is_time_weighted():
    """A deposit and a withdrawal into both books are no active return."""
    z = np.random.default_rng(7).normal(0, 1, 300)
    plain = standardized_run(z, 0.005)
    flows = np.zeros(301)
    flows[100], flows[200] = 5e5, -3e5

    def with_flows(values: np.ndarray) -> np.ndarray:
        out = values.copy()
        for step, growth in enumerate(plain.growth(values), start=1):
            out[step] = out[step - 1] * growth + flows[step]
        return out

    flowed = replace(plain, portfolio=with_flows(plain.portfolio),
                     benchmark=with_flows(plain.benchmark), cash_flow=flows)
    np.testing.assert_allclose(standardized_active_returns(flowed),
                               standardized_active_returns(plain))


def test_max_ex_ante_te_is_over_the_decided_books():
    n = 5
    zeros = np.zeros(n)
    t = Trajectory(dates=np.datetime64("2025-01-06") + 7 * np.arange(n),
                   portfolio=np.full(n, 1e6), benchmark=np.full(n, 1e6), savings=zeros,
                   ex_ante_te=np.array([0.07, 0.018, 0.017, 0.016, 0.015]),  # a legacy book
                   tax_savings=zeros, harvested_losses=zeros, sold=zeros,
                   n_trades=np.zeros(n, int), wash_sale_disallowed=zeros,
                   guardrail_status=np.array(["off"] * n), step_days=5,
                   unrealized_gain=0.0, realized_gain=0.0)
    m = compute_metrics(t, year_tax=lambda s, lo, c: 0.0, te_limit=0.02)
    assert m["te_above_limit"] == 0.0
    assert m["max_ex_ante_te"] == pytest.approx(0.018)


def daily_run(active_days: np.ndarray, step_days: int = 5) -> Trajectory:
    """A benchmark flat at $1M and a book earning ``active_days`` each trading day (weekdays
    from 2024-01-01), decided every ``step_days`` days."""
    dates = np.busday_offset("2024-01-01", np.arange(len(active_days) + 1), roll="forward")
    bench = np.full(len(dates), 1e6)
    book = 1e6 * np.concatenate([[1.0], np.cumprod(1.0 + active_days)])
    flows = np.zeros(len(dates))
    steps = np.arange(0, len(dates), step_days)
    return replace(trajectory(book[steps], bench[steps], days=(dates[steps] - dates[0]).astype(int),
                              step_days=step_days),
                   daily=Daily(dates, book, bench, flows))


def test_realized_te_reads_every_day_whatever_the_cadence():
    """Within each week the book gains 1% and gives it back: every weekly step reads no
    active return, DOMAIN's daily TE reads the swings. The 63-day maximum is over every
    day's window, and the per-step series is the window ending with each step."""
    swing = np.tile([0.01, -0.01 / 1.01, 0.0, 0.0, 0.0], 60)  # back to even each week
    swing[150:155] = [0.03, -0.03 / 1.03, 0.0, 0.0, 0.0]  # one rougher week
    t = daily_run(swing)
    m = compute_metrics(t, year_tax=FLAT, te_limit=0.01)
    daily_active = t.daily.active_returns()
    assert np.abs(t.active_returns()).max() < 1e-12
    assert m["tracking_error"] == pytest.approx(np.std(daily_active, ddof=1) * np.sqrt(252))
    windows = np.lib.stride_tricks.sliding_window_view(daily_active, 63)
    every = windows.std(axis=1, ddof=1) * np.sqrt(252)
    assert m["max_rolling_te"] == pytest.approx(every.max())
    te, first, last = rolling_windows(t)
    assert len(te) == len(daily_active) - 62 and last[0] == t.daily.dates[63]
    assert first[0] == t.daily.dates[1]
    per_step = rolling_te(t)
    assert np.isnan(per_step[:13]).all()  # the first step with 63 days behind it: day 65
    at = np.searchsorted(t.daily.dates, t.dates[13])
    assert per_step[13] == pytest.approx(every[at - 63])
    stepwise = replace(t, daily=None)  # the steps alone see nothing
    assert compute_metrics(stepwise, year_tax=FLAT, te_limit=0.01)["tracking_error"] < 1e-10
    assert yearly_measures(t)["2024"]["te"] == pytest.approx(m["tracking_error"], rel=0.05)
    # forecast at 1%, the days test it at their horizon: the steps see no active return
    forecast = replace(t, ex_ante_te=np.full(len(t.dates), 0.01))
    m = compute_metrics(forecast, year_tax=FLAT, te_limit=0.01)
    assert m["bias_statistic_daily"] == pytest.approx(m["tracking_error"] / 0.01)
    assert m["bias_statistic"] < 1e-8


def test_decoupling_reads_the_largest_gap_of_any_day():
    """A book 2% ahead for one day inside a week, even again by the week's close."""
    active = np.zeros(50)
    active[21], active[22] = 0.02, -0.02 / 1.02
    t = daily_run(active)
    m = compute_metrics(t, year_tax=FLAT, te_limit=0.01)
    assert m["decoupling"] == pytest.approx(0.02) and m["relative_decoupling"] == pytest.approx(0.02)
    assert compute_metrics(replace(t, daily=None), year_tax=FLAT,
                           te_limit=0.01)["decoupling"] < 1e-12
