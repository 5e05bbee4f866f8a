"""Lot ledger: tax lots as ``(ticker, slot)`` numpy arrays, trades through one kernel.

The same :class:`Ledger` replays a firm's trade file trade by trade and carries the
environment's 500-stock book; both call :func:`taxharvest.tax.kernel.apply_trades`, so the
wash-sale rule exists once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from taxharvest.errors import InputError, LedgerError
from taxharvest.tax import kernel
from taxharvest.tax.calendar import ANNIVERSARY, DAY_BASE, YEAR_OF_DAY, to_date, to_day

RELIEF_METHODS = {"fifo": kernel.FIFO, "hifo": kernel.HIFO}
_YEAR_BASE = int(YEAR_OF_DAY[0])


def _refused(message: str, *, trade: int) -> LedgerError:
    """The :class:`LedgerError` for trade ``trade`` (its index in the batch, as ``.trade``)."""
    error = LedgerError(message)
    error.trade = trade
    return error


@dataclass(frozen=True)
class Trades:
    """A batch of trades as parallel arrays, applied in order.

    ``side`` is ``kernel.BUY``, ``kernel.SELL``, ``kernel.SPLIT`` (``qty`` is then the
    ratio of new to old shares) or ``kernel.DISTRIBUTION`` (``qty`` the value distributed
    per share, ``price`` the ex-distribution price); ``lot`` is a purchase id or -1.
    """

    ticker: np.ndarray
    day: np.ndarray
    side: np.ndarray
    qty: np.ndarray
    price: np.ndarray
    lot: np.ndarray

    @classmethod
    def of(cls, ticker, day, side, qty, price, lot=None) -> Trades:
        ticker = np.atleast_1d(np.asarray(ticker, dtype=np.int64))
        n = ticker.shape[0]

        def column(values, dtype):
            array = np.asarray(values, dtype=dtype)
            if array.ndim == 0:
                return np.full(n, array, dtype)
            if array.shape != (n,):
                raise ValueError(f"trade columns must have {n} entries, got {array.shape}")
            return np.ascontiguousarray(array)

        return cls(
            ticker=np.ascontiguousarray(ticker),
            day=column(day, np.int64),
            side=column(side, np.int64),
            qty=column(qty, np.float64),
            price=column(price, np.float64),
            lot=column(-1 if lot is None else lot, np.int64),
        )

    def __len__(self) -> int:
        return int(self.ticker.shape[0])


def equivalence_groups(tickers: Sequence[str], equivalents: Iterable[Iterable[str]]) -> np.ndarray:
    """Group id per ticker: tickers in one equivalence set are substantially identical."""
    index = {t: i for i, t in enumerate(tickers)}
    parent = list(range(len(tickers)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for members in equivalents:
        rows = [index[t] for t in members if t in index]
        for r in rows[1:]:
            parent[root(r)] = root(rows[0])
    roots = [root(i) for i in range(len(tickers))]
    relabel = {r: g for g, r in enumerate(dict.fromkeys(roots))}
    return np.array([relabel[r] for r in roots], dtype=np.int64)


class Ledger:
    """Open lots, pending wash-sale windows and the sales log of one account.

    Args:
        tickers: the securities the account may hold (rows of the lot arrays).
        equivalents: sets of tickers treated as substantially identical (e.g. GOOG, GOOGL).
        relief: default lot relief for sales without a lot: ``"fifo"`` or ``"hifo"``.
        slots: initial lot slots per ticker (grows as needed).
        cash: opening cash.

    Lot arrays (``shares``, ``basis``, ``wash_adj``, ``acq``, ``bought``, ``purchase``,
    ``absorbed``) are ``(n_tickers, slots)``; an empty slot has ``shares == 0`` and
    ``used[row]`` bounds the slots a row has in use (its high-water mark). ``basis``
    is total cost basis including wash-sale adjustments; ``acq`` the holding-period start
    (moved back by carried-over holding periods); ``bought`` the actual purchase day.
    """

    def __init__(
        self,
        tickers: Sequence[str],
        *,
        equivalents: Iterable[Iterable[str]] = (),
        relief: str = "fifo",
        slots: int = 8,
        cash: float = 0.0,
    ) -> None:
        if relief not in RELIEF_METHODS:
            raise ValueError(f"relief must be one of {sorted(RELIEF_METHODS)}, got {relief!r}")
        self.tickers = tuple(tickers)
        self.ticker_index = {t: i for i, t in enumerate(self.tickers)}
        self.relief = relief
        n = len(self.tickers)
        self.group = equivalence_groups(self.tickers, equivalents)
        n_groups = int(self.group.max()) + 1 if n else 0
        order = np.argsort(self.group, kind="stable")
        self._group_rows = order.astype(np.int64)
        self._group_ptr = np.searchsorted(self.group[order], np.arange(n_groups + 1)).astype(
            np.int64
        )
        self.shares = np.zeros((n, slots))
        self.basis = np.zeros((n, slots))
        self.wash_adj = np.zeros((n, slots))
        self.acq = np.zeros((n, slots), np.int64)
        self.bought = np.zeros((n, slots), np.int64)
        self.purchase = np.full((n, slots), -1, np.int64)
        self.absorbed = np.zeros((n, slots), np.bool_)
        self.used = np.zeros(n, np.int64)  # per row: slots at and above this are empty
        self._pending = _Table(64, ticker=np.int64, group=np.int64, day=np.int64,
                               qty=np.float64, loss=np.float64, hold=np.int64, sale=np.int64)
        self._sales = _Table(256, ticker=np.int64, qty=np.float64, acq=np.int64, day=np.int64,
                             proceeds=np.float64, basis=np.float64, disallowed=np.float64,
                             purchase=np.int64, kind=np.int64)
        self.realized_by_year = np.zeros((len(YEAR_OF_DAY) // 365 + 2, 2))
        self._cash = np.array([float(cash)])
        self._next_purchase = np.zeros(1, np.int64)
        never = np.iinfo(np.int64).min // 2
        self.last_buy = np.full(n_groups, never, np.int64)
        self.last_loss_sale = np.full(n_groups, never, np.int64)
        self.lot_ids: dict[str, int] = {}

    # --- trading -------------------------------------------------------------------------

    def apply(self, trades: Trades) -> None:
        """Apply a batch of trades in order; raise :class:`LedgerError` at the first bad one.

        Trades before the bad one stay applied.
        """
        start = 0
        while True:
            status, index = kernel.apply_trades(
                trades.ticker, trades.day, trades.side, trades.qty, trades.price, trades.lot,
                start, RELIEF_METHODS[self.relief],
                self.group, self._group_ptr, self._group_rows,
                self.shares, self.basis, self.wash_adj, self.acq, self.bought, self.purchase,
                self.absorbed, self.used,
                *self._pending.columns(), self._pending.count,
                *self._sales.columns(), self._sales.count,
                self.realized_by_year, self._cash, self._next_purchase,
                self.last_buy, self.last_loss_sale,
                YEAR_OF_DAY, ANNIVERSARY, DAY_BASE, _YEAR_BASE,
            )
            if status == kernel.OK:
                return
            start = index
            if status == kernel.GROW_SLOTS:
                self._grow_slots()
            elif status == kernel.GROW_PENDING:
                self._pending.grow()
            elif status == kernel.GROW_SALES:
                self._sales.grow(len(trades) - index + self.shares.shape[1])
            elif status == kernel.ERR_OVERSELL:
                ticker = self.tickers[trades.ticker[index]]
                held = self.position(ticker) if trades.lot[index] < 0 else self._lot_shares(
                    trades.ticker[index], trades.lot[index])
                raise _refused(
                    f"selling {trades.qty[index]:g} shares of {ticker} but only {held:g} held"
                    + (" in that lot" if trades.lot[index] >= 0 else ""),
                    trade=index,
                )
            elif status == kernel.ERR_BAD_DISTRIBUTION:
                raise _refused(
                    f"distribution of {trades.qty[index]:g} a share of "
                    f"{self.tickers[trades.ticker[index]]} at ex-price {trades.price[index]:g}: "
                    "both must be non-negative",
                    trade=index,
                )
            else:
                raise _refused(
                    f"no open lot {self.lot_label(trades.lot[index])} of "
                    f"{self.tickers[trades.ticker[index]]}",
                    trade=index,
                )

    def buy(self, ticker: str, shares: float, price: float, date, lot_id: str | None = None) -> int:
        """Buy ``shares`` at ``price`` on ``date``; return the new lot's purchase id."""
        pid = int(self._next_purchase[0])
        if lot_id is not None:
            if lot_id in self.lot_ids:
                raise _refused(f"lot_id {lot_id!r} is already used", trade=0)
            self.lot_ids[lot_id] = pid
        self.apply(Trades.of(self._row(ticker), to_day(date), kernel.BUY, shares, price, pid))
        return pid

    def sell(self, ticker: str, shares: float, price: float, date, lot_id: str | None = None) -> None:
        """Sell ``shares`` at ``price`` on ``date`` from ``lot_id`` or by the relief method."""
        lot = -1 if lot_id is None else self._lot(lot_id)
        self.apply(Trades.of(self._row(ticker), to_day(date), kernel.SELL, shares, price, lot))

    def split(self, ticker: str, ratio: float, date) -> None:
        """Stock split: shares multiply by ``ratio``; total basis is unchanged."""
        self.apply(Trades.of(self._row(ticker), to_day(date), kernel.SPLIT, ratio, 0.0))

    def distribution(self, ticker: str, per_share: float, ex_price: float, date) -> float:
        """Non-dividend distribution (spin-off) worth ``per_share`` a share, ``ticker`` at
        ``ex_price`` ex-distribution; return the cash credited (``per_share`` a share held).

        Each lot keeps its shares and holding period with basis scaled by
        ``ex_price / (ex_price + per_share)``; the rest of its basis goes to the distributed
        property, sold at once for its value: a sales-log row per lot (see ``kernel``).
        """
        before = self.cash
        self.apply(Trades.of(self._row(ticker), to_day(date), kernel.DISTRIBUTION, per_share,
                             ex_price))
        return self.cash - before

    def dividend(self, ticker: str, per_share: float) -> float:
        """Credit a cash dividend on the shares held; return the amount."""
        amount = float(per_share) * self.position(ticker)
        self._cash[0] += amount
        return amount

    # --- state ---------------------------------------------------------------------------

    @property
    def cash(self) -> float:
        return float(self._cash[0])

    @cash.setter
    def cash(self, value: float) -> None:
        self._cash[0] = value

    @property
    def next_purchase(self) -> int:
        return int(self._next_purchase[0])

    def positions(self) -> np.ndarray:
        """Shares held per ticker."""
        return self.shares.sum(axis=1)

    def position(self, ticker: str) -> float:
        return float(self.shares[self._row(ticker)].sum())

    def realized(self, year: int) -> tuple[float, float]:
        """Net realized (short-term, long-term) gain of a calendar year so far."""
        short, long = self.realized_by_year[year - _YEAR_BASE]
        return float(short), float(long)

    @property
    def n_sales(self) -> int:
        """Rows in the sales log so far."""
        return int(self._sales.count[0])

    @property
    def total_disallowed(self) -> float:
        """Wash-sale losses disallowed so far, over all sales."""
        return float(self._sales.view()["disallowed"].sum())

    def sales(self, start: int = 0) -> dict[str, np.ndarray]:
        """The sales log from row ``start``, one row per lot portion sold (Form 8949 rows).

        ``distribution`` marks the rows of distributed property (``shares``: the lot's
        shares it was paid on), not sales of the stock itself.
        """
        s = {name: col[start:] for name, col in self._sales.view().items()}
        return {
            "row": s["ticker"],
            "ticker": np.asarray(self.tickers, dtype=object)[s["ticker"]] if len(s["ticker"])
            else np.array([], dtype=object),
            "shares": s["qty"],
            "acquired": s["acq"],
            "sold": s["day"],
            "proceeds": s["proceeds"],
            "cost_basis": s["basis"],
            "wash_sale_disallowed": s["disallowed"],
            "gain": s["proceeds"] - s["basis"] + s["disallowed"],
            "long_term": s["day"] > ANNIVERSARY[s["acq"] - DAY_BASE],
            "distribution": s["kind"] == kernel.DISTRIBUTION,
        }

    def open_lots(self) -> list[dict]:
        """Open lots in (ticker, purchase) order, with adjusted dates and basis."""
        rows, slots = np.nonzero(self.shares > 0)
        order = np.lexsort((slots, self.purchase[rows, slots], rows))
        labels = {pid: label for label, pid in self.lot_ids.items()}
        return [
            {
                "ticker": self.tickers[r],
                "shares": float(self.shares[r, j]),
                "date_acquired": to_date(self.acq[r, j]),
                "cost_basis": float(self.basis[r, j]),
                "wash_adjustment": float(self.wash_adj[r, j]),
                "lot": labels.get(int(self.purchase[r, j]), f"#{self.purchase[r, j]}"),
            }
            for r, j in zip(rows[order], slots[order], strict=True)
        ]

    def lot_label(self, purchase: int) -> str:
        """The user's lot_id of a purchase, or ``#<purchase id>`` (for one message)."""
        return next((label for label, pid in self.lot_ids.items() if pid == purchase),
                    f"#{purchase}")

    # --- internals -----------------------------------------------------------------------

    def _row(self, ticker: str) -> int:
        try:
            return self.ticker_index[ticker]
        except KeyError:
            raise InputError(f"unknown ticker {ticker!r}") from None

    def _lot(self, lot_id: str) -> int:
        try:
            return self.lot_ids[lot_id]
        except KeyError:
            raise InputError(f"unknown lot_id {lot_id!r}") from None

    def _lot_shares(self, row: int, purchase: int) -> float:
        return float(self.shares[row][self.purchase[row] == purchase].sum())

    def _grow_slots(self) -> None:
        extra = self.shares.shape[1]
        for name in ("shares", "basis", "wash_adj", "acq", "bought", "purchase", "absorbed"):
            old = getattr(self, name)
            pad = np.zeros((old.shape[0], extra), old.dtype)
            if name == "purchase":
                pad -= 1
            setattr(self, name, np.concatenate([old, pad], axis=1))


class _Table:
    """Growable columns with a shared row count (pending windows, the sales log)."""

    def __init__(self, capacity: int, **dtypes: type) -> None:
        self._cols = {name: np.zeros(capacity, dtype) for name, dtype in dtypes.items()}
        self.count = np.zeros(1, np.int64)

    def columns(self) -> list[np.ndarray]:
        return list(self._cols.values())

    def grow(self, at_least: int = 0) -> None:
        extra = max(len(next(iter(self._cols.values()))), at_least)
        for name, col in self._cols.items():
            self._cols[name] = np.concatenate([col, np.zeros(extra, col.dtype)])

    def view(self) -> dict[str, np.ndarray]:
        n = int(self.count[0])
        return {name: col[:n] for name, col in self._cols.items()}
