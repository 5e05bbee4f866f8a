"""The client's account: its lots (a ``ticker,shares,date_acquired,cost_basis`` file checked
against a market) and its cash flows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from taxharvest.envs.cashflows import CashFlow, parse_periodic
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


def read_cash_flows(contributions: str | None, withdrawals: str | None,
                    path: Path | None) -> tuple[CashFlow, ...]:
    """The account's cash flows from ``--contributions 5000/month``, ``--withdrawals 2%/year``
    and a ``date,amount`` file (a positive amount a deposit, a negative one a withdrawal)."""
    flows = []
    for option, spec, sign in (("contributions", contributions, 1.0),
                               ("withdrawals", withdrawals, -1.0)):
        if spec is not None:
            try:
                flows.append(parse_periodic(spec, sign))
            except ValueError as err:
                raise InputError(str(err), field=option) from None
    if path is not None:
        for line, row in enumerate(read_csv_rows(path, ("date", "amount"), "cash flows"), start=2):
            cells = {k: (row.get(k) or "").strip() for k in ("date", "amount")}
            try:
                date = str(np.datetime64(cells["date"], "D"))
            except ValueError:
                raise InputError(f"cannot parse date {cells['date']!r} (expected YYYY-MM-DD)",
                                 path=path, row=line, field="date") from None
            try:
                amount = float(cells["amount"])
            except ValueError:
                amount = math.nan
            if not math.isfinite(amount) or amount == 0:
                raise InputError(f"amount must be a non-zero number of dollars, got "
                                 f"{cells['amount']!r}", path=path, row=line, field="amount")
            flows.append(CashFlow(amount=amount, date=date))
    return tuple(flows)
