"""The one builder of the markets and windows that every workflow runs on.

A run's market is a synthetic path of a seed (:func:`synthetic_market`, with a crash
template: :func:`crash_market`) or real prices (:func:`real_market`), cut to what the run
may see: the risk model's warm-up (:data:`~taxharvest.market.risk.WARMUP_DAYS`) before the
first decision and nothing after the last date (:func:`window`, :func:`decision_window`,
:func:`historical_window`). An episode that runs to the end of its data lasts
:func:`years_to_end`. :func:`market_from_options` reads the ``--prices/--sectors/--market/
--assets/--years`` options of the commands.

Synthetic seeds 0-99 (:data:`EVALUATION_SEEDS`) are reserved for evaluation: tuning and
training never use them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from taxharvest.errors import InputError
from taxharvest.market.risk import TRADING_DAYS, WARMUP_DAYS
from taxharvest.market.scenarios import historical_scenario, inject_scenario
from taxharvest.market.synthetic import SyntheticMarket
from taxharvest.market.universe import MarketData

EVALUATION_SEEDS = range(100)


def synthetic_market(n_assets: int, years: float, seed: int) -> MarketData:
    """The synthetic market of ``seed``, long enough for the risk model's warm-up
    (``WARMUP_DAYS``) and a ``years`` episode starting right after it."""
    return SyntheticMarket(n_assets=n_assets, years=years + WARMUP_DAYS / TRADING_DAYS + 0.05,
                           seed=seed).generate()


@lru_cache(maxsize=8)
def crash_market(n_assets: int, years: float, seed: int, scenario: str, offset: int
                 ) -> MarketData:
    """:func:`synthetic_market` with the crash template ``scenario`` (its noise seeded by
    ``seed``) starting ``offset`` trading days after the warm-up."""
    base = synthetic_market(n_assets, years, seed)
    return inject_scenario(base, scenario, start_date=base.dates[WARMUP_DAYS + offset], seed=seed)


def real_market(prices: str | Path, sectors: str | Path) -> MarketData:
    """Real prices and sectors (:func:`~taxharvest.market.loader.load_prices`)."""
    from taxharvest.market.loader import load_prices

    return load_prices(prices, sectors)


def years_to_end(market: MarketData) -> float:
    """An episode long enough to run ``market`` to its last day, wherever it starts."""
    return market.n_days / TRADING_DAYS + 1.0


def parse_date(value: str, option: str) -> np.datetime64:
    """``value`` as a day; :class:`InputError` naming ``option`` when it is not YYYY-MM-DD."""
    try:
        return np.datetime64(value, "D")
    except ValueError:
        raise InputError(f"cannot parse date {value!r} (expected YYYY-MM-DD)",
                         field=option) from None


def market_from_options(prices: Path | None, sectors: Path | None, market: str | None,
                        assets: int | None, years: float | None) -> tuple[MarketData, int]:
    """The market of a command's options and the seed of the run (the synthetic seed; 0
    for real data): ``--prices``/``--sectors`` or ``--market synthetic[:seed=N]`` with
    ``--assets`` (default 500) and ``--years`` (default 10)."""
    if prices is not None or sectors is not None:
        if prices is None or sectors is None:
            raise InputError("--prices and --sectors go together", field="prices")
        if market is not None:
            raise InputError("give either --market or --prices/--sectors, not both",
                             field="market")
        if assets is not None:
            raise InputError("--assets applies to --market synthetic only", field="assets")
        from taxharvest.market.loader import DataError

        try:
            return real_market(prices, sectors), 0
        except DataError as err:
            raise InputError(str(err)) from None
    kind, _, arg = (market or "synthetic").partition(":")
    key, _, value = arg.partition("=")
    if kind != "synthetic" or (arg and (key != "seed" or not value.isdigit())):
        raise InputError(f"unknown market {market!r}; expected synthetic or synthetic:seed=N",
                         field="market")
    seed = int(value or 0)
    return synthetic_market(assets or 500, years or 10.0, seed), seed


def window(mk: MarketData, start: str | None, end: str | None) -> tuple[MarketData, str]:
    """Cut the market to ``end`` and to the warm-up before ``start``; the first decision date
    (the first day after the warm-up without ``start``)."""
    first, last = mk.dates[0], mk.dates[-1]
    lo = min(WARMUP_DAYS, mk.n_days - 2)
    if start is not None:
        day = parse_date(start, "start")
        if not first < day <= last:
            raise InputError(f"--start {start} is outside the data ({first} to {last}, the "
                             "first day excluded)", field="start")
        lo = mk.date_index(day)
        if lo >= mk.n_days - 1:
            raise InputError(f"--start {start} leaves no day to trade (data end {last})",
                             field="start")
    if end is not None:
        day = parse_date(end, "end")
        if day <= mk.dates[lo]:
            raise InputError(f"--end {end} is not after the first decision {mk.dates[lo]}",
                             field="end")
        mk = mk.slice(first, day)
    begin = max(0, lo - WARMUP_DAYS)
    if begin:
        mk = mk.slice(mk.dates[begin], mk.dates[-1])
    return mk, str(mk.dates[lo - begin])


def decision_window(mk: MarketData, date: str) -> tuple[MarketData, str]:
    """The market up to ``date`` (with the warm-up before it) and the decision day."""
    day = parse_date(date, "date")
    if not mk.dates[0] < day <= mk.dates[-1]:
        raise InputError(f"--date {date} is outside the data ({mk.dates[0]} to "
                         f"{mk.dates[-1]}, the first day excluded)", field="date")
    row = mk.date_index(day)
    mk = mk.slice(mk.dates[max(0, row - WARMUP_DAYS)], mk.dates[row])
    return mk, str(mk.dates[-1])


def historical_window(mk: MarketData, start: str, end: str) -> tuple[MarketData, str]:
    """A historical crash window of real data: the market cut to the warm-up before
    ``start`` .. ``end`` (:func:`~taxharvest.market.scenarios.historical_scenario`) and the
    first decision. Raises :class:`ValueError` for a window outside the data."""
    lo = mk.date_index(start)
    if not 0 < lo < mk.n_days - 1:
        raise ValueError(f"starts outside {mk.dates[1]}..{mk.dates[-2]}")
    return historical_scenario(mk, mk.dates[max(0, lo - WARMUP_DAYS)], end), str(mk.dates[lo])


def first_decision(mk: MarketData, start: str | None = None) -> str:
    """The first decision on the uncut ``mk``: the first day after the warm-up, or ``start``
    when later (the evaluation's real-data path)."""
    day = mk.dates[min(WARMUP_DAYS, mk.n_days - 2)]
    if start is not None:
        day = max(day, np.datetime64(start, "D"))
    return str(day)
