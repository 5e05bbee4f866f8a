"""The broker: the account's ledger, its orders, their executions and corporate actions.

Every trade goes through the tax engine's :class:`~taxharvest.tax.ledger.Ledger`, so the
wash-sale rule applies to the environment's own purchases (cash investment, swap-backs,
the guardrail's rebalancing) as to any other; the broker never buys into a wash window and
never sells at a loss what a recent purchase would wash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from taxharvest.envs.features import (
    LOT_FEATURE_INDEX,
    N_LOT_FEATURES,
    loss_lots,
    lot_features,
    plan_withdrawal,
    wash_blocks,
)
from taxharvest.envs.world import World
from taxharvest.tax import kernel
from taxharvest.tax.calendar import ANNIVERSARY, DAY_BASE, WASH_WINDOW_DAYS
from taxharvest.tax.ledger import Ledger, Trades

SELL_CUSHION = 0.10
LOT = LOT_FEATURE_INDEX


@dataclass
class Order:
    """Share deltas decided on one day, executed ``lag`` trading days later."""

    execute_at: int
    shares: np.ndarray  # (m,) signed: negative sells (HIFO: loss lots first), positive buys
    harvest: np.ndarray  # (n,) bool: names whose loss lots this order harvests
    swap_back: np.ndarray  # (n,) bool: names bought back from their proxy
    adjustment: np.ndarray  # (m,) weight the guardrail added (+) or removed (-)
    lot_sells: np.ndarray | None = None  # (m, L) shares per lot slot (specific identification)
    lot_ids: np.ndarray | None = None  # (m, L) purchase id of each slot when decided


@dataclass(frozen=True)
class Blocks:
    """The wash-sale state of every security on one day (see :func:`wash_blocks`)."""

    buy_blocked: np.ndarray  # (m,) a purchase would wash a loss sale of the last 30 days
    sell_blocked: np.ndarray  # (m,) bought in the last 30 days, a lot near or below basis
    park: np.ndarray  # (K,) the proxy row a harvest in the sector may go to, -1 for none
    harvestable: np.ndarray  # (n,) a harvest may be asked for


@dataclass(frozen=True)
class Execution:
    """What one day's executions did."""

    harvested: float = 0.0  # losses realized, positive
    disallowed: float = 0.0  # wash-sale disallowed losses
    n_trades: int = 0

    def __add__(self, other: Execution) -> Execution:
        return Execution(self.harvested + other.harvested, self.disallowed + other.disallowed,
                         self.n_trades + other.n_trades)


class Broker:
    """The account's lots, cash, last prices and pending orders over one episode.

    Args:
        world: the episode's securities.
        start: first row of the episode (prices known up to it).
        cash: the account's cash at the start.
        equivalents: groups of substantially identical tickers.
        record_trades: keep an audit trail of every trade with its reason and lots.
    """

    def __init__(self, world: World, start: int, cash: float,
                 equivalents: Sequence[Sequence[str]], record_trades: bool) -> None:
        self.world = world
        self.t = start
        self.ledger = Ledger(world.names, relief="hifo", equivalents=equivalents, slots=8,
                             cash=cash)
        self.last_price = np.where(np.isfinite(world.prices[start]), world.prices[start], 0.0)
        for row in range(start):  # last known price of anything not trading on the start day
            seen = np.isfinite(world.prices[row]) & (self.last_price == 0)
            self.last_price[seen] = world.prices[row][seen]
        self.orders: list[Order] = []
        self.trade_log: list[Trades] = []
        self.record_trades = record_trades
        self.trades: list[dict] = []  # the audit trail of the current step
        self.features = np.zeros((world.n_securities, N_LOT_FEATURES))
        self.disallowed_total = 0.0
        self.refresh()

    # --- state ---------------------------------------------------------------------------

    @property
    def day(self) -> int:
        return int(self.world.days[self.t])

    @property
    def weights(self) -> np.ndarray:
        """``(m,)`` weight of every security (cash is the rest), as of the last refresh."""
        return self._weights

    @property
    def value(self) -> float:
        """The account's value (securities at their last price plus cash)."""
        return self._value

    def marked_value(self) -> float:
        """The account's value at today's prices without a refresh (what a day between
        decisions reads): each security's shares at its last price, plus cash."""
        positions = self.ledger.shares.sum(axis=1)
        held = positions > 0
        return float(positions[held] @ self.last_price[held]) + self.ledger.cash

    def refresh(self) -> None:
        """Recompute the lot features and weights after a price or ledger change."""
        lots = self.ledger
        lot_features(lots.shares, lots.basis, lots.acq, lots.used, self.last_price, self.day,
                     ANNIVERSARY, DAY_BASE, self.features)
        values = self.features[:, LOT.value]
        self._value = float(values.sum()) + lots.cash
        self._weights = values / self._value

    def blocks(self, day: int) -> Blocks:
        """The wash-sale blocks on ``day``: buying would wash a loss sale of the last 30
        days; a name bought in the last 30 days may not be sold while any of its lots is
        less than ``SELL_CUSHION`` above its basis (prices move before the order executes).
        """
        world, lots, n = self.world, self.ledger, self.world.n_assets
        m = world.n_securities
        out = Blocks(np.empty(m, np.bool_), np.empty(m, np.bool_),
                     np.empty(len(world.market.sector_names), np.int64), np.empty(n, np.bool_))
        wash_blocks(day, lots.last_loss_sale, lots.last_buy, lots.group,
                    self.features[:, LOT.worst_lot_return], self.features[:n, LOT.loss_shares],
                    world.excluded[:n], world.trading(self.t), world.market.sectors,
                    WASH_WINDOW_DAYS, SELL_CUSHION, out.buy_blocked, out.sell_blocked,
                    out.park, out.harvestable)
        return out

    # --- days ----------------------------------------------------------------------------

    def fund(self, target: np.ndarray) -> None:
        """Buy ``target`` weights of the stocks with all the cash, at the start's prices."""
        rows = np.flatnonzero(target > 0)
        price = self.last_price[rows]
        shares = target[rows] * self.ledger.cash / price
        self._execute(Trades.of(rows, self.day, kernel.BUY, shares, price))
        self.refresh()

    def transfer_in(self, lots: Sequence[dict]) -> None:
        """Take a legacy portfolio in kind: each lot keeps its date and basis; no cash."""
        lots = sorted(lots, key=lambda lot: str(lot["date_acquired"]))
        rows = [self.ledger.ticker_index[str(lot["ticker"]).upper()] for lot in lots]
        acquired = [int(np.datetime64(str(lot["date_acquired"]), "D").astype(np.int64))
                    for lot in lots]
        shares = [float(lot["shares"]) for lot in lots]
        price = [float(lot["cost_basis"]) / float(lot["shares"]) for lot in lots]
        self._execute(Trades.of(rows, acquired, kernel.BUY, shares, price))
        self.ledger.cash = 0.0
        self.refresh()

    def advance(self) -> Execution:
        """Move to the next row: its prices, corporate actions, then the orders due."""
        self.t += 1
        world, t = self.world, self.t
        row = world.prices[t]
        trading = np.isfinite(row)
        self.last_price[trading] = row[trading]
        done = self._corporate_actions() if world.action_days[t] else Execution()
        while self.orders and self.orders[0].execute_at <= t:
            done += self._execute_order(self.orders.pop(0))
        return done

    def _corporate_actions(self) -> Execution:
        """Splits, dividends in cash, distributions (their property sold for cash), and
        forced sales at a stop."""
        mk, t, day, n = self.world.market, self.t, self.day, self.world.n_assets
        split_rows = np.flatnonzero(mk.splits[t] != 1.0)
        if split_rows.size:
            self._execute(Trades.of(split_rows, day, kernel.SPLIT, mk.splits[t, split_rows], 0.0))
        positions = self.ledger.shares[:n].sum(axis=1)
        self.ledger.cash += float(np.nansum(mk.dividends[t] * positions))
        paying = np.flatnonzero((mk.distributions[t] > 0) & (positions > 0))
        if paying.size:  # a spin-off: basis allocated by value, the property sold (IRC §358)
            self._execute(Trades.of(paying, day, kernel.DISTRIBUTION,
                                    mk.distributions[t, paying], mk.prices[t, paying]))
        delisted = np.flatnonzero((mk.last_trading_index == t) & (t < mk.n_days - 1)
                                  & (positions > 0))
        if delisted.size:  # a stop forces a sale at the last price
            return self._execute_sells(delisted, positions[delisted], None)
        return Execution()

    def cash_flow(self, amount: float) -> tuple[float, Execution]:
        """Deposit (``amount > 0``) or withdraw today, at today's prices; return the amount
        that flowed (a withdrawal is capped at what the account can raise) and the sales.

        A withdrawal beyond the cash sells every holding pro rata to its value (the book
        keeps its shape), each tax-aware (:func:`plan_withdrawal`); what a security cannot
        raise without a washed loss is raised from the others in a second pass.
        """
        lots = self.ledger
        if amount >= 0:
            lots.cash += amount
            return amount, Execution()
        self.refresh()
        need = -amount - max(lots.cash, 0.0)
        done = Execution()
        if need > 0:
            blocked = self.blocks(self.day).sell_blocked
            values = self.features[:, LOT.value]
            target = np.zeros_like(values)
            for _ in range(2):
                room = np.where(values > 0, values, 0.0)
                if need <= 0 or room.sum() <= 0:
                    break
                target = need * room / room.sum()
                size = int(lots.used.sum()) + 1
                rows, ids, qty = np.empty(size, np.int64), np.empty(size, np.int64), np.empty(size)
                count = plan_withdrawal(lots.shares, lots.basis, lots.acq, lots.used,
                                        lots.purchase, self.last_price, self.day, ANNIVERSARY,
                                        DAY_BASE, target, blocked, rows, ids, qty)
                done += self._execute_sells(rows[:count], qty[:count], None, ids[:count],
                                            "withdrawal: sold tax-aware")
                self.refresh()
                values = np.where(target > 1e-9, 0.0, self.features[:, LOT.value])
                need = -amount - max(lots.cash, 0.0)
        paid = min(-amount, max(lots.cash, 0.0))
        lots.cash -= paid
        self.refresh()
        return -paid, done

    def _execute_order(self, order: Order) -> Execution:
        done = self._execute_lot_sells(order) if order.lot_sells is not None \
            else self._execute_position_sells(order)
        return done + self._execute_buys(order)

    def _execute_lot_sells(self, order: Order) -> Execution:
        """The lots the decision chose (by purchase: the ledger's slots may have moved or
        grown since, e.g. with a forced sale's pieces), as far as they are still held; a lot
        at a loss is kept where a purchase in the last 30 days would wash it."""
        price, lots = self.last_price, self.ledger
        rows, slots = np.nonzero((order.lot_sells > 0) & (price[:, None] > 0))
        pairs, where = np.unique(np.column_stack([rows, order.lot_ids[rows, slots]]), axis=0,
                                 return_inverse=True)
        asked = np.bincount(where.ravel(), weights=order.lot_sells[rows, slots],
                            minlength=len(pairs))
        recent = self.day - lots.last_buy[lots.group] <= WASH_WINDOW_DAYS
        kept = recent[:, None] & loss_lots(lots.shares, lots.basis, price)
        held = np.array([lots.shares[r][(lots.purchase[r] == p) & ~kept[r]].sum()
                         for r, p in pairs])
        qty = np.minimum(asked, held)
        keep = qty > 0
        return self._execute_sells(pairs[keep, 0], qty[keep], order, pairs[keep, 1])

    def _execute_position_sells(self, order: Order) -> Execution:
        price, day, lots = self.last_price, self.day, self.ledger
        held = lots.shares.sum(axis=1)
        sells = np.flatnonzero(order.shares < 0)
        recent = sells[day - lots.last_buy[lots.group[sells]] <= WASH_WINDOW_DAYS]
        if recent.size:  # never sell at a loss what a recent purchase would wash
            at_loss = loss_lots(lots.shares[recent], lots.basis[recent], price[recent]).any(1)
            sells = np.setdiff1d(sells, recent[at_loss])
        qty = np.minimum(-order.shares[sells], held[sells])
        n = self.world.n_assets
        harvest = sells[sells < n][order.harvest[sells[sells < n]]]
        if harvest.size:  # a harvest sells only the lots still at a loss at execution
            at_loss = loss_lots(lots.shares[harvest], lots.basis[harvest], price[harvest])
            still = np.where(at_loss, lots.shares[harvest], 0.0).sum(axis=1)
            position = np.searchsorted(sells, harvest)
            qty[position] = np.minimum(qty[position], still)
        return self._execute_sells(sells[qty > 0], qty[qty > 0], order)

    def _execute_buys(self, order: Order) -> Execution:
        price, day, lots = self.last_price, self.day, self.ledger
        done = Execution()
        buys = np.flatnonzero((order.shares > 0) & (price > 0))
        buys = buys[~self.blocks(day).buy_blocked[buys]]  # never create a wash sale ourselves
        cost = order.shares[buys] * price[buys]
        scale = min(1.0, max(lots.cash, 0.0) / cost.sum()) if cost.sum() > 0 else 0.0
        if buys.size and scale > 0:
            trades = Trades.of(buys, day, kernel.BUY, order.shares[buys] * scale, price[buys])
            self._execute(trades)
            if self.record_trades:
                self._record(trades, order, None)
            done += Execution(n_trades=int(buys.size))
        return done

    def _execute_sells(self, rows: np.ndarray, qty: np.ndarray, order: Order | None,
                       lots: np.ndarray | None = None, note: str | None = None) -> Execution:
        """Sell (HIFO, loss lots first, or the purchases ``lots`` named); ``order`` None for
        a sale of the broker's own (``note`` says why)."""
        if rows.size == 0:
            return Execution()
        before = self.ledger.n_sales
        disallowed_before = self.disallowed_total
        trades = Trades.of(rows, self.day, kernel.SELL, qty, self.last_price[rows], lots)
        self._execute(trades)
        sales = self.ledger.sales(start=before)
        gain = sales["gain"]
        self.disallowed_total = self.ledger.total_disallowed
        if self.record_trades:
            self._record(trades, order, sales, note)
        return Execution(float(-gain[gain < 0].sum()), self.disallowed_total - disallowed_before,
                         int(rows.size))

    def _execute(self, trades: Trades) -> None:
        self.ledger.apply(trades)
        self.trade_log.append(trades)

    def _record(self, trades: Trades, order: Order | None, sales: dict | None,
                note: str | None = None) -> None:
        """Audit trail: each executed trade with its reason and, for sells, the lots sold."""
        n, date = self.world.n_assets, str(self.world.market.dates[self.t])
        names = self.ledger.tickers
        for row, qty, price in zip(trades.ticker, trades.qty, trades.price, strict=True):
            sell = sales is not None
            if order is None:
                reason = note or "forced sale: the security stopped trading"
            elif row < n and sell and order.harvest[row]:
                reason = "harvest: sell the lots at a loss"
            elif row < n and not sell and order.swap_back[row]:
                reason = "swap back: wash window closed"
            elif row >= n:
                reason = "fund swap-backs" if sell else "proxy for harvested names"
            else:
                reason = "rebalance toward the benchmark" if sell else "invest cash"
            if order is not None and abs(order.adjustment[row]) > 1e-6:
                reason += f" (guardrail adjusted by {order.adjustment[row]:+.3%} of value)"
            entry = {"date": date, "ticker": names[row], "side": "sell" if sell else "buy",
                     "shares": float(qty), "price": float(price), "reason": reason}
            if sell:
                mine = sales["row"] == row
                entry["lots"] = [
                    {"date_acquired": str(np.datetime64(int(a), "D")), "shares": float(q),
                     "cost_basis": float(b), "gain": float(g)}
                    for a, q, b, g in zip(sales["acquired"][mine], sales["shares"][mine],
                                          sales["cost_basis"][mine], sales["gain"][mine],
                                          strict=True)]
                entry["realized_gain"] = float(sales["gain"][mine].sum())
            self.trades.append(entry)
