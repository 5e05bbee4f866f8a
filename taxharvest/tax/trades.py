"""Trade files: read and validate ``date,ticker,side,shares,price[,lot_id]`` CSVs, replay them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taxharvest.errors import InputError
from taxharvest.io import read_csv_rows
from taxharvest.tax import kernel
from taxharvest.tax.calendar import to_day
from taxharvest.tax.ledger import Ledger, LedgerError, Trades

REQUIRED = ("date", "ticker", "side", "shares", "price")
SIDES = {"buy": kernel.BUY, "sell": kernel.SELL, "split": kernel.SPLIT,
         "distribution": kernel.DISTRIBUTION}


@dataclass(frozen=True)
class TradeFile:
    """A validated trade file: the batch, its tickers, lot labels and source lines."""

    path: str
    tickers: tuple[str, ...]
    trades: Trades
    lines: np.ndarray
    lot_ids: dict[str, int]


def read_trades(path: str | Path) -> TradeFile:
    """Parse a trade CSV; raise :class:`InputError` naming the line and field of a bad row.

    Rows of one date execute in file order; dates must not go backwards. ``split`` rows
    carry the ratio of new to old shares in ``shares`` (2 for a 2-for-1 split);
    ``distribution`` rows (a spin-off) the value distributed per share in ``shares`` and the
    ex-distribution price in ``price``.
    Specific identification: a buy may name its lot in ``lot_id``; a sell naming a
    ``lot_id`` relieves that lot only.
    """
    path = Path(path)
    rows = read_csv_rows(path, REQUIRED, "trade file", optional=("lot_id",))
    n = len(rows)
    tickers: dict[str, int] = {}
    t_ticker = np.empty(n, np.int64)
    t_day = np.empty(n, np.int64)
    t_side = np.empty(n, np.int64)
    t_qty = np.empty(n, np.float64)
    t_price = np.empty(n, np.float64)
    t_lot = np.full(n, -1, np.int64)
    lot_ids: dict[str, int] = {}
    lot_ticker: dict[str, str] = {}
    n_buys = 0
    last_day = None
    for i, row in enumerate(rows):
        line = i + 2

        def bad(field: str, message: str, line: int = line) -> InputError:
            return InputError(message, path=path, row=line, field=field)

        if None in row:
            raise bad("", "more values than columns")
        value = {k: (v or "").strip() for k, v in row.items()}
        try:
            day = to_day(value["date"])
        except ValueError:
            raise bad("date", f"cannot parse date {value['date']!r} (expected YYYY-MM-DD)") from None
        if last_day is not None and day < last_day:
            raise bad("date", f"date {value['date']} is earlier than the row before; "
                              "trades must be in date order")
        last_day = day
        ticker = value["ticker"].upper()
        if not ticker:
            raise bad("ticker", "empty ticker")
        side = value["side"].lower()
        if side not in SIDES:
            raise bad("side", f"unknown side {value['side']!r} (expected {', '.join(SIDES)})")
        numbers = {}
        for field in ("shares", "price"):
            if side == "split" and field == "price" and not value[field]:
                numbers[field] = 0.0
                continue
            try:
                numbers[field] = float(value[field])
            except ValueError:
                raise bad(field, f"cannot parse number {value[field]!r}") from None
            if not np.isfinite(numbers[field]) or numbers[field] <= 0 and not (
                side == "split" and field == "price"
            ):
                raise bad(field, f"{field} must be positive, got {value[field]}")
        lot_id = value.get("lot_id", "")
        t_ticker[i] = tickers.setdefault(ticker, len(tickers))
        t_day[i] = day
        t_side[i] = SIDES[side]
        t_qty[i] = numbers["shares"]
        t_price[i] = numbers["price"]
        if side == "buy":
            if lot_id:
                if lot_id in lot_ids:
                    raise bad("lot_id", f"lot_id {lot_id!r} is already used by an earlier buy")
                lot_ids[lot_id] = n_buys
                lot_ticker[lot_id] = ticker
            t_lot[i] = n_buys
            n_buys += 1
        elif side == "sell" and lot_id:
            if lot_ticker.get(lot_id) != ticker:
                raise bad("lot_id", f"unknown lot_id {lot_id!r} for {ticker}: no earlier buy "
                                    "of that ticker names it")
            t_lot[i] = lot_ids[lot_id]
    return TradeFile(
        path=str(path),
        tickers=tuple(tickers),
        trades=Trades(t_ticker, t_day, t_side, t_qty, t_price, t_lot),
        lines=np.arange(2, n + 2),
        lot_ids=lot_ids,
    )


def replay(
    trade_file: TradeFile, *, relief: str = "fifo", equivalents: Iterable[Iterable[str]] = ()
) -> Ledger:
    """Replay a trade file through a fresh ledger; errors name the file and line."""
    ledger = Ledger(trade_file.tickers, equivalents=equivalents, relief=relief)
    ledger.lot_ids.update(trade_file.lot_ids)
    try:
        ledger.apply(trade_file.trades)
    except LedgerError as err:
        raise InputError(err.message, path=trade_file.path,
                         row=int(trade_file.lines[err.trade]),
                         field="lot_id" if trade_file.trades.lot[err.trade] >= 0
                         and trade_file.trades.side[err.trade] == kernel.SELL else "shares"
                         ) from None
    return ledger
