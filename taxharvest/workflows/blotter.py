"""Shadow against a firm's own output: the trades its rule-based engine made (its blotter),
replayed beside the agent's decisions on the same lots and prices.

A blotter is a CSV ``date,ticker,side,shares[,lot_id][,reason]`` (:func:`read_blotter`),
``side`` ``buy`` or ``sell``, ``ticker`` any security of the account (a stock, a sector
proxy, a sector's equal-weight basket). The firm's book (:class:`FirmBook`) starts from the
client's lots, trades each row at the close of its date (the market's ``prices``) through
the same :class:`~taxharvest.tax.ledger.Ledger` and wash-sale rule (sells without a
``lot_id`` relieve lots highest basis first, as the environment's; a sell naming the
``lot_id`` of an earlier buy relieves that lot), and receives what the environment's
account receives: splits, dividends in cash, distributions and forced sales at a stop (the
environment's own :class:`~taxharvest.envs.broker.Broker`, with no orders of its own). Its
cash takes the same deposits and withdrawals as the account, at the end of the decision
step they fall in, and never buys anything itself.

:class:`BlotterShadow` runs the agent's policy through the environment and keeps the
firm's book in step: after each decision step it replays the blotter's rows dated in the
step's execution days (after the decision day, up to and including the next one: the
agent's orders execute on the day after their decision), then measures both books as held
at that close, under the environment's risk model and benchmark of the day. Per decision:
the trades that differ (by ticker and side, with both sides' reasons), the wash sales the
firm's trades created, each side's tax saving (settled years plus the year's accrued
saving, as the environment counts it: :class:`SavingsClock`) and ex-ante TE. The firm's
book is measured by the same rules as a backtest (:func:`~taxharvest.sim.backtest.measured_run`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from taxharvest.agents.registry import make_policy
from taxharvest.envs.broker import Broker
from taxharvest.envs.world import build_world
from taxharvest.errors import InputError
from taxharvest.io import read_csv_rows
from taxharvest.market.universe import MarketData
from taxharvest.sim import account
from taxharvest.sim.backtest import BacktestResult, measured_run, run_backtest
from taxharvest.sim.measures import SHADOW
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.sim.steplog import StepLog
from taxharvest.tax.calendar import WASH_WINDOW_DAYS, to_date, year_of
from taxharvest.tax.law import TaxSavingsTracker, tax_saving
from taxharvest.tax.ledger import Ledger
from taxharvest.tax.reporting import schedule_d
from taxharvest.workflows.shadow import (
    ROLES,
    TOP_DATES,
    Shadow,
    ShadowHistory,
    base_reason,
    shares_differ,
)

BLOTTER_COLUMNS = ("date", "ticker", "side", "shares")
BLOTTER_OPTIONAL = ("lot_id", "reason")
SIDES = ("buy", "sell")
DIFFERENCE_COLUMNS = ("date", "through", "ticker", "side", "policy_shares", "baseline_shares",
                      "policy_value", "baseline_value", "policy_reason", "baseline_reason")
NO_REASON = "(no reason given)"
_EPS = 1e-9


@dataclass(frozen=True)
class BlotterTrade:
    """One row of a blotter (``line`` its line in the file, ``ticker`` upper-cased)."""

    line: int
    date: str
    ticker: str
    side: str
    shares: float
    lot_id: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Blotter:
    """A firm's trades, in date order (file order within a date)."""

    path: Path
    trades: tuple[BlotterTrade, ...]

    def error(self, trade: BlotterTrade, field: str, message: str) -> InputError:
        """The :class:`InputError` of ``trade``'s line."""
        return InputError(message, path=self.path, row=trade.line, field=field)

    def check_dates(self, dates: np.ndarray) -> None:
        """Every trade on a trading day of the prices (``dates``)."""
        for trade in self.trades:
            day = np.datetime64(trade.date, "D")
            if not dates[0] <= day <= dates[-1]:
                raise self.error(trade, "date", f"{trade.date} is outside the prices "
                                                f"({dates[0]} to {dates[-1]})")
            if dates[np.searchsorted(dates, day)] != day:
                raise self.error(trade, "date", f"{trade.date} is not a trading day of the "
                                                "prices")

    def window(self, dates: np.ndarray, start: str | None, end: str | None
               ) -> tuple[str, str]:
        """The shadow's ``(start, end)``: by default from the trading day before the first
        trade (the client's lots are the holdings then) to the last trade. A blotter without
        trades (the firm traded nothing) needs ``start``; it runs to the end of the prices."""
        if not self.trades:
            if start is None:
                raise InputError("the blotter has no trades: give --start (and --end) for the "
                                 "period the firm traded nothing", path=self.path,
                                 field="start")
            return start, end
        if start is None:
            first = self.trades[0]
            row = int(np.searchsorted(dates, np.datetime64(first.date, "D")))
            if row == 0:
                raise self.error(first, "date", f"{first.date} is the first day of the prices; "
                                 "the lots are the holdings the day before the first trade: "
                                 "give prices from an earlier day, or --start")
            start = str(dates[row - 1])
        return start, end if end is not None else self.trades[-1].date


def read_blotter(path: str | Path) -> Blotter:
    """A firm's blotter (``date,ticker,side,shares[,lot_id][,reason]``; a header alone: no
    trades); a bad row is an :class:`InputError` naming its line and field. Rows are taken in date order, those of
    one date in file order; a buy may name its lot (``lot_id``, once), a sell naming a
    ``lot_id`` relieves that lot of an earlier buy of the same ticker."""
    path = Path(path)
    rows = read_csv_rows(path, BLOTTER_COLUMNS, "blotter", optional=BLOTTER_OPTIONAL,
                         empty_ok=True)
    trades = []
    for line, row in enumerate(rows, start=2):
        def bad(field: str, message: str, line: int = line) -> InputError:
            return InputError(message, path=path, row=line, field=field)

        if None in row:
            raise bad("", "more values than columns")
        cells = {k: (row.get(k) or "").strip() for k in (*BLOTTER_COLUMNS, *BLOTTER_OPTIONAL)}
        try:
            date = str(np.datetime64(cells["date"], "D"))
        except ValueError:
            raise bad("date", f"cannot parse date {cells['date']!r} (expected YYYY-MM-DD)"
                      ) from None
        if not cells["ticker"]:
            raise bad("ticker", "empty ticker")
        side = cells["side"].lower()
        if side not in SIDES:
            raise bad("side", f"unknown side {cells['side']!r} (expected buy or sell)")
        try:
            shares = float(cells["shares"])
        except ValueError:
            raise bad("shares", f"cannot parse number {cells['shares']!r}") from None
        if not np.isfinite(shares) or shares <= 0:
            raise bad("shares", f"shares must be positive, got {cells['shares']}")
        trades.append(BlotterTrade(line, date, cells["ticker"].upper(), side, shares,
                                   cells["lot_id"], cells["reason"]))
    trades.sort(key=lambda t: t.date)  # stable: file order within a date
    blotter = Blotter(path, tuple(trades))
    bought: dict[str, BlotterTrade] = {}
    for trade in blotter.trades:
        if not trade.lot_id:
            continue
        earlier = bought.get(trade.lot_id)
        if trade.side == "buy":
            if earlier is not None:
                raise blotter.error(trade, "lot_id", f"lot_id {trade.lot_id!r} is already used "
                                                     f"by the buy on line {earlier.line}")
            bought[trade.lot_id] = trade
        elif earlier is None or earlier.ticker != trade.ticker:
            raise blotter.error(trade, "lot_id", f"unknown lot_id {trade.lot_id!r} for "
                                f"{trade.ticker}: no earlier buy of that ticker names it")
    return blotter


class SavingsClock:
    """An account's tax saving as the environment counts it: each tax year settled by a
    :class:`~taxharvest.tax.law.TaxSavingsTracker` when the next begins (and at the end),
    the year under way accrued by :func:`~taxharvest.tax.law.tax_saving` on its realized
    gains so far. A purchase in the first 30 days of a year may wash a loss sold in the last
    days of the one settled: the years are then settled again from the first whose realized
    gains changed, and the difference is the saving of the day it is seen (a return amended
    before it is filed)."""

    def __init__(self, profile, day: int) -> None:
        self.tracker = TaxSavingsTracker(profile)
        self.first_year = self.year = int(year_of(day))
        self.settled_on: list[tuple[float, float]] = []  # realized gains per settled year
        self.finished = False

    def advance(self, ledger: Ledger, day: int) -> float:
        """Settle every year before ``day``'s; return the saving settled (the change of the
        years settled again included)."""
        saving = self._settle_again(ledger)
        while self.year < int(year_of(day)):
            saving += self._settle(ledger, self.year)
            self.year += 1
        return saving

    def finish(self, ledger: Ledger) -> float:
        """Settle the year under way (the end of the run); return its saving (and the change
        of the years settled again)."""
        self.finished = True
        return self._settle_again(ledger) + self._settle(ledger, self.year)

    def total(self, ledger: Ledger) -> float:
        """Settled so far plus the year under way, accrued."""
        if self.finished:
            return self.tracker.total_saving
        t = self.tracker
        return t.total_saving + tax_saving(t.profile, self.year, *ledger.realized(self.year),
                                           t.carry_base, t.carry_with).saving

    def _settle(self, ledger: Ledger, year: int) -> float:
        realized = ledger.realized(year)
        self.settled_on.append(realized)
        return self.tracker.settle(year, *realized)

    def _settle_again(self, ledger: Ledger) -> float:
        """Settle the years again when a wash sale moved their realized gains; the change in
        the total saving."""
        now = [ledger.realized(self.first_year + i) for i in range(len(self.settled_on))]
        if now == self.settled_on:
            return 0.0
        before = self.tracker.total_saving
        self.tracker, self.settled_on = TaxSavingsTracker(self.tracker.profile), []
        for i in range(len(now)):
            self._settle(ledger, self.first_year + i)
        return self.tracker.total_saving - before


def _adjustments(ledger: Ledger, rows: np.ndarray) -> dict[tuple[int, int], float]:
    """Wash-sale basis adjustment held per ``(security row, purchase id)`` of ``rows``."""
    out: dict[tuple[int, int], float] = defaultdict(float)
    held = (ledger.shares[rows] > 0) & (ledger.wash_adj[rows] > 0)
    for r, j in zip(*np.nonzero(held), strict=True):
        out[(int(rows[r]), int(ledger.purchase[rows[r], j]))] += float(ledger.wash_adj[rows[r], j])
    return out


def _sold_lots(sales: dict, rows: np.ndarray) -> list[dict]:
    return [{"date_acquired": to_date(sales["acquired"][k]), "shares": float(sales["shares"][k]),
             "cost_basis": float(sales["cost_basis"][k]), "gain": float(sales["gain"][k])}
            for k in rows]


class FirmBook:
    """The firm's account: the client's ``lots`` on ``start``, then the blotter's trades
    dated after it at the close of their dates (see the module). Also the account interface
    :mod:`taxharvest.sim.account` reads (``ledger``, ``tax_years``, ``carryforwards``).

    Raises :class:`InputError` naming the blotter's line for a ticker the account does not
    have, a trade on a day its security has no price, a sell of more than is held.
    """

    def __init__(self, market: MarketData, blotter: Blotter, lots: list[dict], start: str,
                 profile) -> None:
        self.world = build_world(market, ())
        self.blotter = blotter
        self.names = {name.upper(): name for name in self.world.names}
        for trade in blotter.trades:
            if trade.ticker not in self.names:
                raise blotter.error(trade, "ticker", f"unknown ticker {trade.ticker!r} (not "
                                                     "a security of the account)")
        self.row = market.date_index(start)
        with np.errstate(invalid="ignore"):  # no value until the lots come in
            self.broker = Broker(self.world, self.row, 0.0, (), record_trades=False)
        self.broker.transfer_in(lots)
        rows = np.searchsorted(market.dates, [np.datetime64(t.date, "D") for t in blotter.trades])
        self.by_row: dict[int, list[BlotterTrade]] = defaultdict(list)
        for trade, row in zip(blotter.trades, rows, strict=True):
            if self.row < row < market.n_days:
                self.by_row[int(row)].append(trade)
        self.replayed = sum(len(block) for block in self.by_row.values())
        self.clock = SavingsClock(profile, int(self.world.days[self.row]))
        self.savings_units = 0.0  # the tax savings account, in benchmark units
        self.bought: dict[int, int] = {}  # purchase id -> blotter line
        self.sold: dict[int, int] = {}  # sales-log row -> blotter line
        # per day replayed, the sales before it: a trade washes only sales of its last 30 days
        self._days, self._sales_before = [int(self.world.days[self.row])], [self.ledger.n_sales]
        self._closes: dict[int, float] = {}  # row -> the account's value at its close

    @property
    def ledger(self) -> Ledger:
        return self.broker.ledger

    def tax_years(self) -> list:
        return list(self.clock.tracker.history)

    def carryforwards(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return self.clock.tracker.carry_base, self.clock.tracker.carry_with

    def replay(self, to_row: int, index: np.ndarray | None = None) -> tuple[list, list, float]:
        """Move to row ``to_row``: each day's corporate actions, then its blotter trades;
        settle each year that ends (the saving invested at the benchmark's ``index`` level
        of the day). Returns the trades, the wash sales they created, the saving settled."""
        trades, washes, settled = [], [], 0.0
        while self.row < to_row:
            self.row += 1
            self._days.append(int(self.world.days[self.row]))
            self._sales_before.append(self.ledger.n_sales)
            self.broker.advance()
            saving = self.clock.advance(self.ledger, int(self.world.days[self.row]))
            if index is not None:
                self.savings_units += saving / index[self.row]
            settled += saving
            for trade in self.by_row.get(self.row, ()):
                record, wash = self._trade(trade)
                trades.append(record)
                washes += wash
            self._closes[self.row] = self.broker.marked_value()
        return trades, washes, settled

    def closes(self, first: int, last: int) -> np.ndarray:
        """The account's value at the close of rows ``first`` to ``last`` (each step's last
        after its flow), for the daily measures."""
        return np.array([self._closes[row] for row in range(first, last + 1)])

    def _trade(self, trade: BlotterTrade) -> tuple[dict, list[dict]]:
        ledger, name = self.ledger, self.names[trade.ticker]
        price = float(self.world.prices[self.row, ledger.ticker_index[name]])
        if not np.isfinite(price):
            raise self.blotter.error(trade, "ticker", f"{name} has no price on {trade.date}")
        n_sales, day = ledger.n_sales, self._days[-1]
        recent = self._sales_before[bisect_left(self._days, day - WASH_WINDOW_DAYS)]
        disallowed = ledger.sales(start=recent)["wash_sale_disallowed"].copy()
        group = np.flatnonzero(ledger.group == ledger.group[ledger.ticker_index[name]])
        adjustments = _adjustments(ledger, group)
        try:
            if trade.side == "buy":
                self.bought[ledger.next_purchase] = trade.line
                ledger.buy(name, trade.shares, price, trade.date, trade.lot_id or None)
            else:
                ledger.sell(name, trade.shares, price, trade.date, trade.lot_id or None)
        except InputError as err:  # an oversell, or a lot sold already or bought before start
            raise self.blotter.error(trade, "lot_id" if trade.lot_id else "shares",
                                     err.message) from None
        sales = ledger.sales(start=recent)  # row k is sales-log row recent + k
        record = {"date": trade.date, "line": trade.line, "ticker": name, "side": trade.side,
                  "shares": trade.shares, "price": price, "value": trade.shares * price,
                  "reason": trade.reason}
        if trade.side == "sell":
            mine = np.arange(n_sales, ledger.n_sales) - recent
            self.sold.update(dict.fromkeys((mine + recent).tolist(), trade.line))
            record["lots"] = _sold_lots(sales, mine)
            record["realized_gain"] = float(sales["gain"][mine].sum())
        grown = sales["wash_sale_disallowed"].copy()
        grown[: len(disallowed)] -= disallowed
        washed = np.flatnonzero(grown > _EPS)
        if washed.size == 0:
            return record, []
        return record, [self._wash(trade, sales, recent, washed, grown, group, adjustments)]

    def _wash(self, trade: BlotterTrade, sales: dict, recent: int, washed: np.ndarray,
              grown: np.ndarray, group: np.ndarray, before: dict[tuple[int, int], float]
              ) -> dict:
        """The wash sale ``trade`` created: the sales whose loss it disallowed (rows
        ``recent + washed`` of the sales log) and the replacement purchases that took the
        loss into their basis."""
        ledger = self.ledger
        replacements = []
        for (row, purchase), amount in _adjustments(ledger, group).items():
            added = amount - before.get((row, purchase), 0.0)
            if added > _EPS:
                held = ledger.purchase[row] == purchase
                line = self.bought.get(purchase)
                replacements.append({
                    "ticker": ledger.tickers[row], "line": line,
                    "bought": to_date(ledger.bought[row][held].min()),
                    "shares": float(ledger.shares[row][held].sum()), "basis_added": added,
                    "origin": f"blotter line {line}" if line is not None
                    else "a lot held at the start"})
        return {
            "date": trade.date, "line": trade.line,
            "trade": f"{trade.side} {trade.shares:g} {self.names[trade.ticker]}",
            "disallowed": float(grown[washed].sum()),
            "sales": [{"ticker": sales["ticker"][k], "line": self.sold.get(recent + int(k)),
                       "date_sold": to_date(sales["sold"][k]),
                       "date_acquired": to_date(sales["acquired"][k]),
                       "shares": float(sales["shares"][k]),
                       "loss": float(sales["cost_basis"][k] - sales["proceeds"][k]),
                       "disallowed": float(grown[k])} for k in washed],
            "replacements": replacements,
        }

    def measure(self, env, flow: float) -> dict:
        """The book as held now (the environment's current day, after its step's ``flow``
        of cash): its value, tax savings account and ex-ante TE under ``env``'s risk model
        and benchmark."""
        self.ledger.cash += flow
        saving = 0.0
        if env.t >= env.end:
            saving = self.clock.finish(self.ledger)
            self.savings_units += saving / env.bench_path[env.t]
        self.broker.refresh()
        self._closes[self.row] = self.broker.value
        active = self.broker.weights - env.holdings()["benchmark_weights"]
        return {"value": self.broker.value, "te": env.risk.tracking_error(active),
                "savings": self.savings_units * env.bench_path[env.t], "settled": saving}


@dataclass(frozen=True)
class BlotterHistory(ShadowHistory):
    """The agent beside the firm's blotter, decision by decision.

    Attributes:
        decisions: per decision: ``date`` (the decision day), ``through`` (the last day its
            trades executed), ``agree`` (no trade differs), ``differences`` (by ticker and
            side: both sides' shares, dollars and reasons), ``policy_trades``,
            ``baseline_trades`` (counts), ``policy_te``, ``baseline_te`` (ex-ante TE as held
            at ``through``), ``policy_tax_saving``, ``baseline_tax_saving`` (the step's
            change of the cumulative tax saving), ``divergence`` (dollars traded
            differently) and ``wash_sales`` (those the firm's trades created).
        summary: ``agreement_rate`` (share of decisions with no trade differing),
            ``agreement_when_trading`` (of those where either side traded),
            ``differing_trades`` by role and reason, the firm's ``wash_sales`` and their
            ``wash_sale_disallowed``, ``largest_divergence``, and per role the measures
            (:data:`~taxharvest.sim.measures.SHADOW`; the firm's ex-ante TE is as held),
            ``tax_savings_total``, ``mean_te_held`` and ``max_te_held``.
        runs: per role, the run's JSON (a backtest's for the agent, the same document for
            the firm's book) and its ``schedule_d`` totals.
        config: what the runs were built from.
    """

    mode: ClassVar[str] = "blotter"

    def csv_rows(self) -> list[dict]:
        """Every trade that differs (:data:`DIFFERENCE_COLUMNS`)."""
        return [{"date": d["date"], "through": d["through"], **x}
                for d in self.decisions for x in d["differences"]]


def _by_key(trades: list[dict]) -> dict[tuple[str, str], dict]:
    out: dict[tuple[str, str], dict] = {}
    for t in trades:
        entry = out.setdefault((t["ticker"], t["side"]), {"shares": 0.0, "value": 0.0,
                                                          "reasons": {}})
        entry["shares"] += t["shares"]
        entry["value"] += t["shares"] * t["price"]
        entry["reasons"][t["reason"] or NO_REASON] = None
    return out


def differences(policy: list[dict], firm: list[dict]) -> list[dict]:
    """The ``(ticker, side)`` both sides traded differently, the largest in dollars first."""
    sides = dict(zip(ROLES, (_by_key(policy), _by_key(firm)), strict=True))
    none = {"shares": 0.0, "value": 0.0, "reasons": {}}
    rows = []
    for key in sorted(sides["policy"].keys() | sides["baseline"].keys()):
        entries = {role: side.get(key, none) for role, side in sides.items()}
        if shares_differ(entries["policy"]["shares"], entries["baseline"]["shares"]):
            row = {"ticker": key[0], "side": key[1]}
            for role, entry in entries.items():
                row.update({f"{role}_shares": entry["shares"], f"{role}_value": entry["value"],
                            f"{role}_reason": "; ".join(entry["reasons"])})
            rows.append(row)
    rows.sort(key=lambda d: -abs(d["policy_value"] - d["baseline_value"]))
    return rows


class BlotterShadow:
    """The ``shadow``'s policy beside the firm's ``blotter`` (see the module).

    Args:
        shadow: the policy, profile, market (cut to the window), client's lots, TE limit,
            cadence, seed and cash flows (its ``baseline`` is not used).
        blotter: the firm's trades (dates checked against the prices:
            :meth:`Blotter.check_dates`).
    """

    def __init__(self, shadow: Shadow, blotter: Blotter) -> None:
        self.shadow, self.blotter = shadow, blotter
        self.name = f"firm blotter {blotter.path.name}"

    def firm_book(self, start: str) -> FirmBook:
        s = self.shadow
        return FirmBook(s.market, self.blotter, s.lots, start, s.profile)

    def check(self, start: str) -> FirmBook:
        """Replay the whole blotter once (a bad row raises, naming its line, before the
        agent runs); the book at the end."""
        book = self.firm_book(start)
        book.replay(self.shadow.market.n_days - 1)
        return book

    def run(self, start: str, *,
            progress: Callable[[int, int], None] | None = None) -> BlotterHistory:
        """Both books from ``start`` to the end of the market; ``progress(done, total)``
        after each decision."""
        s = self.shadow
        checked = self.check(start)
        firm = self.firm_book(start)
        clock = SavingsClock(s.profile, int(firm.world.days[firm.row]))  # the agent's
        env = s.environment(s.market, s.cash_flows)

        def probe(raw, _observation) -> dict:
            """After the reset and each step: the firm's book brought to the same day."""
            trades, washes, settled = firm.replay(raw.t, raw.bench_path)
            held = firm.measure(raw, log.infos[-1]["cash_flow"])
            clock.advance(raw.ledger, int(raw.days[raw.t]))
            if raw.t >= raw.end:
                clock.finish(raw.ledger)
            return {**held, "trades": trades, "washes": washes,
                    "settled": settled + held["settled"],
                    "totals": {"policy": clock.total(raw.ledger),
                               "baseline": firm.clock.total(firm.ledger)}}

        log = StepLog(env, probe=probe)
        with quiet_guardrail():
            agent = run_backtest(make_policy(s.specs["policy"], s.profile, env), log,
                                 seed=s.seed, options={"start": start}, progress=progress)
        firm_run = self._firm_run(agent, firm, log.probes)
        decisions = self._decisions(log.infos, log.probes)
        config = s.config(start=start, end=str(s.market.dates[-1]), baseline=self.name,
                          baseline_trades=str(self.blotter.path),
                          blotter_trades=len(self.blotter.trades),
                          replayed_trades=checked.replayed, firm_relief="hifo")
        results = {"policy": agent, "baseline": firm_run}
        runs = {role: {**r.to_json(), "schedule_d": schedule_d(r.form_8949)}
                for role, r in results.items()}
        return BlotterHistory(decisions, self._summary(decisions, results, log), runs, config)

    def _firm_run(self, agent: BacktestResult, firm: FirmBook, probes: list[dict]
                  ) -> BacktestResult:
        """The firm's book measured as a backtest, against the agent's benchmark."""
        def series(key: str) -> np.ndarray:
            return np.array([p[key] for p in probes], float)

        sales = firm.ledger.sales()
        dates = agent.trajectory.dates
        step = np.searchsorted(dates[1:].astype(np.int64), sales["sold"]) + 1
        sold = np.bincount(step, weights=sales["proceeds"], minlength=len(dates))[:len(dates)]
        loss = np.where(sales["distribution"] | (sales["gain"] >= 0), 0.0, -sales["gain"])
        harvested = np.bincount(step, weights=loss, minlength=len(dates))[:len(dates)]
        disallowed = np.bincount(step, weights=sales["wash_sale_disallowed"],
                                 minlength=len(dates))[:len(dates)]
        portfolio = series("value")
        days = agent.trajectory.daily
        first = firm.row - len(days.dates) + 1
        trajectory = replace(
            agent.trajectory, portfolio=portfolio, savings=series("savings"),
            daily=replace(days, portfolio=firm.closes(first, firm.row), cash=None),
            ex_ante_te=series("te"), tax_savings=series("settled"),
            harvested_losses=harvested, sold=sold, wash_sale_disallowed=disallowed,
            n_trades=np.array([len(p["trades"]) for p in probes]),
            guardrail_status=np.array(["off"] * len(dates)),
            **account.end_state(firm, int(dates[-1].astype(np.int64))))
        config = {**agent.config, "policy": self.name, "guardrail": False}
        return measured_run(trajectory, firm.ledger, account.settled_savings(firm),
                            profile=self.shadow.profile, config=config)

    @staticmethod
    def _decisions(infos: list[dict], probes: list[dict]) -> list[dict]:
        rows = []
        steps = zip(infos[:-1], infos[1:], probes[:-1], probes[1:], strict=True)
        for before, after, was, firm in steps:
            diff = differences(after["trades"], firm["trades"])
            rows.append({
                "date": before["date"], "through": after["date"], "agree": not diff,
                "differences": diff, "policy_trades": len(after["trades"]),
                "baseline_trades": len(firm["trades"]),
                "policy_te": after["te_held"], "baseline_te": firm["te"],
                **{f"{role}_tax_saving": firm["totals"][role] - was["totals"][role]
                   for role in ROLES},
                "divergence": float(sum(abs(d["policy_value"] - d["baseline_value"])
                                        for d in diff)),
                "wash_sales": firm["washes"],
            })
        return rows

    def _summary(self, decisions: list[dict], results: dict[str, BacktestResult],
                 log: StepLog) -> dict:
        trading = [d for d in decisions if d["policy_trades"] or d["baseline_trades"]]
        reasons = {role: Counter() for role in ROLES}
        for d in decisions:
            for x in d["differences"]:
                for role in ROLES:
                    if x[f"{role}_shares"]:
                        for reason in x[f"{role}_reason"].split("; "):
                            reasons[role][base_reason(reason)] += 1
        washes = [w for d in decisions for w in d["wash_sales"]]
        held = {"policy": [i["te_held"] for i in log.infos], "baseline": [p["te"]
                                                                          for p in log.probes]}
        largest = sorted(decisions, key=lambda d: -d["divergence"])[:TOP_DATES]
        return {
            "decisions": len(decisions),
            "agreement_rate": float(np.mean([d["agree"] for d in decisions])) if decisions
            else 1.0,
            "decisions_with_trades": len(trading),
            "agreement_when_trading": float(np.mean([d["agree"] for d in trading])) if trading
            else 1.0,
            "differing_trades": {role: dict(reasons[role].most_common()) for role in ROLES},
            "wash_sales": len(washes),
            "wash_sale_disallowed": float(sum(w["disallowed"] for w in washes)),
            "largest_divergence": [{k: d[k] for k in ("date", "through", "divergence")}
                                   for d in largest if d["divergence"] > 0],
            **{role: {"name": results[role].config["policy"],
                      **{m.key: results[role].metrics[m.key] for m in SHADOW},
                      "tax_savings_total": log.probes[-1]["totals"][role],
                      "mean_te_held": float(np.mean(held[role])),
                      "max_te_held": float(np.max(held[role]))}
               for role in ROLES},
        }
