"""The one builder of the markets and windows that every workflow runs on.

A run's market is a synthetic path of a seed (:func:`synthetic_market`, with a crash
template: :func:`crash_market`) or real prices (:func:`real_market`), cut to what the run
may see: the risk model's warm-up (:data:`~taxharvest.market.risk.WARMUP_DAYS`) before the
first decision and nothing after the last date (:func:`window`, :func:`decision_window`,
:func:`historical_window`). An episode that runs to the end of its data lasts
:func:`years_to_end`. :func:`market_from_options` reads the ``--prices/--sectors/--market/
--assets/--years`` options of the commands.

The warm-up rule, here once for every command: the environment feeds its risk model up to
``WARMUP_DAYS`` trading days of returns before the start; where the data hold fewer (a start
on or near the first date of a file), the book holds (cash invested, no harvest, no
guardrail) until the model has seen them (:func:`decisions_from`). A start anywhere in the
data is accepted; a window that ends before the first decision is possible, or a decision
date inside the warm-up, is an :class:`~taxharvest.errors.InputError` saying from which
date decisions are possible.

Synthetic seeds 0-99 (:data:`EVALUATION_SEEDS`) are reserved for evaluation: tuning and
training never use them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from taxharvest.envs.world import warmup_rows
from taxharvest.errors import InputError
from taxharvest.market.risk import TRADING_DAYS, WARMUP_DAYS
from taxharvest.market.scenarios import historical_scenario, inject_scenario
from taxharvest.market.synthetic import SyntheticMarket
from taxharvest.market.universe import MarketData

EVALUATION_SEEDS = range(100)
MIN_ASSETS, MAX_ASSETS = 11, 3000  # one stock per sector; what memory holds over MAX_YEARS
MIN_YEARS, MAX_YEARS = 1 / TRADING_DAYS, 30.0  # one trading day; what memory holds


def check_size(assets: int | None = None, years: float | None = None) -> None:
    """Refuse a synthetic universe of ``assets`` stocks or an episode of ``years`` outside
    what a run can hold (None: not given), naming ``--assets`` or ``--years``."""
    if assets is not None and not MIN_ASSETS <= assets <= MAX_ASSETS:
        raise InputError(f"need {MIN_ASSETS} (one per sector) to {MAX_ASSETS:,} stocks, got "
                         f"{assets}", field="assets")
    if years is not None and not MIN_YEARS <= years <= MAX_YEARS:
        raise InputError(f"need {MIN_YEARS:.3f} (one trading day) to {MAX_YEARS:g} years, "
                         f"got {years:g}", field="years")


def synthetic_market(n_assets: int, years: float, seed: int) -> MarketData:
    """The synthetic market of ``seed``, long enough for the risk model's warm-up
    (``WARMUP_DAYS``) and a ``years`` episode starting right after it (sizes checked by
    :func:`check_size`)."""
    check_size(n_assets, years)
    return SyntheticMarket(n_assets=n_assets, years=years + WARMUP_DAYS / TRADING_DAYS + 0.05,
                           seed=seed).generate()


@lru_cache(maxsize=8)
def crash_market(n_assets: int, years: float, seed: int, scenario: str, offset: int
                 ) -> MarketData:
    """:func:`synthetic_market` with the crash template ``scenario`` (its noise seeded by
    ``seed``) starting ``offset`` trading days after the warm-up."""
    base = synthetic_market(n_assets, years, seed)
    return inject_scenario(base, scenario, start_date=base.dates[WARMUP_DAYS + offset], seed=seed)


def real_market(prices: str | Path, sectors: str | Path, *, strict_data: bool = False,
                max_gap_days: int | None = None) -> MarketData:
    """Real prices and sectors (:func:`~taxharvest.market.loader.load_prices`; with
    ``strict_data`` an unexplained gap between raw and adjusted prices is an error; runs of
    missing days up to ``max_gap_days``, default the loader's, are filled)."""
    from taxharvest.market.loader import MAX_GAP_DAYS, load_prices

    return load_prices(prices, sectors, strict_data=strict_data,
                       max_gap_days=MAX_GAP_DAYS if max_gap_days is None else max_gap_days)


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
                        assets: int | None, years: float | None, *,
                        strict_data: bool = False, max_gap_days: int | None = None
                        ) -> tuple[MarketData, int]:
    """The market of a command's options and the seed of the run (the synthetic seed; 0
    for real data): ``--prices``/``--sectors`` (``--strict-data``) or ``--market
    synthetic[:seed=N]`` with ``--assets`` (default 500) and ``--years`` (default 10)."""
    if prices is not None or sectors is not None:
        if prices is None or sectors is None:
            raise InputError("--prices and --sectors go together", field="prices")
        if market is not None:
            raise InputError("give either --market or --prices/--sectors, not both",
                             field="market")
        if assets is not None:
            raise InputError("--assets applies to --market synthetic only", field="assets")
        return real_market(prices, sectors, strict_data=strict_data,
                           max_gap_days=max_gap_days), 0
    kind, _, arg = (market or "synthetic").partition(":")
    key, _, value = arg.partition("=")
    if kind != "synthetic" or (arg and (key != "seed" or not value.isdigit())):
        raise InputError(f"unknown market {market!r}; expected synthetic or synthetic:seed=N",
                         field="market")
    seed = int(value or 0)
    return synthetic_market(assets or 500, years or 10.0, seed), seed


def decision_row(start: int) -> int:
    """The first row at which an episode started on row ``start`` of its market decides
    (the environment's rule, :func:`~taxharvest.envs.world.warmup_rows`)."""
    return warmup_rows(start, WARMUP_DAYS)[1]


def decisions_from(mk: MarketData, start: str) -> str:
    """The first date an episode of ``mk`` started on ``start`` decides (``start`` itself
    unless the data before it are shorter than the warm-up)."""
    row = decision_row(mk.date_index(start))
    return str(mk.dates[min(row, mk.n_days - 1)])


def _warm(mk: MarketData, lo: int, last: int, option: str, hint: str = "") -> None:
    """Refuse an episode of ``mk`` from row ``lo`` to row ``last`` without a decision (one
    needs a day after it to execute)."""
    row = decision_row(lo)
    if row <= last - 1:
        return
    when = (f"decisions are possible from {mk.dates[row]}" if row < mk.n_days - 1
            else f"the data hold fewer than {WARMUP_DAYS + 2} trading days")
    raise InputError(f"no decision from {mk.dates[lo]} to {mk.dates[last]}: the risk model "
                     f"warms up on {WARMUP_DAYS} trading days of returns first (the book only "
                     f"holds until then); {when}{hint}", field=option)


def window(mk: MarketData, start: str | None, end: str | None) -> tuple[MarketData, str]:
    """Cut the market to ``end`` and to the warm-up before ``start``; the first day of the
    episode (``start``, or the first day after the warm-up without it). A ``start`` on or
    near the first date holds until the warm-up completes (:func:`decisions_from`)."""
    first, last = mk.dates[0], mk.dates[-1]
    lo, hi = min(WARMUP_DAYS, mk.n_days - 2), mk.n_days - 1
    if start is not None:
        day = parse_date(start, "start")
        if not first <= day <= last:
            raise InputError(f"--start {start} is outside the data ({first} to {last})",
                             field="start")
        lo = mk.date_index(day)
        if lo >= mk.n_days - 1:
            raise InputError(f"--start {start} leaves no day to trade (data end {last})",
                             field="start")
    if end is not None:
        day = parse_date(end, "end")
        if day <= mk.dates[lo]:
            raise InputError(f"--end {end} is not after the first decision {mk.dates[lo]}",
                             field="end")
        hi = int(np.searchsorted(mk.dates, day, side="right")) - 1
    _warm(mk, lo, hi, "end" if end is not None else "start",
          "; give a later --end" if end is not None else "")
    begin = max(0, lo - WARMUP_DAYS)
    if begin or hi < mk.n_days - 1:
        mk = mk.slice(mk.dates[begin], mk.dates[hi])
    return mk, str(mk.dates[lo - begin])


def decision_window(mk: MarketData, date: str) -> tuple[MarketData, str]:
    """The market up to ``date`` (with the warm-up before it) and the decision day, which
    must come after the warm-up."""
    day = parse_date(date, "date")
    if not mk.dates[0] <= day <= mk.dates[-1]:
        raise InputError(f"--date {date} is outside the data ({mk.dates[0]} to "
                         f"{mk.dates[-1]})", field="date")
    row = mk.date_index(day)
    if decision_row(row) != row:
        raise InputError(
            f"--date {date} is inside the risk model's warm-up ({WARMUP_DAYS} trading days "
            f"of returns from {mk.dates[0]}): decisions are possible from "
            f"{mk.dates[min(decision_row(1), mk.n_days - 1)]}", field="date")
    mk = mk.slice(mk.dates[max(0, row - WARMUP_DAYS)], mk.dates[row])
    return mk, str(mk.dates[-1])


def historical_window(mk: MarketData, start: str, end: str) -> tuple[MarketData, str]:
    """A historical crash window of real data: the market cut to the warm-up before
    ``start`` .. ``end`` (:func:`~taxharvest.market.scenarios.historical_scenario`) and the
    first decision. Raises :class:`ValueError` for a window outside the data or one that
    ends before the warm-up completes."""
    lo = mk.date_index(start)
    if not 0 <= lo < mk.n_days - 1:
        raise ValueError(f"starts outside {mk.dates[0]}..{mk.dates[-2]}")
    try:
        _warm(mk, lo, int(np.searchsorted(mk.dates, np.datetime64(end, "D"), "right")) - 1,
              "scenarios")
    except InputError as err:
        raise ValueError(err.message) from None
    return historical_scenario(mk, mk.dates[max(0, lo - WARMUP_DAYS)], end), str(mk.dates[lo])
