"""The parametrized cvxpy programs behind the guardrail, compiled once per universe shape.

Tracking error is written in factor form as one second-order cone: with ``Sigma = B F B' +
diag(d)``, ``F = L L'``, ``G = (B L)'`` (k x n) and active weights ``a = w - b``,
``a' Sigma a = ||G a||^2 + ||sqrt(d) * a||^2``. ``G b`` and ``sqrt(d) * b`` are parameters of their
own so that no parameter multiplies another (DPP): every call only sets values and solves.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from taxharvest.market.risk import FactorRisk


def factor_loadings(risk: FactorRisk) -> np.ndarray:
    """``G = (B L)'`` with ``L L' = F``; an eigen root when ``F`` is only semidefinite."""
    cov = np.asarray(risk.factor_cov, dtype=float)
    try:
        root = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(cov)
        root = vectors * np.sqrt(np.clip(values, 0.0, None))
    return (np.asarray(risk.exposures, dtype=float) @ root).T


def _sells(w: cp.Variable, anchor: cp.Parameter) -> tuple[cp.Variable, list[cp.Constraint]]:
    """Epigraph ``s >= pos(anchor - w)``: exact at the optimum wherever ``s`` is priced."""
    sells = cp.Variable(w.shape, nonneg=True)
    return sells, [sells >= anchor - w]


class TrackingErrorProgram:
    """Projection and minimum-TE problems over ``n`` securities and ``k`` factors.

    ``projection``: minimize ``1/2 ||w - p||^2 + gain_cost' pos(min(p, c) - w) + trade_cost ||w - c||_1``
    subject to the hard constraints and ``TE(w) <= limit``. ``min_te``: minimize ``TE(w)`` subject
    to the hard constraints alone. Hard constraints: ``sum(w) = 1``, ``0 <= w <= upper`` (one bound
    for exclusions, wash-sale blocks and ``max_weight``) and, optionally, ``||w - c||_1 <= max
    turnover``, written as ``2 sum(pos(c - w)) <= turnover - (1 - sum(c))`` since ``sum(w) = 1``.
    Both problems share variables and parameters; setting values updates both.
    """

    def __init__(
        self, n: int, k: int, *, gain_term: bool, trade_cost: float, turnover_limit: bool
    ) -> None:
        self.w = cp.Variable(n, name="w")
        self.proposal = cp.Parameter(n, name="proposal")
        self.current = cp.Parameter(n, name="current")
        self.loadings = cp.Parameter((k, n), name="loadings")
        self.benchmark_loadings = cp.Parameter(k, name="benchmark_loadings")
        self.specific_vol = cp.Parameter(n, nonneg=True, name="specific_vol")
        self.benchmark_specific = cp.Parameter(n, name="benchmark_specific")
        self.upper = cp.Parameter(n, nonneg=True, name="upper")
        self.lower = cp.Parameter(n, nonneg=True, name="lower")
        self.limit = cp.Parameter(nonneg=True, name="limit")
        self.gain_anchor = cp.Parameter(n, name="gain_anchor") if gain_term else None
        self.gain_cost = cp.Parameter(n, nonneg=True, name="gain_cost") if gain_term else None
        self.turnover_budget = cp.Parameter(name="turnover_budget") if turnover_limit else None

        w = self.w
        tracking_error = cp.norm2(
            cp.hstack(
                [
                    self.loadings @ w - self.benchmark_loadings,
                    cp.multiply(self.specific_vol, w) - self.benchmark_specific,
                ]
            )
        )
        hard = [cp.sum(w) == 1, w >= self.lower, w <= self.upper]
        # 1/2 ||w - p||^2 up to a constant; expanded, it needs no auxiliary variable for w - p
        objective = 0.5 * cp.sum_squares(w) - self.proposal @ w
        if trade_cost > 0 or turnover_limit:
            sells, epigraph = _sells(w, self.current)
            hard += epigraph
            objective += 2 * trade_cost * cp.sum(sells)
            if turnover_limit:
                hard.append(2 * cp.sum(sells) <= self.turnover_budget)
        soft = []
        if gain_term:
            gain_sells, soft = _sells(w, self.gain_anchor)
            objective += self.gain_cost @ gain_sells
        self.projection = cp.Problem(
            cp.Minimize(objective), hard + soft + [tracking_error <= self.limit]
        )
        self.min_te = cp.Problem(cp.Minimize(tracking_error), hard)
        assert self.projection.is_dpp() and self.min_te.is_dpp()

    def set_values(
        self,
        *,
        proposal: np.ndarray,
        benchmark: np.ndarray,
        current: np.ndarray,
        upper: np.ndarray,
        lower: np.ndarray,
        loadings: np.ndarray,
        specific_var: np.ndarray,
        limit: float,
        gain_cost: np.ndarray | None,
        max_turnover: float | None,
    ) -> None:
        """Set every parameter for one call; nothing is rebuilt."""
        specific_vol = np.sqrt(specific_var)
        self.proposal.value = proposal
        self.current.value = current
        self.loadings.value = loadings
        self.benchmark_loadings.value = loadings @ benchmark
        self.specific_vol.value = specific_vol
        self.benchmark_specific.value = specific_vol * benchmark
        self.upper.value = upper
        self.lower.value = lower
        self.limit.value = limit
        if self.gain_cost is not None:  # gain_cost is given whenever the program prices gains
            self.gain_anchor.value = np.minimum(proposal, current)
            self.gain_cost.value = gain_cost
        if self.turnover_budget is not None:
            self.turnover_budget.value = max_turnover - (1.0 - current.sum())
