"""The decision program in cvxpy: the reference every faster solver is compared with.

Each objective or constraint term is a small class with one life cycle, the cvxportfolio way:
``__init__`` creates its parameters once per shape ``(m, L, k)``, ``compile`` returns its
expression and constraints over the trade variables, ``set_values`` copies one
:class:`Problem`'s numbers into its parameters. No parameter multiplies another (DPP), so the
problems compile once and every decision only sets values and solves.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from taxharvest.optimize.problem import Duals, Problem, Settings

_SOLVER_OPTIONS: dict[str, dict] = {
    "CLARABEL": {},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 50_000},
}
_SOLVED = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
_INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)

Compiled = tuple[cp.Expression | float, list[cp.Constraint]]


@dataclass(frozen=True)
class Attempt:
    """What a solver gave: trades in weight units, or why not; ``duals``: the multipliers at
    the trades, where the solver gives them (the fast path)."""

    sells: np.ndarray | None
    buys: np.ndarray | None
    infeasible: bool
    error: str
    solver: str | None
    duals: Duals | None = None


class Trade:
    """Decision variables: lot sales ``s (m, L)``, buys ``b (m,)`` and the post-trade weights
    ``w = held - sum_j s + b`` as a variable of their own, so that the risk terms see ``m``
    weights, not ``m L`` sales (a sparse KKT system)."""

    def __init__(self, m: int, slots: int) -> None:
        self.sells = cp.Variable((m, slots), name="sells")
        self.buys = cp.Variable(m, name="buys")
        self.weights = cp.Variable(m, name="weights")
        self.held = cp.Parameter(m, name="held")
        self.traded = cp.sum(self.sells) + cp.sum(self.buys)

    def compile(self) -> list[cp.Constraint]:
        return [self.weights - self.buys + cp.sum(self.sells, axis=1) == self.held]

    def set_values(self, problem: Problem) -> None:
        self.held.value = problem.held


class ActiveRisk:
    """``r`` with ``||r||^2`` the program's squared TE (:class:`ProgramRisk`) of active weights
    ``a = w - benchmark``: ``r = [f; sd * w - sd * benchmark + t; c]``, the factor exposures
    ``f = G w - G benchmark + offset`` a variable of their own (the products of parameters
    are parameters: DPP), the linear term completed to a square (``t = linear / sd``) and
    ``c`` the constant left."""

    def __init__(self, m: int, k: int) -> None:
        self.loadings = cp.Parameter((k, m), name="loadings")
        self.benchmark_loadings = cp.Parameter(k, name="benchmark_loadings")
        self.specific_sd = cp.Parameter(m, nonneg=True, name="specific_sd")
        self.benchmark_specific = cp.Parameter(m, name="benchmark_specific")
        self.constant = cp.Parameter(1, nonneg=True, name="risk_constant")
        self.factor_exposure = cp.Variable(k, name="factor_exposure")

    def compile(self, trade: Trade) -> tuple[cp.Expression, list[cp.Constraint]]:
        exposure = self.factor_exposure
        risk = cp.hstack([
            exposure, cp.multiply(self.specific_sd, trade.weights) - self.benchmark_specific,
            self.constant,
        ])
        return risk, [exposure == self.loadings @ trade.weights - self.benchmark_loadings]

    def set_values(self, problem: Problem) -> None:
        risk = problem.program_risk
        sd = risk.specific_sd
        square = np.divide(risk.linear, sd, out=np.zeros_like(sd), where=sd > 0)
        self.loadings.value = risk.loadings
        self.benchmark_loadings.value = risk.loadings @ problem.benchmark - risk.offset
        self.specific_sd.value = sd
        self.benchmark_specific.value = sd * problem.benchmark - square
        self.constant.value = np.array([np.sqrt(max(risk.constant - square @ square, 0.0))])


class TaxCost:
    """``sum(lot_tax * s) + excess' carry``, ``carry >= pos(-N - capacity)`` per character."""

    def __init__(self, m: int, slots: int) -> None:
        self.lot_tax = cp.Parameter((m, slots), name="lot_tax")
        self.coefficient = [cp.Parameter((m, slots), name=f"coefficient_{c}") for c in "sl"]
        self.excess = cp.Parameter(2, nonneg=True, name="excess")
        self.capacity = cp.Parameter(2, name="capacity")
        self.carry = cp.Variable(2, nonneg=True, name="carry")

    def compile(self, trade: Trade) -> Compiled:
        net = cp.hstack([cp.sum(cp.multiply(c, trade.sells)) for c in self.coefficient])
        cost = cp.sum(cp.multiply(self.lot_tax, trade.sells)) + self.excess @ self.carry
        return cost, [self.carry >= -net - self.capacity]

    def set_values(self, problem: Problem) -> None:
        self.lot_tax.value = problem.lot_tax
        self.coefficient[0].value = problem.coefficient_short
        self.coefficient[1].value = problem.coefficient_long
        self.excess.value = problem.excess
        self.capacity.value = problem.capacity


class TrackingPenalty:
    """``kappa * TE^2`` with a fixed price ``kappa``."""

    def __init__(self, risk: cp.Expression, risk_price: float) -> None:
        self.risk = risk
        self.risk_price = risk_price

    def compile(self, trade: Trade) -> Compiled:
        return self.risk_price * cp.sum_squares(self.risk), []

    def set_values(self, problem: Problem) -> None:
        """Its price is a setting; the risk vector's values are set by :class:`ActiveRisk`."""


class TradingCost:
    """``cost * (sum(s) + sum(b))`` with a fixed cost per unit traded."""

    def __init__(self, trade_cost: float) -> None:
        self.trade_cost = trade_cost

    def compile(self, trade: Trade) -> Compiled:
        return self.trade_cost * trade.traded, []

    def set_values(self, problem: Problem) -> None:
        """The cost is a setting."""


class TradeBounds:
    """``sell_lower <= s <= sell_upper``, ``0 <= b <= buy_upper``: exclusions, wash-sale
    windows, preferences and thresholds, long-only."""

    def __init__(self, m: int, slots: int) -> None:
        self.sell_lower = cp.Parameter((m, slots), nonneg=True, name="sell_lower")
        self.sell_upper = cp.Parameter((m, slots), nonneg=True, name="sell_upper")
        self.buy_upper = cp.Parameter(m, nonneg=True, name="buy_upper")

    def compile(self, trade: Trade) -> Compiled:
        return 0.0, [
            trade.sells >= self.sell_lower,
            trade.sells <= self.sell_upper,
            trade.buys >= 0,
            trade.buys <= self.buy_upper,
        ]

    def set_values(self, problem: Problem) -> None:
        self.sell_lower.value = problem.sell_lower
        self.sell_upper.value = problem.sell_upper
        self.buy_upper.value = problem.buy_upper


class CashBand:
    """``1 - band <= sum(w) <= 1``: fully invested up to the pass's cash band
    (:attr:`Problem.cash_band`), no borrowing."""

    def __init__(self) -> None:
        self.floor = cp.Parameter(name="invested_floor")

    def compile(self, trade: Trade) -> Compiled:
        invested = cp.sum(trade.weights)
        return 0.0, [invested <= 1, invested >= self.floor]

    def set_values(self, problem: Problem) -> None:
        self.floor.value = 1.0 - problem.cash_band


class GainBudget:
    """``sum(realized * s) <= budget``: the net realized gain of this decision."""

    def __init__(self, m: int, slots: int) -> None:
        self.realized = cp.Parameter((m, slots), name="realized")
        self.budget = cp.Parameter(name="gain_budget")

    def compile(self, trade: Trade) -> Compiled:
        return 0.0, [cp.sum(cp.multiply(self.realized, trade.sells)) <= self.budget]

    def set_values(self, problem: Problem) -> None:
        self.realized.value = problem.realized
        self.budget.value = problem.gain_bound


class TurnoverCap:
    """``sum(s) + sum(b) <= turnover`` with a fixed cap."""

    def __init__(self, turnover: float) -> None:
        self.turnover = turnover

    def compile(self, trade: Trade) -> Compiled:
        return 0.0, [trade.traded <= self.turnover]

    def set_values(self, problem: Problem) -> None:
        """The cap is a setting."""


class TrackingLimit:
    """``TE <= te_cap``, one second-order cone in factor form."""

    def __init__(self, risk: cp.Expression) -> None:
        self.risk = risk
        self.te_cap = cp.Parameter(nonneg=True, name="te_cap")

    def compile(self, trade: Trade) -> Compiled:
        return 0.0, [cp.norm2(self.risk) <= self.te_cap]

    def set_values(self, problem: Problem) -> None:
        self.te_cap.value = problem.te_cap


class ReferenceProgram:
    """The decision problem and its minimum-TE twin over ``m`` securities, ``L`` lot slots and
    ``k`` factors, compiled once; :meth:`solve` sets one :class:`Problem`'s values and solves.

    ``decide`` minimizes the objective terms (tax, TE penalty, trading cost) under every
    constraint term; ``min_te`` minimizes TE under the hard constraints alone (every term but
    the TE limit).
    """

    def __init__(self, m: int, slots: int, k: int, settings: Settings) -> None:
        self.trade = Trade(m, slots)
        self.active_risk = ActiveRisk(m, k)
        risk, definitions = self.active_risk.compile(self.trade)
        definitions += self.trade.compile()
        objective_terms = [
            TaxCost(m, slots),
            TrackingPenalty(risk, settings.risk_price),
            TradingCost(settings.trade_cost),
        ]
        hard_terms = [TradeBounds(m, slots), CashBand(), GainBudget(m, slots)]
        if settings.max_turnover is not None:
            hard_terms.append(TurnoverCap(settings.max_turnover))
        limit = TrackingLimit(risk)
        self.terms = [self.trade, self.active_risk, *objective_terms, *hard_terms, limit]

        objective, constraints = 0.0, []
        for term in objective_terms:
            expression, epigraphs = term.compile(self.trade)
            objective += expression
            constraints += epigraphs
        hard = definitions + [c for term in hard_terms for c in term.compile(self.trade)[1]]
        self.decide = cp.Problem(cp.Minimize(objective), constraints + hard + limit.compile(self.trade)[1])
        self.min_te = cp.Problem(cp.Minimize(cp.norm2(risk)), hard)
        assert self.decide.is_dpp() and self.min_te.is_dpp()

    def set_values(self, problem: Problem) -> None:
        for term in self.terms:
            term.set_values(problem)

    def solve(self, problem: Problem, *, min_te: bool = False, solvers=("CLARABEL", "SCS")) -> Attempt:
        """Solve ``decide`` (or ``min_te``) for ``problem``; the first solver that succeeds wins."""
        self.set_values(problem)
        program = self.min_te if min_te else self.decide
        errors = []
        for solver in solvers:
            try:
                with warnings.catch_warnings():  # an inaccurate solution is its status, not a warning
                    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                    program.solve(solver=solver, **_SOLVER_OPTIONS.get(solver, {}))
            except cp.error.SolverError as error:
                errors.append(f"{solver}: {error}")
                continue
            if program.status in _INFEASIBLE:
                return Attempt(None, None, True, f"{solver}: {program.status}", solver)
            if program.status not in _SOLVED:
                errors.append(f"{solver}: {program.status}")
                continue
            sells = np.clip(self.trade.sells.value, problem.sell_lower, problem.sell_upper)
            buys = np.clip(self.trade.buys.value, 0.0, problem.buy_upper)
            return Attempt(sells, buys, False, "; ".join(errors), solver)
        return Attempt(None, None, False, "; ".join(errors), None)
