"""Crash templates: drawdown, duration, volatility, correlation, sector skew, determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from taxharvest.market import (
    GICS_SECTORS,
    CorporateAction,
    MarketData,
    SyntheticMarket,
    get_scenario,
    historical_scenario,
    inject_scenario,
    list_scenarios,
)
from taxharvest.market.universe import RECORDED_DIVIDEND

START = "2027-01-04"
ACUTE = {"black-monday-1987", "gfc-2008", "covid-2020"}  # vol triples or more
TEMPLATES = list_scenarios()


@pytest.fixture(scope="module")
def market() -> MarketData:
    return SyntheticMarket(n_assets=60, years=5, seed=2, crashes=False).generate()


@pytest.fixture(scope="module")
def injected(market) -> dict[str, MarketData]:
    return {name: inject_scenario(market, name, start_date=START, seed=1) for name in TEMPLATES}


def window(market: MarketData, name: str) -> tuple[int, int]:
    start = market.date_index(START)
    return start, start + get_scenario(name).n_days


def realized_vol(returns: np.ndarray) -> float:
    return float(np.std(returns) * np.sqrt(252))


def test_the_five_templates_are_listed():
    assert set(TEMPLATES) == {"black-monday-1987", "dotcom-2000", "gfc-2008", "covid-2020",
                              "bear-2022"}
    assert get_scenario("gfc-2008").n_days == 355 and get_scenario("covid-2020").trough_day == 23
    with pytest.raises(ValueError, match="unknown scenario"):
        get_scenario("tulip-1637")


@pytest.mark.parametrize("name", TEMPLATES)
def test_index_drawdown_duration_and_peak(market, injected, name):
    template, crashed = get_scenario(name), injected[name]
    start, end = window(market, name)
    level = np.cumprod(1 + crashed.index_returns())[start - 1:end]
    level = level / level[0]
    drawdown = (level / np.maximum.accumulate(level) - 1).min()
    assert drawdown == pytest.approx(template.drawdown, abs=0.02)
    assert int(np.argmin(level)) == template.trough_day  # peak-to-trough takes the stated days
    assert level.max() <= 1 + 1e-9  # the day before the window is the peak


@pytest.mark.parametrize("name", TEMPLATES)
def test_volatility_and_correlation_rise(market, injected, name):
    template, crashed = get_scenario(name), injected[name]
    start, end = window(market, name)
    calm = realized_vol(market.index_returns()[1:start][market.regime[1:start] == 0])
    index = crashed.index_returns()
    stated = np.sqrt(np.average([p.vol**2 for p in template.phases],
                                weights=[p.days for p in template.phases]))
    if template.n_days > 20:
        assert realized_vol(index[start:end]) == pytest.approx(stated, rel=0.25)
    assert realized_vol(index[start:end]) >= (3 if name in ACUTE else 1.4) * calm
    block = crashed.total_returns[start:end]
    corr = np.corrcoef(block.T)
    assert corr[~np.eye(len(corr), dtype=bool)].mean() >= 0.5
    assert np.all(crashed.regime[start:end] >= 1) and np.any(crashed.regime[start:end] == 2)


def test_acute_phase_of_2008_is_above_80_percent(market, injected):
    start, _ = window(market, "gfc-2008")
    acute = injected["gfc-2008"].index_returns()[start + 225:start + 283]
    assert realized_vol(acute) >= 0.8 * 0.85


def test_covid_worst_day_and_recovery(market, injected):
    start, end = window(market, "covid-2020")
    index = injected["covid-2020"].index_returns()[start:end]
    assert index.min() == pytest.approx(-0.1198) and int(np.argmin(index)) == 17
    assert np.prod(1 + index) == pytest.approx(1.0, abs=0.002)  # back to the peak


def test_dotcom_is_led_by_technology(market, injected):
    start, end = window(market, "dotcom-2000")
    proxies = injected["dotcom-2000"].proxy_prices
    tech = GICS_SECTORS.index("Information Technology")
    assert proxies[end - 1, tech] / proxies[start - 1, tech] - 1 == pytest.approx(-0.80, abs=0.01)
    others = np.delete(proxies[end - 1] / proxies[start - 1] - 1, tech)
    assert others.mean() > -0.49


def test_prices_proxies_and_history_are_consistent(market, injected):
    crashed = injected["covid-2020"]
    start, _ = window(market, "covid-2020")
    np.testing.assert_array_equal(crashed.prices[:start], market.prices[:start])
    np.testing.assert_array_equal(crashed.proxy_prices[:start], market.proxy_prices[:start])
    ratio = crashed.prices[start:] / crashed.prices[start - 1:-1]
    np.testing.assert_allclose(ratio, 1 + crashed.total_returns[start:])
    after = slice(window(market, "covid-2020")[1], None)
    np.testing.assert_array_equal(crashed.total_returns[after], market.total_returns[after])


def test_determinism_and_random_start(market):
    a = inject_scenario(market, "bear-2022", seed=5)
    b = inject_scenario(market, "bear-2022", seed=5)
    c = inject_scenario(market, "bear-2022", seed=6)
    np.testing.assert_array_equal(a.total_returns, b.total_returns)
    assert a.source == b.source
    assert not np.array_equal(a.total_returns, c.total_returns)


def test_window_must_fit(market):
    with pytest.raises(ValueError, match="needs"):
        inject_scenario(market, "dotcom-2000", start_date=market.dates[-100])
    with pytest.raises(ValueError, match="needs"):
        inject_scenario(market, "covid-2020", start_date=market.dates[0])


def test_injection_keeps_late_listing_and_delisting():
    base = SyntheticMarket(n_assets=40, years=3, seed=4, crashes=False).generate()
    prices, returns = base.prices.copy(), base.total_returns.copy()
    prices[:300, 0] = returns[:300, 0] = np.nan
    returns[300, 0] = 0.0
    prices[400:, 1] = returns[400:, 1] = np.nan
    weights = base.benchmark_weights.copy()
    weights[0] = 0.0
    market = replace(base, prices=prices, total_returns=returns,
                     benchmark_weights=weights / weights.sum())
    crashed = inject_scenario(market, "covid-2020", start_date=market.dates[280], seed=0)
    np.testing.assert_array_equal(np.isnan(crashed.prices), np.isnan(market.prices))
    assert crashed.total_returns[300, 0] == 0.0 and crashed.last_trading_index[1] == 399
    level = np.cumprod(1 + crashed.index_returns())[279:280 + 23]
    assert level[-1] / level[0] - 1 == pytest.approx(-0.3393, abs=0.005)


def test_injection_keeps_payout_yields_of_dividends_and_distributions():
    base = SyntheticMarket(n_assets=40, years=3, seed=4, dividends=True, crashes=False).generate()
    t, i = np.argwhere(base.dividends[300:] > 0)[0] + (300, 0)
    dividends = base.dividends.copy()
    dividends[t, i] = 0.0  # the same payout, as a distribution
    spin_off = CorporateAction(base.tickers[i], base.dates[t], RECORDED_DIVIDEND,
                               base.dividends[t, i], "hand-built")
    market = replace(base, dividends=dividends, corporate_actions=(spin_off,))
    crashed = inject_scenario(market, "covid-2020", start_date=market.dates[280], seed=0)
    (action,) = crashed.corporate_actions
    assert crashed.distributions[t, i] == action.size != spin_off.size
    assert action.size / crashed.prices[t - 1, i] == pytest.approx(
        spin_off.size / base.prices[t - 1, i])
    paid = crashed.prices[1:] + crashed.dividends[1:] + crashed.distributions[1:]
    np.testing.assert_allclose((1 + crashed.total_returns[1:]) * crashed.prices[:-1], paid)
    assert np.array_equal(crashed.dividends[:280], market.dividends[:280])


def test_historical_scenario_is_a_checked_slice(market):
    replay = historical_scenario(market, "2026-03-02", "2026-06-30")
    assert replay.dates[0] == np.datetime64("2026-03-02") and "historical" in replay.source
    with pytest.raises(ValueError, match="not inside"):
        historical_scenario(market, "2019-01-01", "2026-06-30")
