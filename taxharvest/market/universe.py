"""The market container every consumer takes, GICS sectors, and returns -> prices arithmetic.

Securities are the ``n`` stocks followed by one **proxy** per sector (the guardrail and the
risk model index them in that order). A proxy is a sector basket: by default the
benchmark-weighted total-return index of the sector's members, rebased to 100, or a
user-supplied sector ETF. It is a basket or fund, never a share of one company, so by common
practice it is not "substantially identical" (IRC §1091) to any member stock: buying it
does not wash a loss on a member.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

# GICS sectors in GICS code order (10 Energy ... 60 Real Estate), MSCI/S&P GICS structure 2023.
GICS_SECTORS: tuple[str, ...] = (
    "Energy",
    "Materials",
    "Industrials",
    "Consumer Discretionary",
    "Consumer Staples",
    "Health Care",
    "Financials",
    "Information Technology",
    "Communication Services",
    "Utilities",
    "Real Estate",
)

# Common spellings (data vendors, Yahoo Finance, pre-2018 GICS) -> GICS sector name.
_SECTOR_ALIASES = {
    "technology": "Information Technology",
    "informationtech": "Information Technology",
    "infotech": "Information Technology",
    "it": "Information Technology",
    "tech": "Information Technology",
    "healthcare": "Health Care",
    "financial": "Financials",
    "financialservices": "Financials",
    "finance": "Financials",
    "industrial": "Industrials",
    "basicmaterials": "Materials",
    "material": "Materials",
    "consumercyclical": "Consumer Discretionary",
    "consumerdefensive": "Consumer Staples",
    "telecommunicationservices": "Communication Services",
    "telecommunications": "Communication Services",
    "telecom": "Communication Services",
    "communications": "Communication Services",
    "communication": "Communication Services",
    "utility": "Utilities",
    "realestate": "Real Estate",
}
_SECTOR_LOOKUP = {re.sub(r"[^a-z]", "", s.lower()): s for s in GICS_SECTORS} | _SECTOR_ALIASES

REGIME_UNKNOWN, CALM, STRESSED, CRASH = -1, 0, 1, 2
REGIME_NAMES = ("calm", "stressed", "crash")

# Kinds of :class:`CorporateAction`: an unrecorded split, a distribution the adjusted close
# shows but the file does not record, a recorded dividend too large to be an ordinary one.
SPLIT, DISTRIBUTION, RECORDED_DIVIDEND = "split", "distribution", "distribution-recorded-as-dividend"
DISTRIBUTION_KINDS = (DISTRIBUTION, RECORDED_DIVIDEND)


class CorporateAction(NamedTuple):
    """An action the loader inferred or reclassified (the file does not state it as such).

    ``size``: for a ``split``, the new shares per old share it adds to the recorded split;
    for a distribution kind, the value paid per (post-split) share. ``detail`` is the
    evidence, in words.
    """

    ticker: str
    date: str  # ISO date
    kind: str
    size: float
    detail: str


def canonical_sector(name: str) -> str | None:
    """GICS sector name for ``name`` or a common variant (case, spaces, punctuation ignored)."""
    return _SECTOR_LOOKUP.get(re.sub(r"[^a-z]", "", str(name).lower()))


def cumulative_product(factors: np.ndarray) -> np.ndarray:
    """``np.cumprod(factors, axis=0)`` for a ``(T, n)`` array, row by row (several times
    faster than numpy's strided cumprod along axis 0 at T=2520, n=500)."""
    out = np.array(factors, dtype=float)
    for t in range(1, len(out)):
        np.multiply(out[t], out[t - 1], out=out[t])
    return out


def prices_from_returns(
    start_prices: np.ndarray,
    total_returns: np.ndarray,
    dividend_yields: np.ndarray | None = None,
    splits: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Trade prices and cash dividends from total returns.

    ``start_prices[i]`` is the price on security ``i``'s first trading row (first finite
    return); afterwards ``P_t = P_{t-1} (1 + r_t - y_t) / split_t`` and the dividend per
    (post-split) share is ``y_t P_{t-1} / split_t``, where ``y_t`` is the day's dividend as a
    fraction of the previous close. Rows with a NaN return have a NaN price and no dividend.
    """
    r = np.asarray(total_returns, dtype=float)
    trading = np.isfinite(r)
    growth = np.where(trading, r, 0.0)
    growth += 1.0
    if dividend_yields is not None:
        growth -= np.where(trading, dividend_yields, 0.0)
    if np.any(growth <= 0.0):
        raise ValueError("total return minus dividend yield must exceed -100%")
    if splits is not None:
        growth /= splits
    level = cumulative_product(growth)
    first = trading.argmax(axis=0)
    prices = level
    prices *= np.asarray(start_prices, float) / level[first, np.arange(r.shape[1])]
    prices[~trading] = np.nan
    dividends = np.zeros_like(r)
    if dividend_yields is not None:
        paid = dividend_yields[1:] * prices[:-1]
        if splits is not None:
            paid /= splits[1:]
        dividends[1:] = np.where(trading[1:] & np.isfinite(prices[:-1]), paid, 0.0)
    return prices, dividends


def basket_levels(
    total_returns: np.ndarray, weights: np.ndarray, groups: np.ndarray, n_groups: int
) -> np.ndarray:
    """``(T, n_groups)`` buy-and-hold total-return levels of weighted baskets, 1.0 on row 0.

    Each group holds its members with ``weights`` at row 0 (equal weights over members
    trading on row 0 where the group's weights sum to zero) and never rebalances; a member
    that stops trading is held as cash at its last value. A group with no member is NaN.
    """
    r = np.nan_to_num(np.asarray(total_returns, float), nan=0.0)
    onehot = np.zeros((r.shape[1], n_groups))
    onehot[np.arange(r.shape[1]), groups] = 1.0
    w = np.asarray(weights, float)[:, None] * onehot
    total = w.sum(axis=0)
    fallback = onehot * np.isfinite(np.asarray(total_returns, float)[0])[:, None]
    w = np.where(total > 0, w, fallback)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cumulative_product(1.0 + r) @ w / np.where(total > 0, total, np.nan)


@dataclass(frozen=True)
class MarketData:
    """Daily prices, corporate actions, benchmark and sector proxies of one universe.

    Arrays are read-only; ``T`` days, ``n`` stocks, ``K`` sectors (one proxy each).

    Attributes:
        dates: ``(T,)`` datetime64[D], strictly increasing trading days.
        tickers: ``n`` ticker strings.
        sectors: ``(n,)`` int index into ``sector_names``.
        sector_names: the ``K`` sector names (the 11 GICS sectors).
        prices: ``(T, n)`` trade prices; NaN before a ticker lists and after it stops.
        dividends: ``(T, n)`` ordinary dividend per (post-split) share that day (ex-date),
            0 if none.
        splits: ``(T, n)`` new shares per old share that day (recorded and inferred), 1.0
            if none.
        total_returns: ``(T, n)`` daily total return; 0 on day 0 and on a ticker's first
            trading day, NaN where not trading. A holder of one share on day ``t - 1`` owns
            ``splits`` shares on day ``t`` and receives ``dividends + distributions`` cash on
            each: ``(1 + r_t) P_{t-1} = s_t (P_t + dividend_t + distribution_t)``.
        benchmark_weights: ``(n,)`` benchmark weights on day 0, summing to 1 (buy-and-hold).
        proxy_prices: ``(T, K)`` proxy prices (treated as total-return series).
        proxy_names: ``K`` proxy names, proxy ``k`` stands for sector ``k``.
        regime: ``(T,)`` int8: 0 calm, 1 stressed, 2 crash, -1 unknown (real data).
        source: short description of where the data came from.
        corporate_actions: every :class:`CorporateAction` the loader inferred or
            reclassified, by date (empty for synthetic markets).
        distributions: ``(T, n)`` value per (post-split) share distributed that day that is
            not an ordinary dividend (a spin-off, a merger's cash), 0 if none (derived:
            the sum of the distribution kinds of ``corporate_actions``).
        first_trading_index: ``(n,)`` row of each ticker's first price (derived).
        last_trading_index: ``(n,)`` row of each ticker's last price (derived); the
            environment forces a sale there when it is before ``T - 1``.
    """

    dates: np.ndarray
    tickers: tuple[str, ...]
    sectors: np.ndarray
    sector_names: tuple[str, ...]
    prices: np.ndarray
    dividends: np.ndarray
    splits: np.ndarray
    total_returns: np.ndarray
    benchmark_weights: np.ndarray
    proxy_prices: np.ndarray
    proxy_names: tuple[str, ...]
    regime: np.ndarray
    source: str
    corporate_actions: tuple[CorporateAction, ...] = ()
    distributions: np.ndarray = field(init=False, repr=False, compare=False)
    first_trading_index: np.ndarray = field(init=False, repr=False, compare=False)
    last_trading_index: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def freeze(name: str, value, dtype) -> np.ndarray:
            array = np.asarray(value, dtype=dtype).view()
            array.flags.writeable = False
            object.__setattr__(self, name, array)
            return array

        dates = freeze("dates", self.dates, "datetime64[D]")
        object.__setattr__(self, "tickers", tuple(str(t) for t in self.tickers))
        object.__setattr__(self, "sector_names", tuple(self.sector_names))
        object.__setattr__(self, "proxy_names", tuple(self.proxy_names))
        t, n, k = len(dates), len(self.tickers), len(self.sector_names)
        sectors = freeze("sectors", self.sectors, np.int64)
        for name in ("prices", "dividends", "splits", "total_returns"):
            if freeze(name, getattr(self, name), float).shape != (t, n):
                raise ValueError(f"{name} must be ({t}, {n}), got {getattr(self, name).shape}")
        weights = freeze("benchmark_weights", self.benchmark_weights, float)
        if freeze("proxy_prices", self.proxy_prices, float).shape != (t, k):
            raise ValueError(f"proxy_prices must be ({t}, {k}), got {self.proxy_prices.shape}")
        if freeze("regime", self.regime, np.int8).shape != (t,):
            raise ValueError(f"regime must be ({t},), got {self.regime.shape}")
        if sectors.shape != (n,) or weights.shape != (n,) or len(self.proxy_names) != k:
            raise ValueError("sectors and benchmark_weights must be (n,), proxy_names K long")
        if t == 0 or n == 0 or np.any(np.diff(dates) <= np.timedelta64(0, "D")):
            raise ValueError("dates must be non-empty and strictly increasing, with n > 0")
        if np.any((sectors < 0) | (sectors >= k)) or np.any((self.regime < -1) | (self.regime > 2)):
            raise ValueError("sectors must index sector_names and regime lie in -1..2")
        trading = np.isfinite(self.prices)
        if not np.array_equal(trading, np.isfinite(self.total_returns)):
            raise ValueError("total_returns must be finite exactly where prices are")
        if np.any(self.prices[trading] <= 0) or np.any(self.splits[trading] <= 0):
            raise ValueError("prices and splits must be positive")
        if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
            raise ValueError("benchmark_weights must be non-negative and sum to 1")
        if np.any(weights[~trading[0]] > 0):
            raise ValueError("benchmark weight on a ticker without a price on day 0")
        freeze("distributions", self._distributions(), float)
        freeze("first_trading_index", np.where(trading.any(0), trading.argmax(0), t), np.int64)
        freeze("last_trading_index", t - 1 - trading[::-1].argmax(0), np.int64)

    def _distributions(self) -> np.ndarray:
        """Normalize and check ``corporate_actions`` (listed ticker, trading day, positive
        size); the ``(T, n)`` sum of their distributions."""
        actions = tuple(CorporateAction(str(ticker), str(np.datetime64(date, "D")), str(kind),
                                        float(size), str(detail))
                        for ticker, date, kind, size, detail in self.corporate_actions)
        object.__setattr__(self, "corporate_actions", actions)
        column = {ticker: i for i, ticker in enumerate(self.tickers)}
        out = np.zeros((len(self.dates), len(self.tickers)))
        for action in actions:
            day = np.datetime64(action.date, "D")
            row = int(np.searchsorted(self.dates, day))
            listed = action.ticker in column and row < len(self.dates) and self.dates[row] == day
            if not (listed and action.size > 0):
                raise ValueError(f"corporate action {action} needs a listed ticker, a trading "
                                 "day and a positive size")
            if action.kind in DISTRIBUTION_KINDS:
                out[row, column[action.ticker]] += action.size
        return out

    @property
    def n_assets(self) -> int:
        return len(self.tickers)

    @property
    def n_days(self) -> int:
        return len(self.dates)

    def date_index(self, date) -> int:
        """Row of the first trading day on or after ``date``."""
        return int(np.searchsorted(self.dates, np.datetime64(date, "D")))

    def index_returns(self) -> np.ndarray:
        """``(T,)`` daily total return of the buy-and-hold benchmark, 0 on day 0."""
        level = basket_levels(self.total_returns, self.benchmark_weights,
                              np.zeros(self.n_assets, np.int64), 1)[:, 0]
        return np.concatenate([[0.0], level[1:] / level[:-1] - 1.0])

    def sectors_all(self) -> np.ndarray:
        """``(n + K,)`` sector of every security: the stocks, then proxy ``k`` in sector ``k``."""
        return np.concatenate([self.sectors, np.arange(len(self.sector_names))])

    def returns_all(self) -> np.ndarray:
        """``(T, n + K)`` daily total returns of the stocks, then the proxies."""
        proxy = np.vstack([np.zeros((1, self.proxy_prices.shape[1])),
                           self.proxy_prices[1:] / self.proxy_prices[:-1] - 1.0])
        return np.hstack([self.total_returns, proxy])

    def slice(self, start, end) -> MarketData:
        """The days ``start <= date <= end`` as a new market.

        The benchmark is the same buy-and-hold portfolio seen from ``start``: its weights
        drift with total returns up to the first kept day (names no longer trading drop out).
        """
        lo = self.date_index(start)
        hi = int(np.searchsorted(self.dates, np.datetime64(end, "D"), side="right"))
        if hi - lo < 1:
            raise ValueError(f"no trading day between {start} and {end}")
        growth = np.prod(1.0 + np.nan_to_num(self.total_returns[: lo + 1]), axis=0)
        weights = np.where(np.isfinite(self.prices[lo]), self.benchmark_weights * growth, 0.0)
        returns = self.total_returns[lo:hi].copy()
        returns[0][np.isfinite(returns[0])] = 0.0
        first, last = str(self.dates[lo]), str(self.dates[hi - 1])
        return replace(
            self,
            dates=self.dates[lo:hi],
            prices=self.prices[lo:hi],
            dividends=self.dividends[lo:hi],
            splits=self.splits[lo:hi],
            total_returns=returns,
            benchmark_weights=weights / weights.sum(),
            proxy_prices=self.proxy_prices[lo:hi],
            regime=self.regime[lo:hi],
            source=f"{self.source} ({first}..{last})",
            corporate_actions=tuple(a for a in self.corporate_actions if first <= a.date <= last),
        )


def sector_proxies(
    total_returns: np.ndarray, sectors: np.ndarray, weights: np.ndarray, sector_names
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Default proxies: benchmark-weighted sector baskets, prices rebased to 100 on day 0."""
    levels = basket_levels(total_returns, weights, sectors, len(sector_names))
    return 100.0 * levels, tuple(f"{name} basket" for name in sector_names)
