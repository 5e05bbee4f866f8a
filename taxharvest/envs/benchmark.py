"""The benchmark the account tracks: a total-return index of the stocks.

Convention (the one the S&P 500 total-return index follows): the index holds units of its
members; dividends and other distributions are reinvested across the whole index at the
day's close, in proportion to its weights. So its weights drift with *price* returns and its
value grows with *total* returns. The account follows the same convention: it receives
distributions as cash and invests its cash toward the benchmark weights, so a book that
never harvests tracks the benchmark up to the days its cash waits for the next decision.
"""

from __future__ import annotations

import numpy as np

from taxharvest.market.risk import TRADING_DAYS
from taxharvest.market.universe import MarketData, cumulative_product

REBALANCE_MONTHS = {"monthly": 1, "quarterly": 3, "annual": 12}


def price_growth(market: MarketData) -> np.ndarray:
    """``(T, n)`` gross price return per held share, split-adjusted (1 where not trading):
    total return less the day's dividend and distribution yield."""
    prices = market.prices
    with np.errstate(invalid="ignore", divide="ignore"):
        growth = market.splits[1:] * prices[1:] / prices[:-1]
    growth = np.vstack([np.ones((1, market.n_assets)), growth])
    return np.where(np.isfinite(growth), growth, 1.0)


class Benchmark:
    """Weights and value of the benchmark from row ``start`` on.

    Buy-and-hold of the market's ``benchmark_weights`` (drifted with price returns from row 0
    to ``start``); with ``rebalance`` it is reset on the first trading day of each period to
    its target weights over the names listed that day (equal weights when the market's
    benchmark is equal-weighted, so a late listing joins at its first reconstitution). A
    name that stops trading leaves the index and its value is spread over the rest. Each
    reconstitution uses only prices up to its day.

    Args:
        market: the episode's market.
        start: first row (the benchmark's value is 1 there).
        rebalance: None (buy-and-hold), ``"monthly"``, ``"quarterly"`` or ``"annual"``.
        n_securities: length of :meth:`weights` (the stocks, then zeros for the proxies).
    """

    def __init__(self, market: MarketData, start: int, rebalance: str | None,
                 n_securities: int) -> None:
        if rebalance not in (None, *REBALANCE_MONTHS):
            raise ValueError("benchmark_rebalance must be None, 'monthly', 'quarterly' or "
                             f"'annual', got {rebalance!r}")
        self.start = start
        self.n_securities = n_securities
        levels = cumulative_product(price_growth(market))
        base = np.asarray(market.benchmark_weights, float)
        equal = np.allclose(base[base > 0], base[base > 0].max())
        rows = [start]
        if rebalance is not None:
            months = market.dates.astype("datetime64[M]").astype(np.int64)
            step = REBALANCE_MONTHS[rebalance]
            new_period = np.flatnonzero((np.diff(months) != 0) & (months[1:] % step == 0)) + 1
            rows += [int(r) for r in new_period if r > start]
        trading = np.isfinite(market.prices)
        units = []
        for r in rows:
            target = np.where(trading[r], base * levels[r] if r == start else
                              (1.0 if equal else base), 0.0)
            units.append(target / target.sum() / levels[r])
        segment = np.maximum(np.searchsorted(rows, np.arange(market.n_days), side="right") - 1, 0)
        holdings = np.asarray(units)[segment] * levels * trading
        totals = holdings.sum(axis=1, keepdims=True)
        self._weights = np.divide(holdings, totals, out=np.zeros_like(holdings), where=totals > 0)
        daily = np.einsum("tn,tn->t", self._weights[:-1],
                          np.nan_to_num(market.total_returns[1:]))
        growth = np.concatenate([[1.0], 1.0 + daily])
        growth[: start + 1] = 1.0
        self.path = np.cumprod(growth)  # value relative to ``start``, read up to the current day
        log_returns = np.log(growth)
        self._r1, self._r2 = np.cumsum(log_returns), np.cumsum(log_returns**2)
        last = np.asarray(market.last_trading_index)
        self._stops = np.where(last < market.n_days - 1, last, -1)  # the row a name stops
        self._cache: tuple[int, np.ndarray] = (-1, np.empty(0))

    def value(self, t: int) -> float:
        """Value on row ``t`` relative to row ``start``."""
        return float(self.path[t])

    def weights(self, t: int) -> np.ndarray:
        """``(m,)`` weights at the close of row ``t`` (zeros for the proxies), without the
        names whose last trading day it is: the account sells them at that close (a forced
        sale) and the index spreads their value over the rest, so what a decision on row
        ``t`` tracks is the rest."""
        if self._cache[0] != t:
            out = np.zeros(self.n_securities)
            n = self._weights.shape[1]
            out[:n] = self._weights[t]
            stopping = self._stops == t
            if stopping.any() and out[:n][~stopping].sum() > 0:
                out[:n][stopping] = 0.0
                out /= out.sum()
            self._cache = (t, out)
        return self._cache[1]

    def stock_weights(self, t: int) -> np.ndarray:
        """``(n,)`` weights of the stocks at the close of row ``t`` (as :meth:`weights`)."""
        return self.weights(t)[: self._weights.shape[1]].copy()

    def volatility(self, t: int, window: int = 21) -> float:
        """Annualized volatility of the last ``window`` daily returns up to row ``t``."""
        lo = max(self.start, t - window)
        count = t - lo
        if count < 2:
            return 0.0
        total = self._r1[t] - self._r1[lo]
        squares = self._r2[t] - self._r2[lo]
        return float(np.sqrt(max(squares / count - (total / count) ** 2, 0.0) * TRADING_DAYS))
