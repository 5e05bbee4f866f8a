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
- Trade prices are the raw ``close``; ``split`` becomes ``splits``; ``total_returns`` come
  from ``adj_close`` when present, else from ``split * (close + dividend) / previous close``.
- User mistakes raise :class:`DataError` naming the file, the row (CSV: the line number,
  header = line 1; parquet: the 1-based row) and the field.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from taxharvest.market.universe import (
    GICS_SECTORS,
    REGIME_UNKNOWN,
    MarketData,
    canonical_sector,
    sector_proxies,
)

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


class DataError(ValueError):
    """A problem in a user's data file; ``str`` is one readable line.

    Attributes:
        path: the file.
        row: CSV line number (header = line 1) or 1-based parquet row; None for whole-file
            problems.
        field: the column concerned, or None.
    """

    def __init__(self, message: str, path=None, row: int | None = None,
                 field: str | None = None, unit: str = "line") -> None:
        self.path, self.row, self.field, self.message = path, row, field, message
        where = [str(path)] if path is not None else []
        where += [f"{unit} {row}"] if row is not None else []
        where += [f"field '{field}'"] if field is not None else []
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class _Table:
    """A data file read as strings with a row-number map and resolved column names."""

    def __init__(self, path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError("file not found", path)
        try:
            if self.path.suffix.lower() in (".parquet", ".pq"):
                frame, self.unit, offset = pd.read_parquet(self.path), "row", 1
            else:
                frame = pd.read_csv(self.path, dtype=str, skip_blank_lines=False)
                self.unit, offset = "line", 2
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read: {exc}".replace("\n", " "), path) from exc
        frame = frame.reset_index(drop=True)
        frame = frame[frame.notna().any(axis=1)]  # blank lines keep their line numbers
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
                                path, field=name)

    def error(self, message: str, index: int | None = None, field: str | None = None):
        row = None if index is None else int(self.rows[index])
        return DataError(message, self.path, row, field, self.unit)

    def check(self, bad: dict[str, np.ndarray], reason: dict[str, str]) -> None:
        """Raise for the earliest row with a bad field (first bad field of that row)."""
        firsts = {name: int(np.argmax(mask)) for name, mask in bad.items() if mask.any()}
        if firsts:
            index = min(firsts.values())
            name = next(n for n in bad if firsts.get(n) == index)
            value = self.columns[name].iloc[index]
            raise self.error(f"{reason[name]}, got {value!r}", index, name)

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


def _forward_fill(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Fill each column's missing rows with its last present value (NaN before the first)."""
    rows = np.where(present, np.arange(len(values))[:, None], -1)
    last = np.maximum.accumulate(rows, axis=0)
    filled = values[np.maximum(last, 0), np.arange(values.shape[1])]
    return np.where(last >= 0, filled, np.nan)


def _read_prices(table: _Table, max_gap_days: int | None):
    """Parse, validate and pivot a long price table: dates, tickers, wide arrays, span."""
    dates, tickers = table.dates(), table.text("ticker")
    close = table.numbers("close", np.nan)
    adjusted = table.numbers("adj_close", np.nan) if "adj_close" in table.columns else None
    dividend, split = table.numbers("dividend", 0.0), table.numbers("split", 1.0)
    positive = "must be a positive number"
    bad = {"date": np.isnat(dates), "ticker": tickers == "",
           "close": ~(close > 0), "dividend": ~(dividend >= 0), "split": ~(split > 0)}
    reason = {"date": "unparseable date", "ticker": "empty ticker", "close": positive,
              "dividend": "must be a non-negative number", "split": positive}
    if adjusted is not None:
        bad["adj_close"], reason["adj_close"] = ~(adjusted > 0), positive
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
    if max_gap_days is not None and gap.max(initial=0) > max_gap_days:
        t, i = np.unravel_index(int(np.argmax(gap)), shape)
        start = day_values[t - gap[t, i] + 1]
        raise DataError(
            f"ticker {names[i]} has no price for {gap[t, i]} trading days from {start} to "
            f"{day_values[t]} (more than max_gap_days={max_gap_days}); pass a larger "
            "max_gap_days to carry its last price over the gap", table.path, field="date")
    prices = np.where(inside, _forward_fill(wide(close, np.nan), present), np.nan)
    dividends = wide(dividend, 0.0)
    splits = wide(split, 1.0)
    previous = np.vstack([np.full((1, shape[1]), np.nan), prices[:-1]])
    if adjusted is not None:
        level = _forward_fill(wide(adjusted, np.nan), present)
        growth = level / np.vstack([np.full((1, shape[1]), np.nan), level[:-1]])
    else:
        growth = splits * (prices + dividends) / previous
    returns = np.where(inside, np.where(row > first, growth - 1.0, 0.0), np.nan)
    return day_values.astype("datetime64[D]"), names, prices, dividends, splits, returns


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
                        table.path, field="ticker")
    return np.array([GICS_SECTORS.index(mapping[t]) for t in names])


def _read_weights(path, names: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """Benchmark weights from ``ticker, weight``: renormalized over names listed on day 0."""
    table = _Table(path, ("ticker", "weight"))
    tickers, weight = table.text("ticker"), table.numbers("weight", np.nan)
    table.check({"ticker": tickers == "", "weight": ~(weight >= 0)},
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
        raise DataError("no positive weight on a ticker trading on day 0", path, field="weight")
    return weights / weights.sum()


def _read_proxies(path, dates: np.ndarray, max_gap_days: int | None
                  ) -> dict[int, tuple[str, np.ndarray]]:
    """User proxies (e.g. sector ETFs) by sector index: name and total-return level on
    ``dates`` (as of each date: its last level on or before it, NaN outside its span)."""
    table = _Table(path, ("date", "ticker", "close", "sector"), ("adj_close",))
    sectors = np.array([canonical_sector(s) for s in table.text("sector")], dtype=object)
    table.check({"sector": np.array([s is None for s in sectors])},
                {"sector": "unknown sector"})
    proxy_dates, names, prices, _, _, returns = _read_prices(table, max_gap_days)
    tickers = table.text("ticker")
    by_sector: dict[int, tuple[str, np.ndarray]] = {}
    for index, (ticker, sector) in enumerate(zip(tickers, sectors, strict=True)):
        code = GICS_SECTORS.index(sector)
        if by_sector.setdefault(code, (ticker, None))[0] != ticker:
            raise table.error(f"sector {sector!r} already has proxy {by_sector[code][0]}",
                              index, "sector")
    first = np.isfinite(prices).argmax(axis=0)
    level = prices[first, np.arange(len(names))] * np.cumprod(1.0 + np.nan_to_num(returns), 0)
    level[~np.isfinite(prices)] = np.nan
    # as of each market date: the proxy's last level on or before it, inside its span
    position = np.searchsorted(proxy_dates, dates, side="right") - 1
    aligned = np.where((position >= 0)[:, None], level[np.maximum(position, 0)], np.nan)
    ended = dates[:, None] > proxy_dates[len(proxy_dates) - 1 - np.isfinite(prices)[::-1].argmax(0)]
    aligned[ended] = np.nan
    column = {name: i for i, name in enumerate(names)}
    return {code: (t, aligned[:, column[t]]) for code, (t, _) in by_sector.items()}


def load_prices(path, sectors_path, *, benchmark: str | Path = "equal",
                proxies_path=None, max_gap_days: int | None = 5) -> MarketData:
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

    Raises:
        DataError: for any problem in the files.
    """
    table = _Table(path, ("date", "ticker", "close"), ("adj_close", "dividend", "split"))
    dates, names, prices, dividends, splits, returns = _read_prices(table, max_gap_days)
    sectors = _read_sectors(sectors_path, names)
    listed = np.isfinite(prices[0])
    if isinstance(benchmark, str) and benchmark == "equal":
        weights = listed / listed.sum()
    else:
        weights = _read_weights(benchmark, names, listed)
    proxy_prices, proxy_names = sector_proxies(returns, sectors, weights, GICS_SECTORS)
    proxy_names = list(proxy_names)
    if proxies_path is not None:
        for code, (ticker, series) in _read_proxies(proxies_path, dates, max_gap_days).items():
            proxy_prices[:, code], proxy_names[code] = series, ticker
    return MarketData(
        dates=dates,
        tickers=tuple(str(t) for t in names),
        sectors=sectors,
        sector_names=GICS_SECTORS,
        prices=prices,
        dividends=dividends,
        splits=splits,
        total_returns=returns,
        benchmark_weights=weights,
        proxy_prices=proxy_prices,
        proxy_names=tuple(proxy_names),
        regime=np.full(len(dates), REGIME_UNKNOWN, np.int8),
        source=f"loaded from {Path(path).name}",
    )
