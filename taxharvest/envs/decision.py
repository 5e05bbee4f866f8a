"""The decision pipeline: an action becomes an order the TE limit and wash-sale rule allow.

Harvests are taken largest loss first while the tracking error frozen by wash windows fits
a budget (:func:`select_within_lock_budget`), then the proposal (harvests into proxies,
swap-backs, cash invested toward the benchmark) is projected inside the TE limit by the
guardrail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taxharvest.envs.broker import LOT, Blocks, Broker, Order
from taxharvest.envs.features import propose, select_within_lock_budget
from taxharvest.guardrails import GuardrailResult, TrackingErrorGuardrail, factor_loadings
from taxharvest.market.risk import FactorRisk


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
        delta[np.abs(delta) < self.min_trade * value] = 0.0
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
