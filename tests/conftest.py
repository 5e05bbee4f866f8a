"""Shared test settings and fixtures.

Test files mirror the packages by name: ``test_<package>_<module>.py`` (``test_sim_backtest``
tests ``taxharvest/sim/backtest.py``). Markets are built here, once a session:

- ``market``: the small workflow market (24 stocks, one year, synthetic seed 5); a test
  module that needs another one defines its own ``market`` fixture, which overrides it;
- ``backtest_market``: 30 stocks over a year (seed 7);
- ``generated``: ``SyntheticMarket(**options).generate()``, built once per options;
- ``hand_market``: a builder of one-sector markets with given daily prices.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from taxharvest.market.synthetic import SyntheticMarket, business_days
from taxharvest.market.universe import MarketData, sector_proxies
from taxharvest.workflows.markets import synthetic_market

# The real S&P 500 development data lives beside the project, never inside it; tests that
# read it skip when it is absent.
SP500_DIR = Path(os.environ.get(
    "TAXHARVEST_SP500_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sp500"))


@pytest.fixture(scope="session")
def market() -> MarketData:
    return synthetic_market(24, 1.0, seed=5)


@pytest.fixture(scope="session")
def backtest_market() -> MarketData:
    return synthetic_market(30, 1.0, seed=7)


@pytest.fixture(scope="session")
def generated():
    built: dict[tuple, MarketData] = {}

    def generate(**options) -> MarketData:
        key = tuple(sorted(options.items()))
        if key not in built:
            built[key] = SyntheticMarket(**options).generate()
        return built[key]

    return generate


def build_hand_market(prices: np.ndarray, start: str = "2025-06-02") -> MarketData:
    """Stocks of one sector with the given daily prices; its basket is the proxy."""
    t, n = prices.shape
    returns = np.vstack([np.zeros((1, n)), prices[1:] / prices[:-1] - 1])
    sectors, weights = np.zeros(n, int), np.full(n, 1 / n)
    proxy, names = sector_proxies(returns, sectors, weights, ("Information Technology",))
    return MarketData(
        dates=business_days(start, t), tickers=tuple(f"S{i}" for i in range(n)),
        sectors=sectors, sector_names=("Information Technology",), prices=prices,
        dividends=np.zeros((t, n)), splits=np.ones((t, n)), total_returns=returns,
        benchmark_weights=weights, proxy_prices=proxy, proxy_names=names,
        regime=np.zeros(t, np.int8), source="hand-built")


@pytest.fixture(scope="session")
def hand_market():
    return build_hand_market
