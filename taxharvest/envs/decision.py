"""The decision cores: an action becomes an order the TE limit and wash-sale rule allow.

:class:`DecisionRules` (``decision="rules"``): harvests are taken largest loss first while
the tracking error frozen by wash windows fits a budget (:func:`select_within_lock_budget`),
then the proposal (harvests into proxies, swap-backs, cash invested toward the benchmark) is
projected inside the TE limit by the guardrail. :class:`OptimizerRules`
(``decision="optimizer"``): one tax-aware convex program chooses every trade.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taxharvest.envs.broker import LOT, Blocks, Broker, Order
from taxharvest.envs.features import loss_lots, propose, select_within_lock_budget
from taxharvest.guardrails import GuardrailResult, TrackingErrorGuardrail, factor_loadings
from taxharvest.market.risk import FactorRisk
from taxharvest.optimize import AccountState, Intent, TaxAwareOptimizer, TaxPosition
from taxharvest.tax.calendar import is_long_term

TICKET_SLACK = 1e-9  # relative: float rounding must not decide whether a minimum ticket trades
BINDING = 0.999  # a decision whose TE is this share of its bound or more: the bound binds
LOT_DUST = 0.01  # a lot's sale below this share of a minimum ticket is a solver's residue


@dataclass(frozen=True)
class Decision:
    """What one decision did: the order queued (None: nothing to trade), the guardrail's
    result (None when off or not needed), and the ex-ante TE of the decided portfolio."""

    order: Order | None
    guard: GuardrailResult | None
    te: float


@dataclass(frozen=True)
class DecisionRules:
    """The environment's decision settings (see :class:`DirectIndexEnv`)."""

    guardrail: TrackingErrorGuardrail | None
    te_limit: float
    lock_budget: float
    swap_back_max_gain: float
    min_trade: float

    def decide(self, action: np.ndarray, broker: Broker, blocks: Blocks, bench: np.ndarray,
               risk: FactorRisk, long_rate: float, execute_at: int) -> Decision:
        """Turn ``action`` (stocks asked to be harvested) into an order executing at row
        ``execute_at``; ``blocks`` are the wash-sale blocks on that day."""
        world = broker.world
        n, m = world.n_assets, world.n_securities
        weights, value, price, features = broker.weights, broker.value, broker.last_price, \
            broker.features
        harvest = self._within_lock_budget(action & blocks.harvestable, broker, blocks, bench,
                                           risk)
        if (self.guardrail is None and not harvest.any() and weights[n:].sum() <= 0.0
                and 1.0 - weights.sum() <= self.min_trade):
            return Decision(None, None, risk.tracking_error(weights - bench))

        proposal, gap = np.empty(m), np.empty(n)
        propose(weights, harvest, features[:n, LOT.loss_shares], price, value, bench,
                blocks.buy_blocked, blocks.sell_blocked, blocks.park,
                features[:, LOT.unrealized_return], world.excluded[:n], world.trading(broker.t),
                world.market.sectors, self.swap_back_max_gain, self.min_trade, proposal, gap)
        guard = None
        target = proposal
        if self.guardrail is not None:
            gain = features[:, LOT.unrealized_return]
            gain_cost = np.clip(gain, 0.0, None) / np.maximum(1.0 + gain, 1e-9) * long_rate
            # Both in units of the book the proposal invests: a position the proposal keeps
            # is exactly at its bound, not below it by the cash the proposal invests.
            invested = proposal.sum()
            guard = self.guardrail.project(
                proposal / invested, bench, risk, current=weights / invested,
                no_buy=blocks.buy_blocked | (proposal < weights - 1e-12),
                excluded=world.excluded | (price <= 0),
                no_sell=blocks.sell_blocked,
                gain_cost=gain_cost,
            )
            target = guard.weights
        delta = (target - weights) * value
        # a ticket of exactly ``min_trade`` (cash investment) trades at every account size
        delta[np.abs(delta) < self.min_trade * value * (1.0 - TICKET_SLACK)] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = np.where(price > 0, delta / price, 0.0)
        order = None
        if shares.any():
            adjustment = (target - proposal / proposal.sum() if guard is not None
                          else np.zeros(m))
            order = Order(execute_at=execute_at, shares=shares,
                          harvest=harvest & (shares[:n] < 0), swap_back=gap > 0,
                          adjustment=adjustment)
        return Decision(order, guard, risk.tracking_error(target - bench))

    def _within_lock_budget(self, harvest: np.ndarray, broker: Broker, blocks: Blocks,
                            bench: np.ndarray, risk: FactorRisk) -> np.ndarray:
        """Harvests, largest loss first, while the TE frozen by wash windows fits the budget.

        A harvested stock cannot be bought back for 30 days, and its sector proxy, just
        bought, cannot be sold at a loss for 30 days: whatever volatility does, those
        shortfalls and overweights stay. The ex-ante TE of the frozen parts of the active
        weights may use ``lock_budget`` of the limit; the rest is the guardrail's room.
        Locked TE grows with volatility, so the default 0.35 leaves room for volatility to
        rise about 2.6-fold (crashes triple it) before the locked part alone fills the limit.
        """
        if not harvest.any() or self.guardrail is None or self.lock_budget >= 1.0:
            return harvest
        features = broker.features
        candidates = np.flatnonzero(harvest)
        candidates = candidates[np.argsort(-features[candidates, LOT.loss_amount], kind="stable")]
        sold = features[candidates, LOT.loss_shares] * broker.last_price[candidates] / broker.value
        accepted = select_within_lock_budget(
            candidates, sold, blocks.park[broker.world.market.sectors], broker.weights - bench,
            blocks.buy_blocked, blocks.sell_blocked, factor_loadings(risk), risk.specific_var,
            (self.lock_budget * self.te_limit) ** 2)
        kept = np.zeros_like(harvest)
        kept[candidates[accepted]] = True
        return kept


@dataclass(frozen=True)
class OptimizerRules:
    """The tax-aware program as the decision core (:mod:`taxharvest.optimize`).

    The action is the policy's intent: per stock a harvest preference in ``[0, 1]`` (a
    binary action reads as 0 or 1; the replacement securities' losses count as much as the
    most preferred stock's, so a decision that prefers nothing realizes no loss),
    and the program chooses every trade (harvests, replacements among the proxies *and* the
    other stocks, swap-backs, cash) inside the TE bound and the wash-sale bounds. Sells are
    executed lot by lot as chosen (specific identification).

    Args:
        optimizer: the program and its settings (TE limit, aversion, costs, cash band).
        min_trade, min_rebalance: the smallest ticket and the smallest sale of gain lots, as
            shares of the book (see :meth:`_tickets`).
        carry_discount: a dollar of loss carried forward is worth this share of the lower
            marginal rate (it offsets a later year's gains).
        te_limit: the mandate's TE limit, which the tickets may not break where the program
            kept it (its own bound may lie below, with room for drift); default: that bound.
    """

    optimizer: TaxAwareOptimizer
    min_trade: float = 1e-4
    min_rebalance: float = 1e-3
    carry_discount: float = 0.75
    te_limit: float = 0.0

    def decide(self, action: np.ndarray, broker: Broker, blocks: Blocks, bench: np.ndarray,
               risk: FactorRisk, tax: TaxPosition, execute_at: int, day: int,
               te_budget: float = 1.0, max_gain: float | None = None,
               te_target: float | None = None) -> Decision:
        """Turn the harvest preferences ``action`` into an order executing at row
        ``execute_at`` (day ``day``); ``max_gain`` is the net realized gain this decision may
        add (a transition's yearly budget left), ``te_target`` a glide path's TE bound."""
        world, lots = broker.world, broker.ledger
        n, m = world.n_assets, world.n_securities
        price = broker.last_price
        tradable = price > 0
        # a stock outside the index is never bought: the program would take it as a hedge on
        # the strength of a risk model estimated on its short history (late listings)
        outside = np.zeros(m, bool)
        outside[:n] = bench[:n] <= 0
        state = AccountState(
            price=np.where(tradable, price, 1.0), shares=lots.shares, basis=lots.basis,
            long_term=is_long_term(lots.acq, day), cash=max(lots.cash, 0.0),
            benchmark=bench, buy_blocked=blocks.buy_blocked | ~tradable | outside,
            sell_blocked=blocks.sell_blocked | ~tradable, excluded=world.excluded,
            risk=risk, tax=tax, group=lots.group, max_gain=max_gain, te_target=te_target)
        preference = np.empty(m)
        preference[:n] = np.clip(np.asarray(action, float), 0.0, 1.0)
        preference[n:] = preference[:n].max(initial=0.0)
        result = self.optimizer.decide(state, Intent(preference, te_budget),
                                       min_buy=self.min_trade * (1.0 - TICKET_SLACK))
        if result.status == "fallback" or not (result.sell_shares.any() or result.buy_shares.any()):
            return Decision(None, _Status(result), result.te)
        loss = loss_lots(lots.shares, lots.basis, price)
        sells, buys, te = self.orders(result, price, loss, world.excluded, broker.value,
                                      max(lots.cash, 0.0), lots.shares, bench, risk)
        if not (sells.any() or buys.any()):
            return Decision(None, _Status(result), te)
        shares = buys - sells.sum(axis=1)
        harvest = ((sells > 0) & loss).any(axis=1)[:n]
        order = Order(execute_at=execute_at, shares=shares, harvest=harvest,
                      swap_back=np.zeros(n, bool), adjustment=np.zeros(m),
                      lot_sells=sells, lot_ids=lots.purchase.copy())
        return Decision(order, _Status(result), te)

    def orders(self, result, price: np.ndarray, loss: np.ndarray, excluded: np.ndarray,
               value: float, cash: float, lot_shares: np.ndarray, bench: np.ndarray,
               risk: FactorRisk) -> tuple[np.ndarray, np.ndarray, float]:
        """The program's trades as tickets (:meth:`_tickets`) and the ex-ante TE of the book
        they leave (``lot_shares``: the shares of each lot held). Rounding keeps the larger of
        the program's bound and ``te_limit``: where the tickets break it, the program's trades
        go as they are (one side per security, no dust: the exception, since crumbs bought
        block their names' harvests for 30 days)."""
        bound = max(result.te_cap, self.te_limit)
        held = lot_shares.sum(axis=1)
        for rounded in (True, False):
            sells, buys = self._tickets(result, price, loss, excluded, value, cash, lot_shares,
                                        bench - result.weights, rounded)
            weights = (held - sells.sum(axis=1) + buys) * price / value
            te = risk.tracking_error(weights - bench)
            if te <= bound:
                break
        return sells, buys, te

    def _tickets(self, result, price: np.ndarray, loss: np.ndarray, excluded: np.ndarray,
                 value: float, cash: float, lot_shares: np.ndarray, shortfall: np.ndarray,
                 rounded: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The program's trades as tickets.

        One side per security: selling and buying one security at once is an interior
        point's residue (a loss sale would be washed, a gain sale taxed for nothing). A loss
        sale below ``min_trade`` of the book is dropped, a sale of gain lots below
        ``min_rebalance`` (a Form 8949 row for a hair of tracking; forced sales of excluded
        names stay). Purchases below ``min_trade`` are pooled into tickets of ``min_trade``
        (the remainder stays cash): a crumb bought would block the name's harvest for 30
        days for no tracking gain. The tickets go to the crumbs the program leaves furthest
        under the benchmark (``shortfall``: benchmark less its weights), so pooled cash pulls
        the book toward the index. Purchases never spend more than the cash and the sales
        kept. A lot's sale below a hundredth of a ticket is dropped (an interior point's
        residue on the other lots of a sold security), one that would leave less than that of
        the lot sells all of it (the residue would stay a lot of cents, offered to every
        program after). Not ``rounded``: only the last two (and one side per security).
        """
        sells, buys = result.sell_shares, result.buy_shares
        sold = sells.sum(axis=1)
        net = buys - sold
        keep = np.divide(np.clip(-net, 0.0, None), sold, out=np.zeros_like(sold), where=sold > 0)
        sells, buys = sells * keep[:, None], np.clip(net, 0.0, None)
        ticket = self.min_trade * value * (1.0 - TICKET_SLACK)
        sold_down = (sells > 0) & ((lot_shares - sells) * price[:, None] < LOT_DUST * ticket)
        sells[sold_down] = lot_shares[sold_down]
        # no Form 8949 row for cents, except the excluded names' (sold out, crumbs included)
        sells[(sells * price[:, None] < LOT_DUST * ticket) & ~excluded[:, None]] = 0.0
        if not rounded:
            return sells, buys
        floor = np.where(((sells > 0) & loss).any(axis=1), ticket, self.min_rebalance * value)
        sells[((sells.sum(axis=1) * price) < floor) & ~excluded] = 0.0
        cost = buys * price
        small = np.flatnonzero((cost > 0) & (cost < ticket))
        small = small[np.argsort(-shortfall[small], kind="stable")]
        pooled = small[: int(cost[small].sum() // ticket)]
        buys[small] = 0.0
        buys[pooled] = self.min_trade * value / price[pooled]
        funds = cash + (sells.sum(axis=1) * price).sum()
        spent = (buys * price).sum()
        if spent > funds:  # the sales that paid for them were dropped
            buys *= funds / spent if funds >= ticket else 0.0
        return sells, buys


@dataclass(frozen=True)
class _Status:
    """The optimizer's outcome in the guardrail's terms (what the step info reports): an
    optimal decision is ``projected`` where its TE bound binds (the guardrail shaped it),
    ``unchanged`` where the bound left it free."""

    status: str
    reason: str
    distance: float

    def __init__(self, result) -> None:
        binding = result.program_te >= BINDING * result.te_cap  # stress included
        status = {"optimal": "projected" if binding else "unchanged"}.get(result.status,
                                                                          result.status)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "reason", result.reason)
        object.__setattr__(self, "distance", result.turnover)
