"""Real daily prices from long-format CSV or parquet into :class:`MarketData`.

Input: one row per (date, ticker) with ``date, ticker, close`` and optionally
``adj_close, dividend, split``; a sectors file ``ticker, sector``. Column names are matched
case-insensitively, ignoring spaces and punctuation, with common aliases (``Date``,
``Symbol``, ``Name``, ``Adj Close``, ``GICS Sector``...). Decisions:

- Row order does not matter: rows are placed by (date, ticker), so files grouped by ticker
  are fine; a repeated (date, ticker) is an error.
- The calendar is the union of dates in the file. A ticker trades from its first to its last
  row: NaN before (it joins at its first price) and after (the environment sells at
  ``MarketData.last_trading_index``). A day missing inside that span (a halt, a vendor gap)
  repeats the previous price with a zero return, for at most ``max_gap_days`` days in a row;
  a longer gap is an error.
- Trade prices are the raw ``close``; ``split`` becomes ``splits``; ``dividend`` is per
  post-split share (the convention of the S&P 500 development data, whose ``adj_close``
  reconciles exactly with it on split days that pay).
- Corporate actions: ``adj_close`` is the evidence, the raw series the truth traded. A day
  whose adjusted gross return differs from ``split * (close + dividend) / previous close``
  by more than ``reconcile_tolerance`` (relative) hides an action (:func:`_unrecorded_split`):
  an unrecorded split where the unexplained ratio is one of :data:`SPLIT_RATIOS`, otherwise a
  value-preserving distribution (a spin-off, a merger's cash), with a reverse split when the
  price rose more than the adjusted series allows. A recorded dividend above
  ``distribution_threshold`` of the previous close is reclassified as a distribution. The
  classification follows the tax treatment: a split changes the share count at unchanged
  total basis (IRC §307(a), Treas. Reg. §1.307-1; a reverse split: §1036 with §358); a
  spin-off divides the basis by fair market value (IRC §355, §358(c), Treas. Reg.
  §1.358-2) and cash beyond earnings is a return of capital (§301(c)(2)); an ordinary
  dividend is income that leaves basis alone (§301(c)(1)). ``total_returns`` then come from the raw series and these
  actions, ``split * (close + dividend + distribution) / previous close``, so a holder who
  keeps the shares and takes the payouts in cash earns them exactly; without ``adj_close``
  only the reclassification applies.
- User mistakes raise :class:`~taxharvest.errors.DataError` naming the file, the row (CSV:
  the line number, header = line 1; parquet: the 1-based row) and the field.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from taxharvest.errors import DataError
from taxharvest.market.universe import (
    DISTRIBUTION,
    GICS_SECTORS,
    RECORDED_DIVIDEND,
    REGIME_UNKNOWN,
    SPLIT,
    CorporateAction,
    MarketData,
    canonical_sector,
    sector_proxies,
)

__all__ = ["DataError", "corporate_action_records", "corporate_action_summary", "load_prices"]

# Ratios (new shares per old) an unexplained gap is matched against as an unrecorded split:
# n-for-1 and 1-for-n, and 3-for-2 and 2-for-3, the one common fractional ratio. Rarer ones
# (5-for-4, 4-for-3) are left out: they would read a 20% or 25% spin-off as a split.
SPLIT_RATIOS: tuple[Fraction, ...] = tuple(sorted(
    {Fraction(n) for n in (2, 3, 4, 5, 6, 7, 8, 10, 15, 20, 25, 30, 40, 50, 100)}
    | {1 / Fraction(n) for n in (2, 3, 4, 5, 6, 7, 8, 10, 15, 20, 25, 30, 40, 50, 100)}
    | {Fraction(3, 2), Fraction(2, 3)}))
# Relative error allowed between the adjusted and the raw gross return of a day. Both describe
# the same day, so only quoting rounds them apart: on the development data clean rows agree
# to 1e-5; cent-rounded prices above $4 on both series stay within 0.5%. The smallest real
# spin-offs (1% to 2% of the parent) are still found.
RECONCILE_TOLERANCE = 0.005
# A recorded dividend above this fraction of the previous close is a distribution. Regular
# dividends stay far below (a REIT's quarter: about 2%); above it the development data holds
# mostly spin-offs and merger payments, and a few special cash dividends (TDG, GNRC).
DISTRIBUTION_THRESHOLD = 0.10

# Accepted spellings of each field, after lowercasing and dropping non-alphanumerics; the
# first present wins (so ``ticker`` beats ``name``, which is a company name in some files).
ALIASES: dict[str, tuple[str, ...]] = {
    "date": ("date", "timestamp", "datetime", "day"),
    "ticker": ("ticker", "symbol", "tic", "name"),
    "close": ("close", "closeprice", "price", "last"),
    "adj_close": ("adjclose", "adjustedclose", "adjclosingprice", "closeadj"),
    "dividend": ("dividend", "dividends", "div", "dividendamount", "cashdividend"),
    "split": ("split", "splits", "splitratio", "splitcoefficient", "splitfactor", "stocksplits"),
    "sector": ("sector", "gicssector", "gics", "sectorname"),
    "weight": ("weight", "weights", "benchmarkweight", "indexweight"),
}

MAX_GAP_DAYS = 5  # the longest run of missing days filled with the last price, by default


class _Table:
    """A data file read as strings with a row-number map and resolved column names."""

    def __init__(self, path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError("is a folder, not a file" if self.path.is_dir() else "file not found",
                            path=path)
        with self.path.open("rb") as file:
            head = file.read(4096)
        if not head:
            raise DataError("the file is empty", path=path)
        parquet = head.startswith(b"PAR1") or self.path.suffix.lower() in (".parquet", ".pq")
        if not parquet and b"\0" in head:
            raise DataError("binary content, not CSV text: save it as a UTF-8 CSV, or as parquet",
                            path=path)
        self.unit, offset = ("row", 1) if parquet else ("line", 2)
        try:
            if parquet:
                frame = pd.read_parquet(self.path)
            else:
                frame = pd.read_csv(self.path, dtype=str, skip_blank_lines=False,
                                    encoding_errors="replace")
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read: {_one_line(exc)}", path=path) from exc
        frame = frame.reset_index(drop=True)
        frame = frame[frame.notna().any(axis=1)]  # blank lines keep their line numbers
        if frame.empty:
            raise DataError("no data rows (a header only)", path=path)
        self.rows = frame.index.to_numpy() + offset
        normalized = {}
        for column in frame.columns:
            normalized.setdefault(re.sub(r"[^a-z0-9]", "", str(column).lower()), column)
        self.columns: dict[str, pd.Series] = {}
        for name in required + optional:
            found = next((normalized[a] for a in ALIASES[name] if a in normalized), None)
            if found is not None:
                self.columns[name] = frame[found]
            elif name in required:
                accepted = ", ".join(ALIASES[name])
                raise DataError(f"missing required column (accepted names: {accepted})",
                                path=path, field=name)

    def error(self, message: str, index: int | None = None, field: str | None = None):
        row = None if index is None else int(self.rows[index])
        return DataError(message, path=self.path, row=row, field=field, unit=self.unit)

    def check(self, bad: dict[str, np.ndarray], reason: dict[str, str]) -> None:
        """Raise for the earliest row with a bad field (first bad field of that row)."""
        firsts = {name: int(np.argmax(mask)) for name, mask in bad.items() if mask.any()}
        if firsts:
            index = min(firsts.values())
            name = next(n for n in bad if firsts.get(n) == index)
            value = self.columns[name].iloc[index]
            shown = "an empty value" if pd.isna(value) else _one_line(
                repr(value) if isinstance(value, str) else value)
            raise self.error(f"{reason[name]}, got {shown}", index, name)

    def text(self, name: str) -> np.ndarray:
        values = self.columns[name].astype("string").str.strip()
        return values.fillna("").to_numpy(dtype=object)

    def dates(self) -> np.ndarray:
        column = self.columns["date"]
        if pd.api.types.is_datetime64_any_dtype(column):
            parsed = column
        else:  # one format for the whole file, guessed from its first recognizable date
            text = column.astype("string").str.strip()
            guesses = (guess_datetime_format(value) for value in text.dropna())
            fmt = next((guess for guess in guesses if guess), "ISO8601")
            parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
        return parsed.to_numpy(dtype="datetime64[D]")

    def numbers(self, name: str, default: float) -> np.ndarray:
        if name not in self.columns:
            return np.full(len(self.rows), default)
        column = self.columns[name]
        if pd.api.types.is_numeric_dtype(column):
            values = column.to_numpy(dtype=float, na_value=np.nan)
            return np.where(np.isnan(values), default, values)
        text = column.astype("string").str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        blank = (text.isna() | (text == "")).to_numpy(dtype=bool)
        return np.where(blank, default, values)


def _one_line(text) -> str:
    """``text`` on one line with parentheses for brackets (the CLI prints rich markup)."""
    return str(text).replace("\n", " ").replace("[", "(").replace("]", ")")


def _forward_fill(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Fill each column's missing rows with its last present value (NaN before the first)."""
    rows = np.where(present, np.arange(len(values))[:, None], -1)
    last = np.maximum.accumulate(rows, axis=0)
    filled = values[np.maximum(last, 0), np.arange(values.shape[1])]
    return np.where(last >= 0, filled, np.nan)


class _Series(NamedTuple):
    """A price table as ``(T, n)`` arrays (see :class:`MarketData`) and its actions."""

    dates: np.ndarray
    names: np.ndarray
    prices: np.ndarray
    dividends: np.ndarray
    splits: np.ndarray
    distributions: np.ndarray
    returns: np.ndarray
    actions: tuple[CorporateAction, ...]


class _Rules(NamedTuple):
    """How strictly a price table is reconciled (see :func:`load_prices`)."""

    max_gap_days: int | None
    strict_data: bool
    reconcile_tolerance: float
    distribution_threshold: float


def _previous(values: np.ndarray) -> np.ndarray:
    """Row ``t`` holds ``values[t - 1]`` (NaN on row 0)."""
    return np.vstack([np.full((1, values.shape[1]), np.nan), values[:-1]])


def _read_prices(table: _Table, rules: _Rules) -> _Series:
    """Parse, validate, pivot and reconcile a long price table."""
    dates, tickers = table.dates(), table.text("ticker")
    close = table.numbers("close", np.nan)
    adjusted = table.numbers("adj_close", np.nan) if "adj_close" in table.columns else None
    dividend, split = table.numbers("dividend", 0.0), table.numbers("split", 1.0)
    def positive(values: np.ndarray, zero_ok: bool = False) -> np.ndarray:
        return np.isfinite(values) & ((values >= 0) if zero_ok else (values > 0))

    bad = {"date": np.isnat(dates), "ticker": tickers == "", "close": ~positive(close),
           "dividend": ~positive(dividend, zero_ok=True), "split": ~positive(split)}
    must = "must be a positive number"
    reason = {"date": "unparseable date", "ticker": "empty ticker", "close": must,
              "dividend": "must be a non-negative number", "split": must}
    if adjusted is not None:
        bad["adj_close"], reason["adj_close"] = ~positive(adjusted), must
    table.check(bad, reason)

    day_values, day = np.unique(dates, return_inverse=True)
    names, code = np.unique(tickers.astype(str), return_inverse=True)
    key = day * len(names) + code
    order = np.argsort(key, kind="stable")
    repeated = np.flatnonzero(key[order][1:] == key[order][:-1])
    if len(repeated):
        later, earlier = order[repeated + 1], order[repeated]
        pick = int(np.argmin(later))
        raise table.error(
            f"duplicate row for ({day_values[day[later[pick]]]}, {names[code[later[pick]]]}),"
            f" first seen at {table.unit} {table.rows[earlier[pick]]}", int(later[pick]), "date")

    shape = (len(day_values), len(names))
    present = np.zeros(shape, bool)
    present[day, code] = True

    def wide(values: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(shape, fill)
        out[day, code] = values
        return out

    first = present.argmax(axis=0)
    last = shape[0] - 1 - present[::-1].argmax(axis=0)
    row = np.arange(shape[0])[:, None]
    inside = (row >= first) & (row <= last)
    seen = np.maximum.accumulate(np.where(present, row, -1), axis=0)
    gap = np.where(inside & ~present, row - seen, 0)
    limit = rules.max_gap_days
    if limit is not None and gap.max(initial=0) > limit:
        t, i = np.unravel_index(int(np.argmax(gap)), shape)
        raise DataError(
            f"ticker {names[i]} has no price for {gap[t, i]} trading days in a row, from "
            f"{day_values[t - gap[t, i] + 1]} to {day_values[t]}: the file has a gap longer "
            f"than {limit} trading days, the most the loader fills with the last price (add "
            "the missing rows, drop the ticker, or fill longer gaps with --max-gap-days; in "
            "Python, load_prices(max_gap_days=...))", path=table.path, field="date")
    cells = wide(np.arange(len(day)), -1).astype(np.int64)
    series = _Series(
        dates=day_values.astype("datetime64[D]"), names=names,
        prices=np.where(inside, _forward_fill(wide(close, np.nan), present), np.nan),
        dividends=wide(dividend, 0.0), splits=wide(split, 1.0),
        distributions=np.zeros(shape), returns=np.zeros(shape), actions=())
    if adjusted is not None:
        level = _forward_fill(wide(adjusted, np.nan), present)
        series = _reconcile(series, level, rules, lambda message, t, i: table.error(
            message, int(cells[t, i]), "adj_close"))
    series = _reclassify_dividends(series, rules.distribution_threshold)
    gross = series.splits * (series.prices + series.dividends + series.distributions)
    returns = np.where(row > first, gross / _previous(series.prices) - 1.0, 0.0)
    actions = tuple(sorted(series.actions, key=lambda action: (action.date, action.ticker)))
    return series._replace(returns=np.where(inside, returns, np.nan), actions=actions)


def _split_name(ratio: Fraction) -> str:
    return f"{ratio.numerator}-for-{ratio.denominator} split"


def _unrecorded_split(ratio: float, tolerance: float) -> Fraction | None:
    """The split hidden in a day whose adjusted gross return is ``ratio`` times the raw one.

    The simple ratio within ``tolerance`` of it explains the whole gap. Otherwise, for
    ``ratio > 1`` (the price fell more than the adjusted close) none: a distribution explains
    it. For ``ratio < 1`` (it rose more) a distribution cannot, as it only lowers the price:
    a reverse split did, the mildest of :data:`SPLIT_RATIOS` below ``ratio``, which leaves
    the smallest distribution beside it. None where no ratio is that low.
    """
    nearest = min(SPLIT_RATIOS, key=lambda split: abs(ratio / split - 1))
    if abs(ratio / nearest - 1) <= tolerance:
        return nearest
    if ratio > 1:
        return Fraction(1)
    return max((split for split in SPLIT_RATIOS if split < ratio), default=None)


def _reconcile(series: _Series, level: np.ndarray, rules: _Rules, error) -> _Series:
    """Explain each day whose ``level`` (adjusted close) gross return differs from the raw
    one by more than the tolerance by an unrecorded split and/or distribution; ``error``
    builds the :class:`DataError` of a day ``(message, t, i)``."""
    previous = _previous(series.prices)
    with np.errstate(invalid="ignore", divide="ignore"):
        adjusted = level / _previous(level)
        raw = series.splits * (series.prices + series.dividends) / previous
    ratio = adjusted / raw
    splits, distributions = series.splits.copy(), series.distributions.copy()
    actions = list(series.actions)
    for t, i in np.argwhere(np.abs(ratio - 1) > rules.reconcile_tolerance):
        ticker, date = str(series.names[i]), str(series.dates[t])
        evidence = (f"close, split and dividend give a gross return of {raw[t, i]:.4f}, "
                    f"adj_close {adjusted[t, i]:.4f}")
        split = _unrecorded_split(ratio[t, i], rules.reconcile_tolerance)
        if split is None:
            raise error(f"{ticker} on {date}: {evidence}, more than any split explains", t, i)
        splits[t, i] *= float(split)
        found = []
        if split != 1:
            found.append((SPLIT, float(split), f"an unrecorded {_split_name(split)}"))
        if abs(ratio[t, i] / split - 1) > rules.reconcile_tolerance:
            value = adjusted[t, i] * previous[t, i] / splits[t, i]
            paid = value - series.prices[t, i] - series.dividends[t, i]
            distributions[t, i] += paid
            found.append((DISTRIBUTION, float(paid), (
                f"a value-preserving distribution of {paid:.4g} per share "
                f"({paid * splits[t, i] / previous[t, i]:.1%} of the previous close)")))
        if rules.strict_data:
            inferred = " and ".join(description for _, _, description in found)
            raise error(f"{ticker} on {date}: {evidence}; the loader would infer {inferred} "
                        "(strict data mode refuses inferred corporate actions)", t, i)
        actions += [CorporateAction(ticker, date, kind, size, f"{description}: {evidence}")
                    for kind, size, description in found]
    return series._replace(splits=splits, distributions=distributions, actions=tuple(actions))


def _reclassify_dividends(series: _Series, threshold: float) -> _Series:
    """Recorded dividends above ``threshold`` of the previous close as distributions."""
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = series.dividends * series.splits / _previous(series.prices)
    large = fraction > threshold
    actions = [CorporateAction(
        str(series.names[i]), str(series.dates[t]), RECORDED_DIVIDEND,
        float(series.dividends[t, i]),
        f"recorded dividend of {series.dividends[t, i]:.4g} per share is {fraction[t, i]:.1%} "
        f"of the previous close, above {threshold:.0%}: too large for an ordinary dividend, "
        "read as a distribution (a spin-off, a merger payment)") for t, i in np.argwhere(large)]
    return series._replace(
        dividends=np.where(large, 0.0, series.dividends),
        distributions=series.distributions + np.where(large, series.dividends, 0.0),
        actions=series.actions + tuple(actions))


def _read_sectors(path, names: np.ndarray) -> np.ndarray:
    """Sector index (into GICS_SECTORS) of each ticker in ``names``."""
    table = _Table(path, ("ticker", "sector"))
    tickers, raw = table.text("ticker"), table.text("sector")
    canonical = np.array([canonical_sector(s) for s in raw], dtype=object)
    bad = {"ticker": tickers == "", "sector": np.array([c is None for c in canonical])}
    accepted = ", ".join(GICS_SECTORS)
    table.check(bad, {"ticker": "empty ticker",
                      "sector": f"unknown sector (expected a GICS sector: {accepted})"})
    mapping: dict[str, str] = {}
    for index, (ticker, sector) in enumerate(zip(tickers, canonical, strict=True)):
        if mapping.setdefault(ticker, sector) != sector:
            raise table.error(f"{ticker} is already in sector {mapping[ticker]!r}", index, "sector")
    missing = [t for t in names if t not in mapping]
    if missing:
        shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise DataError(f"{len(missing)} ticker(s) of the price file have no sector: {shown}",
                        path=table.path, field="ticker")
    return np.array([GICS_SECTORS.index(mapping[t]) for t in names])


def _read_weights(path, names: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """Benchmark weights from ``ticker, weight``: renormalized over names listed on day 0."""
    table = _Table(path, ("ticker", "weight"))
    tickers, weight = table.text("ticker"), table.numbers("weight", np.nan)
    table.check({"ticker": tickers == "", "weight": ~(weight >= 0) | np.isinf(weight)},
                {"ticker": "empty ticker", "weight": "must be a non-negative number"})
    given = dict(zip(tickers, weight, strict=True))
    unknown = sorted(set(given) - set(names))
    late = [t for t, ok in zip(names, listed, strict=True) if not ok and given.get(t, 0) > 0]
    for label, dropped in (("not in the price file", unknown), ("not trading on day 0", late)):
        if dropped:
            warnings.warn(f"{path}: ignoring weights of {len(dropped)} ticker(s) {label}: "
                          f"{', '.join(dropped[:10])}", UserWarning, stacklevel=3)
    weights = np.array([given.get(t, 0.0) for t in names]) * listed
    if weights.sum() <= 0:
        raise DataError("no positive weight on a ticker trading on day 0", path=path,
                        field="weight")
    return weights / weights.sum()


def _read_proxies(path, dates: np.ndarray, rules: _Rules) -> dict[int, tuple[str, np.ndarray]]:
    """User proxies (e.g. sector ETFs) by sector index: name and total-return level on
    ``dates`` (as of each date: its last level on or before it, NaN outside its span)."""
    table = _Table(path, ("date", "ticker", "close", "sector"), ("adj_close",))
    sectors = np.array([canonical_sector(s) for s in table.text("sector")], dtype=object)
    table.check({"sector": np.array([s is None for s in sectors])},
                {"sector": "unknown sector"})
    series = _read_prices(table, rules)
    tickers = table.text("ticker")
    by_sector: dict[int, tuple[str, np.ndarray]] = {}
    for index, (ticker, sector) in enumerate(zip(tickers, sectors, strict=True)):
        code = GICS_SECTORS.index(sector)
        if by_sector.setdefault(code, (ticker, None))[0] != ticker:
            raise table.error(f"sector {sector!r} already has proxy {by_sector[code][0]}",
                              index, "sector")
    prices, trading = series.prices, np.isfinite(series.prices)
    first = trading.argmax(axis=0)
    level = prices[first, np.arange(len(series.names))] * np.cumprod(
        1.0 + np.nan_to_num(series.returns), 0)
    level[~trading] = np.nan
    # as of each market date: the proxy's last level on or before it, inside its span
    position = np.searchsorted(series.dates, dates, side="right") - 1
    aligned = np.where((position >= 0)[:, None], level[np.maximum(position, 0)], np.nan)
    ended = dates[:, None] > series.dates[len(series.dates) - 1 - trading[::-1].argmax(0)]
    aligned[ended] = np.nan
    column = {name: i for i, name in enumerate(series.names)}
    return {code: (t, aligned[:, column[t]]) for code, (t, _) in by_sector.items()}


def load_prices(path, sectors_path, *, benchmark: str | Path = "equal",
                proxies_path=None, max_gap_days: int | None = MAX_GAP_DAYS,
                strict_data: bool = False,
                reconcile_tolerance: float = RECONCILE_TOLERANCE,
                distribution_threshold: float = DISTRIBUTION_THRESHOLD) -> MarketData:
    """Load a long-format price file and its sectors into a :class:`MarketData`.

    Args:
        path: CSV or parquet (``.parquet``/``.pq``) with ``date, ticker, close`` and optional
            ``adj_close, dividend, split`` columns.
        sectors_path: CSV or parquet with ``ticker, sector`` (GICS names or common variants).
        benchmark: ``"equal"`` (equal weights over tickers trading on the first date) or a
            file of ``ticker, weight`` (renormalized over tickers trading on the first date).
        proxies_path: optional long-format prices of one proxy per sector (e.g. sector ETFs)
            with ``date, ticker, close, sector`` (``adj_close`` used when present); sectors
            without one get the default benchmark-weighted basket of their members.
        max_gap_days: longest run of missing days inside a ticker's span that is filled with
            its last price; None fills any gap.
        strict_data: refuse (``DataError``) a day that ``split`` and ``dividend`` do not
            reconcile with ``adj_close`` instead of inferring the corporate action.
        reconcile_tolerance: relative difference of a day's adjusted and raw gross returns
            above which the day hides a corporate action (see :data:`RECONCILE_TOLERANCE`).
        distribution_threshold: fraction of the previous close above which a recorded
            dividend is a distribution (see :data:`DISTRIBUTION_THRESHOLD`).

    Raises:
        DataError: for any problem in the files.
    """
    rules = _Rules(max_gap_days, strict_data, reconcile_tolerance, distribution_threshold)
    table = _Table(path, ("date", "ticker", "close"), ("adj_close", "dividend", "split"))
    series = _read_prices(table, rules)
    sectors = _read_sectors(sectors_path, series.names)
    listed = np.isfinite(series.prices[0])
    if isinstance(benchmark, str) and benchmark == "equal":
        weights = listed / listed.sum()
    else:
        weights = _read_weights(benchmark, series.names, listed)
    proxy_prices, proxy_names = sector_proxies(series.returns, sectors, weights, GICS_SECTORS)
    proxy_names = list(proxy_names)
    if proxies_path is not None:
        for code, (ticker, level) in _read_proxies(proxies_path, series.dates, rules).items():
            proxy_prices[:, code], proxy_names[code] = level, ticker
    return MarketData(
        dates=series.dates,
        tickers=tuple(str(t) for t in series.names),
        sectors=sectors,
        sector_names=GICS_SECTORS,
        prices=series.prices,
        dividends=series.dividends,
        splits=series.splits,
        total_returns=series.returns,
        benchmark_weights=weights,
        proxy_prices=proxy_prices,
        proxy_names=tuple(proxy_names),
        regime=np.full(len(series.dates), REGIME_UNKNOWN, np.int8),
        source=f"loaded from {Path(path).name}",
        corporate_actions=series.actions,
    )


def corporate_action_summary(market: MarketData) -> dict[str, int]:
    """Number of the market's inferred or reclassified corporate actions by kind."""
    return dict(Counter(action.kind for action in market.corporate_actions))


def corporate_action_records(market: MarketData) -> list[dict]:
    """The market's corporate actions as JSON-ready dicts (ticker, date, kind, size, detail)."""
    return [action._asdict() for action in market.corporate_actions]
