"""Shared test settings and fixtures.

Test files mirror the packages by name: ``test_<package>_<module>.py`` (``test_sim_backtest``
tests ``taxharvest/sim/backtest.py``). Markets are built here, once a session:

- ``market``: the small workflow market (24 stocks, one year, synthetic seed 5); a test
  module that needs another one defines its own ``market`` fixture, which overrides it;
- ``backtest_market``: 30 stocks over a year (seed 7);
- ``generated``: ``SyntheticMarket(**options).generate()``, built once per options;
- ``hand_market``: a builder of one-sector markets with given daily prices;
- ``price_files``: a long-format prices CSV and its sectors file (22 stocks, about 1.5
  years, one unrecorded 2-for-1 split), the files of the CLI tests on real-format data.
"""

from __future__ import annotations

import taxharvest  # noqa: F401  (first: it pins the BLAS threads and CPU target before numpy loads)

# isort: split

import os
from pathlib import Path
from types import SimpleNamespace

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


SPLIT_ROW = 200  # the unrecorded split of ``price_files``


@pytest.fixture(scope="session")
def price_files(tmp_path_factory) -> SimpleNamespace:
    """``prices`` (CSV: date, ticker, close, adj_close, dividend, split) and ``sectors``
    written from ``synthetic_market(22, 1.0, seed=11)``; the first ticker's close halves on
    row ``SPLIT_ROW`` without a recorded split (its adjusted close does not), which the
    loader infers as a 2-for-1 split. Also ``dates``, ``tickers``, ``split`` (ticker, date)."""
    mk = synthetic_market(22, 1.0, seed=11)
    folder = tmp_path_factory.mktemp("price_files")
    close = mk.prices.copy()
    close[SPLIT_ROW:, 0] /= 2
    adjusted = np.cumprod(1 + np.nan_to_num(mk.total_returns), axis=0)
    lines = ["date,ticker,close,adj_close,dividend,split"]
    for t, day in enumerate(mk.dates):
        lines += [f"{day},{name},{close[t, i]:.6f},{adjusted[t, i]:.8f},{mk.dividends[t, i]:g},1"
                  for i, name in enumerate(mk.tickers)]
    prices, sectors = folder / "prices.csv", folder / "sectors.csv"
    prices.write_text("\n".join(lines) + "\n")
    sectors.write_text("ticker,sector\n" + "".join(
        f"{name},{mk.sector_names[s]}\n" for name, s in zip(mk.tickers, mk.sectors, strict=True)))
    return SimpleNamespace(prices=prices, sectors=sectors, dates=mk.dates, tickers=mk.tickers,
                           split=(mk.tickers[0], str(mk.dates[SPLIT_ROW])))
