"""The client's lots: a ``ticker,shares,date_acquired,cost_basis`` file checked against a market."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from taxharvest.errors import InputError
from taxharvest.io import read_csv_rows
from taxharvest.market.universe import MarketData

INITIAL_LOT_COLUMNS = ("ticker", "shares", "date_acquired", "cost_basis")


def read_initial_lots(path: Path, mk: MarketData, start: str) -> tuple[list[dict], float]:
    """Validated ``ticker,shares,date_acquired,cost_basis`` rows and their value at ``start``."""
    rows = read_csv_rows(path, INITIAL_LOT_COLUMNS, "initial lots")
    row_of = {t.upper(): i for i, t in enumerate(mk.tickers)}
    start_row = mk.date_index(start)
    lots, value = [], 0.0
    for line, row in enumerate(rows, start=2):
        def bad(field: str, message: str, line: int = line) -> InputError:
            return InputError(message, path=path, row=line, field=field)

        if None in row:
            raise bad("", "more values than columns")
        cells = {k: (row.get(k) or "").strip() for k in INITIAL_LOT_COLUMNS}
        ticker = cells["ticker"].upper()
        if ticker not in row_of:
            raise bad("ticker", f"unknown ticker {cells['ticker']!r} (not in the market)")
        price = mk.prices[start_row, row_of[ticker]]
        if not np.isfinite(price):
            raise bad("ticker", f"{ticker} has no price on the start date {start}")
        numbers = {}
        for field in ("shares", "cost_basis"):
            try:
                numbers[field] = float(cells[field])
            except ValueError:
                raise bad(field, f"cannot parse number {cells[field]!r}") from None
            if not math.isfinite(numbers[field]) or numbers[field] < 0 or (
                    field == "shares" and numbers[field] == 0):
                raise bad(field, f"{field} must be {'positive' if field == 'shares' else 'at least 0'}"
                                 f", got {cells[field]}")
        try:
            acquired = np.datetime64(cells["date_acquired"], "D")
        except ValueError:
            raise bad("date_acquired", f"cannot parse date {cells['date_acquired']!r} "
                                       "(expected YYYY-MM-DD)") from None
        if acquired > np.datetime64(start):
            raise bad("date_acquired", f"{acquired} is after the start date {start}")
        lots.append({"ticker": ticker, "shares": numbers["shares"],
                     "date_acquired": str(acquired), "cost_basis": numbers["cost_basis"]})
        value += numbers["shares"] * float(price)
    return lots, value
