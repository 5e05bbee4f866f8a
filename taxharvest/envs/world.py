"""The episode's world: which market, which securities, which days.

The account trades ``n`` stocks, then ``PROXY_SETS`` replacement securities per sector: the
market's sector proxy and an equal-weighted basket of the sector's members. Baskets of many
companies are not substantially identical to any member (IRC §1091, common practice), and
two different indexes not to each other, so a harvest can park in whichever of the pair is
free of a wash window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from taxharvest.market.risk import TRADING_DAYS
from taxharvest.market.scenarios import ScenarioWindowError, inject_scenario, list_scenarios
from taxharvest.market.synthetic import SyntheticMarket
from taxharvest.market.universe import MarketData, basket_levels

PROXY_SETS = 2  # replacement securities per sector: the market's proxy, an equal-weight basket
MAX_MARKET_DRAWS = 20


def warmup_rows(start: int, warmup_days: int) -> tuple[int, int]:
    """``(first, decides)`` of an episode starting on row ``start``: the first row its risk
    model is fed (up to ``warmup_days`` before the start; row 0, which has no return, only
    when the episode starts there) and the first row it decides, once the model has seen
    ``warmup_days`` rows."""
    first = max(1, start - warmup_days) if start > 0 else 0
    return first, max(start, first + warmup_days - 1)


class UnfitDraw(Exception):
    """A crash window drawn at random did not fit the market; the reset draws again."""


@dataclass(frozen=True)
class World:
    """One episode's securities and their daily series (stocks, then the proxy sets).

    Attributes:
        market: the episode's market.
        names: ``m`` security names.
        sector_of: ``(m,)`` sector of every security.
        prices: ``(T, m)`` trade prices, NaN where not trading.
        returns: ``(T, m)`` daily total returns.
        days: ``(T,)`` dates as integer days.
        excluded: ``(m,)`` screened out (stocks only; proxies are never excluded).
        action_days: ``(T,)`` days with a split, dividend, distribution or a stop.
    """

    market: MarketData
    names: tuple[str, ...]
    sector_of: np.ndarray
    prices: np.ndarray
    returns: np.ndarray
    days: np.ndarray
    excluded: np.ndarray
    action_days: np.ndarray

    @property
    def n_assets(self) -> int:
        return self.market.n_assets

    @property
    def n_securities(self) -> int:
        return len(self.names)

    def trading(self, t: int) -> np.ndarray:
        """``(n,)`` stocks with a price on row ``t``."""
        return np.isfinite(self.prices[t, : self.n_assets])


def build_world(market: MarketData, exclusions: Iterable[str]) -> World:
    """The securities of ``market`` with the equal-weight basket as second proxy set."""
    n, k = market.n_assets, len(market.sector_names)
    alternate = 100.0 * basket_levels(market.total_returns, np.ones(n), market.sectors, k)
    proxies = np.hstack([market.proxy_prices, alternate])
    with np.errstate(invalid="ignore", divide="ignore"):
        proxy_returns = np.vstack([np.zeros((1, proxies.shape[1])),
                                   proxies[1:] / proxies[:-1] - 1])
    stops = np.zeros(market.n_days, bool)
    stops[market.last_trading_index[market.last_trading_index < market.n_days - 1]] = True
    action_days = ((market.splits != 1.0).any(axis=1) | (market.dividends != 0).any(axis=1)
                   | (market.distributions != 0).any(axis=1) | stops)
    names = tuple(market.tickers) + tuple(market.proxy_names) + tuple(
        f"{sector} equal-weight basket" for sector in market.sector_names)
    excluded = np.concatenate([exclusion_mask(market, exclusions),
                               np.zeros(PROXY_SETS * k, bool)])
    return World(
        market=market,
        names=names,
        sector_of=np.concatenate([market.sectors, np.tile(np.arange(k), PROXY_SETS)]
                                 ).astype(np.int64),
        prices=np.hstack([market.prices, proxies]),
        returns=np.hstack([market.total_returns, proxy_returns]),
        days=market.dates.astype(np.int64),
        excluded=excluded,
        action_days=action_days,
    )


def exclusion_mask(market: MarketData, exclusions: Iterable[str]) -> np.ndarray:
    """``(n,)`` stocks screened out by tickers and ``sector:NAME`` items."""
    mask = np.zeros(market.n_assets, bool)
    tickers = {t.upper(): i for i, t in enumerate(market.tickers)}
    sectors = {s.lower(): i for i, s in enumerate(market.sector_names)}
    for item in exclusions:
        if item.lower().startswith("sector:"):
            name = item.split(":", 1)[1].strip().lower()
            if name not in sectors:
                raise ValueError(f"unknown sector in exclusions: {item!r}; "
                                 f"sectors are {', '.join(market.sector_names)}")
            mask |= market.sectors == sectors[name]
        elif item.upper() in tickers:
            mask[tickers[item.upper()]] = True
        else:
            raise ValueError(f"unknown ticker in exclusions: {item!r}")
    return mask


def draw_market(rng: np.random.Generator, template: MarketData | None, options: dict, *,
                n_assets: int, years: float, warmup_days: int, scenario_probability: float,
                synthetic: dict) -> MarketData:
    """The episode's market: ``template``, or a synthetic one drawn from ``rng``; with a
    crash template injected when ``options`` name one or ``scenario_probability`` draws one.

    Draws again (up to ``MAX_MARKET_DRAWS`` times) when a randomly placed crash window does
    not fit.
    """
    for _ in range(MAX_MARKET_DRAWS):
        try:
            return _draw_once(rng, template, options, n_assets=n_assets, years=years,
                              warmup_days=warmup_days,
                              scenario_probability=scenario_probability, synthetic=synthetic)
        except UnfitDraw:
            continue
    raise RuntimeError(f"no crash window fitted in {MAX_MARKET_DRAWS} drawn markets")


def _draw_once(rng, template, options, *, n_assets, years, warmup_days, scenario_probability,
               synthetic) -> MarketData:
    if template is not None:
        market = template
    else:
        span = years + warmup_days / TRADING_DAYS + 0.05
        seed = int(rng.integers(2**31 - 1))
        market = SyntheticMarket(n_assets=n_assets, years=span, seed=seed, **synthetic).generate()
    scenario = options.get("scenario")
    if scenario is None and scenario_probability > 0 and rng.random() < scenario_probability:
        names = list_scenarios()
        scenario = names[int(rng.integers(len(names)))]
    if scenario is None:
        return market
    at = options.get("scenario_date")
    drawn = at is None
    if drawn:
        lo = warmup_days + 21
        hi = max(lo + 1, market.n_days - 300)
        at = market.dates[int(rng.integers(lo, hi))]
    try:
        return inject_scenario(market, scenario, start_date=at, seed=int(rng.integers(2**31 - 1)))
    except ScenarioWindowError:
        if drawn:
            raise UnfitDraw from None
        raise
