"""Tracking-error guardrail: project a proposed portfolio onto the admissible set.

A pure function of weights and a risk model; it never imports the environment, the tax engine
or training code. By default the projection is solved by the certified fast path
(:mod:`taxharvest.guardrails.fast`); the cvxpy problems are the reference it falls back to. They
are built once per universe shape ``(n, k)`` (DPP) and each call only sets parameter values and
solves, the cvxportfolio way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

import cvxpy as cp
import numpy as np

from taxharvest.guardrails.fast import FastProjection, NotCertified
from taxharvest.guardrails.program import TrackingErrorProgram, factor_loadings
from taxharvest.market.risk import FactorRisk

logger = logging.getLogger("taxharvest.guardrails")

Status = Literal["unchanged", "projected", "relaxed", "fallback"]
Method = Literal["fast", "reference"]

#: ``GuardrailResult.solver`` of the fast path's answers.
FAST = "fast"

#: Relaxed projections allow ``TE <= min TE * (1 + RELAX_MARGIN)`` to keep a strict interior.
RELAX_MARGIN = 1e-3
#: Solver results are accepted when TE exceeds the limit by at most this relative amount.
SOLVER_TE_SLACK = 1e-4
#: Solver results are accepted when ``sum(w)`` is within this of 1 (after clipping to the bounds).
SOLVER_SUM_SLACK = 1e-6

_SOLVER_OPTIONS: dict[str, dict] = {
    # presolve off lets cvxpy update the cached Clarabel solver in place (warm_start=True)
    "CLARABEL": {"presolve_enable": False},
    "SCS": {"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iters": 20_000},
}
_SOLVED = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
_INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)


@dataclass(frozen=True)
class GuardrailResult:
    """Outcome of one projection.

    Attributes:
        weights: admissible weights (read-only array).
        te_before: ex-ante TE of the proposal.
        te_after: ex-ante TE of ``weights``.
        status: ``unchanged`` (admissible, solver not called), ``projected`` (nearest admissible
            point), ``relaxed`` (TE limit unreachable: nearest point at the minimum achievable
            TE), ``fallback`` (no solution: the current portfolio, long-only and fully invested).
        solve_ms: wall time of the whole call, fast-path check included.
        distance: Euclidean (L2) distance ``||weights - proposed||_2``.
        reason: what was violated or what went wrong; empty only when ``unchanged``.
        solver: what produced ``weights`` (``fast``, or the cvxpy solver); ``None`` when no
            solve was used.
        turnover: ``||weights - current||_1``.
    """

    weights: np.ndarray = field(repr=False)
    te_before: float
    te_after: float
    status: Status
    solve_ms: float
    distance: float
    reason: str
    solver: str | None
    turnover: float


@dataclass(frozen=True)
class _Inputs:
    """Validated arrays for one call."""

    proposed: np.ndarray
    benchmark: np.ndarray
    current: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    no_buy: np.ndarray | None
    no_sell: np.ndarray | None
    excluded: np.ndarray | None
    gain_cost: np.ndarray | None
    risk: FactorRisk


@dataclass(frozen=True)
class _Attempt:
    """What one problem gave over the primary and the fallback solver."""

    weights: np.ndarray | None
    solver: str | None
    infeasible: bool
    errors: tuple[str, ...]


#: One backend's solve: the projection at a TE limit, or the minimum-TE problem for ``None``.
Solve = Callable[[float | None], _Attempt]


class TrackingErrorGuardrail:
    """Projects proposed weights inside the TE limit, exclusions and wash-sale blocks.

    Projection objective: ``1/2 ||w - p||^2 + gain_penalty * gain_cost' pos(min(p, c) - w)
    + cost_bps * 1e-4 * ||w - c||_1``. The linear terms act as soft thresholds: a trade is made
    only where it lowers ``1/2 ||w - p||^2`` by more than it costs. Only sells the guardrail adds
    beyond the proposal carry the gain cost; the proposal's own sells are the proposer's decision.
    ``cost_bps`` defaults to 0 so that a barely violating proposal moves barely (a positive cost
    pulls every trade of a projected proposal toward ``current``).

    ``method="fast"`` (the default) solves with :class:`FastProjection`, exact and certified, and
    with the cvxpy reference whenever it cannot certify its answer or a turnover cap is set;
    ``method="reference"`` always uses cvxpy. When the TE limit cannot be met under the hard
    constraints, a second problem finds the minimum achievable TE, and the projection is solved
    again with the limit at that minimum times ``1 + RELAX_MARGIN`` (status ``relaxed``). cvxpy
    solver errors and non-optimal statuses try ``fallback_solver``; when nothing works, or the
    hard constraints are infeasible, the result is the current portfolio made long-only and
    fully invested (status ``fallback``). Only invalid inputs raise (``ValueError``).

    Args:
        te_limit: annualized ex-ante tracking-error limit.
        max_weight: optional cap on every weight.
        max_turnover: optional cap on ``||w - current||_1`` (a hard constraint).
        gain_penalty: multiplier on ``gain_cost`` in the objective.
        cost_bps: trading cost per unit of weight traded, in basis points.
        solver: primary cvxpy solver; fallback_solver: tried when it fails (``None``: none).
        method: ``fast`` (certified fast path, cvxpy where it fails) or ``reference`` (cvxpy).
        tolerance: slack of the admissibility check (relative on TE, absolute on weights).

    Not thread-safe: compiled problems are cached in the instance per ``(n, k)`` and whether
    gains are priced, and the last fast TE multiplier starts the next search.
    """

    def __init__(
        self,
        te_limit: float = 0.01,
        *,
        max_weight: float | None = None,
        max_turnover: float | None = None,
        gain_penalty: float = 1.0,
        cost_bps: float = 0.0,
        solver: str = "CLARABEL",
        fallback_solver: str | None = "SCS",
        method: Method = "fast",
        tolerance: float = 1e-7,
    ) -> None:
        _check_positive("te_limit", te_limit)
        _check_positive("tolerance", tolerance)
        if max_weight is not None and not 0 < max_weight <= 1:
            raise ValueError(f"max_weight must be in (0, 1], got {max_weight}")
        if max_turnover is not None:
            _check_positive("max_turnover", max_turnover)
        if not (np.isfinite(gain_penalty) and gain_penalty >= 0):
            raise ValueError(f"gain_penalty must be finite and >= 0, got {gain_penalty}")
        if not (np.isfinite(cost_bps) and cost_bps >= 0):
            raise ValueError(f"cost_bps must be finite and >= 0, got {cost_bps}")
        if method not in get_args(Method):
            raise ValueError(f"method must be one of {get_args(Method)}, got {method!r}")
        for name, value in (("solver", solver), ("fallback_solver", fallback_solver)):
            if value is not None and value not in cp.installed_solvers():
                raise ValueError(f"{name} {value!r} is not installed: {cp.installed_solvers()}")
        self.te_limit = te_limit
        self.max_weight = max_weight
        self.max_turnover = max_turnover
        self.gain_penalty = gain_penalty
        self.cost_bps = cost_bps
        self.solver = solver
        self.fallback_solver = fallback_solver
        self.method = method
        self.tolerance = tolerance
        self._programs: dict[tuple[int, int, bool], TrackingErrorProgram] = {}
        self._multiplier = 0.0  # the last fast projection's TE multiplier: the next one's hint

    @property
    def trade_cost(self) -> float:
        """Cost per unit of weight traded (``cost_bps`` in weight units)."""
        return self.cost_bps * 1e-4

    def program(self, n: int, k: int, *, gain_term: bool = False) -> TrackingErrorProgram:
        """The compiled problems for ``n`` securities and ``k`` factors, built on first use.

        The gain-cost term adds ``n`` variables, so it is compiled only for calls that price
        gains (``gain_cost`` given, non-zero, and ``gain_penalty > 0``).
        """
        key = (n, k, gain_term)
        if key not in self._programs:
            self._programs[key] = TrackingErrorProgram(
                n,
                k,
                gain_term=gain_term,
                trade_cost=self.trade_cost,
                turnover_limit=self.max_turnover is not None,
            )
        return self._programs[key]

    def project(
        self,
        proposed: np.ndarray,
        benchmark: np.ndarray,
        risk: FactorRisk,
        *,
        current: np.ndarray | None = None,
        no_buy: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
        gain_cost: np.ndarray | None = None,
        no_sell: np.ndarray | None = None,
    ) -> GuardrailResult:
        """Nearest admissible weights to ``proposed``; never raises on market conditions.

        Args:
            proposed: proposed weights over the n securities (stocks and proxies).
            benchmark: benchmark weights, same securities.
            risk: factor risk model over the same securities.
            current: weights held now; defaults to ``proposed``.
            no_buy: mask of securities that may not rise above ``current`` (wash-sale windows).
            no_sell: mask of securities that may not fall below ``current`` (a sale at a loss
                would be washed by a recent purchase).
            excluded: mask of securities that must be zero.
            gain_cost: tax cost (>= 0) per unit weight sold below ``min(proposed, current)``.
        """
        start = time.perf_counter()
        inputs = self._validate(
            proposed, benchmark, risk, current, no_buy, excluded, gain_cost, no_sell
        )
        te_before = risk.tracking_error(inputs.proposed - inputs.benchmark)
        violations = self._violations(inputs, inputs.proposed, te_before)
        if not violations:
            return self._result(inputs, inputs.proposed, te_before, "unchanged", "", None, start)
        found = "; ".join(violations)
        if inputs.upper.sum() < 1 - self.tolerance or inputs.lower.sum() > 1 + self.tolerance:
            reason = (
                f"hard constraints infeasible: upper bounds (exclusions, no_buy, max_weight) "
                f"sum to {inputs.upper.sum():.4f}, lower bounds (no_sell) to "
                f"{inputs.lower.sum():.4f} ({found})"
            )
            return self._fallback(inputs, te_before, reason, start)
        risk_terms = (factor_loadings(risk), np.asarray(risk.specific_var, dtype=float))
        priced = self.gain_penalty > 0 and inputs.gain_cost is not None and inputs.gain_cost.any()
        gain_cost = self.gain_penalty * inputs.gain_cost if priced else None
        outcome = None
        if self.method == "fast" and self.max_turnover is None:
            try:
                fast = self._fast_solver(inputs, *risk_terms, gain_cost)
                outcome = self._run(fast, inputs, te_before, found, start)
            except NotCertified as why:
                logger.debug("fast projection not certified (%s); solving with cvxpy", why)
        if outcome is None:
            reference = self._reference_solver(inputs, *risk_terms, gain_cost)
            outcome = self._run(reference, inputs, te_before, found, start)
        if isinstance(outcome, GuardrailResult):
            return outcome
        return self._fallback(inputs, te_before, outcome, start)

    def _reference_solver(
        self,
        inputs: _Inputs,
        loadings: np.ndarray,
        specific_var: np.ndarray,
        gain_cost: np.ndarray | None,
    ) -> Solve:
        """The compiled cvxpy problems, their parameters set for this call."""
        risk = inputs.risk
        program = self.program(risk.n_securities, risk.n_factors, gain_term=gain_cost is not None)
        program.set_values(
            proposal=inputs.proposed,
            benchmark=inputs.benchmark,
            current=inputs.current,
            upper=inputs.upper,
            lower=inputs.lower,
            loadings=loadings,
            specific_var=specific_var,
            limit=self.te_limit,
            gain_cost=gain_cost,
            max_turnover=self.max_turnover,
        )

        def solve(limit: float | None) -> _Attempt:
            if limit is None:
                return self._solve(program.min_te, program.w, inputs, None)
            program.limit.value = limit
            return self._solve(program.projection, program.w, inputs, limit)

        return solve

    def _fast_solver(
        self,
        inputs: _Inputs,
        loadings: np.ndarray,
        specific_var: np.ndarray,
        gain_cost: np.ndarray | None,
    ) -> Solve:
        """:class:`FastProjection` behind the reference's interface (its weights in the bounds by
        construction); raises ``NotCertified`` where it has no acceptable answer."""
        fast = FastProjection(
            inputs.proposed,
            inputs.benchmark,
            inputs.current,
            inputs.lower,
            inputs.upper,
            loadings,
            specific_var,
            np.zeros(len(specific_var)) if gain_cost is None else gain_cost,
            2 * self.trade_cost,
        )

        def solve(limit: float | None) -> _Attempt:
            if limit is None:
                weights = fast.min_te()
            else:
                weights = fast.project(limit, self._multiplier or None)
                self._multiplier = fast.multiplier
            if weights is None:
                return _Attempt(None, None, True, (f"{FAST}: TE limit unreachable",))
            broken = _broken(weights, inputs, limit)
            if broken:
                raise NotCertified(broken)
            return _Attempt(weights, FAST, False, ())

        return solve

    def _run(
        self, solve: Solve, inputs: _Inputs, te_before: float, found: str, start: float
    ) -> GuardrailResult | str:
        """Project at the TE limit; when it is unreachable, at the minimum TE (+ RELAX_MARGIN).

        Returns the result, or why there is none (the caller falls back).
        """
        attempt = solve(self.te_limit)
        if attempt.weights is not None:
            return self._result(
                inputs, attempt.weights, te_before, "projected", found, attempt.solver, start
            )
        if not attempt.infeasible:
            return f"projection failed ({'; '.join(attempt.errors)}); violations: {found}"
        floor = solve(None)
        if floor.weights is None:
            what = "hard constraints infeasible" if floor.infeasible else "minimum-TE solve failed"
            return f"{what} ({'; '.join(floor.errors)}); violations: {found}"
        te_min = inputs.risk.tracking_error(floor.weights - inputs.benchmark)
        limit = max(self.te_limit, te_min * (1 + RELAX_MARGIN))
        attempt = solve(limit)
        weights, solver = attempt.weights, attempt.solver
        if weights is None:
            weights, solver = floor.weights, floor.solver
            found += (
                f"; projection at the relaxed limit failed ({'; '.join(attempt.errors)}), "
                "kept the minimum-TE portfolio"
            )
        if limit == self.te_limit:
            return self._result(inputs, weights, te_before, "projected", found, solver, start)
        reason = (
            f"TE limit {self.te_limit:.3%} unreachable under the hard constraints: minimum "
            f"achievable TE {te_min:.3%}, projected with limit {limit:.3%}; violations: {found}"
        )
        return self._result(inputs, weights, te_before, "relaxed", reason, solver, start)

    def _solve(
        self, problem: cp.Problem, variable: cp.Variable, inputs: _Inputs, limit: float | None
    ) -> _Attempt:
        """Solve with the primary solver, then the fallback; check the cleaned solution."""
        errors: list[str] = []
        infeasible = False
        for solver in dict.fromkeys(filter(None, (self.solver, self.fallback_solver))):
            try:
                problem.solve(solver=solver, warm_start=True, **_SOLVER_OPTIONS.get(solver, {}))
            except Exception as error:  # a solver failure must not crash the run
                errors.append(f"{solver}: {type(error).__name__}: {error}")
                continue
            if problem.status in _INFEASIBLE:
                infeasible = True
                errors.append(f"{solver}: {problem.status}")
                break
            if problem.status not in _SOLVED:
                errors.append(f"{solver}: {problem.status}")
                continue
            weights = np.clip(variable.value, 0.0, inputs.upper)
            broken = _broken(weights, inputs, limit)
            if broken:
                errors.append(f"{solver}: {problem.status} but {broken}")
                continue
            return _Attempt(weights, solver, False, tuple(errors))
        return _Attempt(None, None, infeasible, tuple(errors))

    def _fallback(
        self, inputs: _Inputs, te_before: float, reason: str, start: float
    ) -> GuardrailResult:
        """The current portfolio, long-only and fully invested (the benchmark if it is empty)."""
        held = np.clip(inputs.current, 0.0, None)
        if held.sum() <= 0:
            held = inputs.benchmark
        weights = held / held.sum()
        return self._result(inputs, weights, te_before, "fallback", reason, None, start)

    def _result(
        self,
        inputs: _Inputs,
        weights: np.ndarray,
        te_before: float,
        status: Status,
        reason: str,
        solver: str | None,
        start: float,
    ) -> GuardrailResult:
        """Package, time and log one outcome."""
        weights = np.array(weights, dtype=float)
        weights.setflags(write=False)
        unchanged = status == "unchanged"
        te_after = (
            te_before if unchanged else inputs.risk.tracking_error(weights - inputs.benchmark)
        )
        distance = 0.0 if unchanged else float(np.linalg.norm(weights - inputs.proposed))
        turnover = float(np.abs(weights - inputs.current).sum())
        solve_ms = 1e3 * (time.perf_counter() - start)
        if not unchanged:
            logger.log(
                logging.INFO if status == "projected" else logging.WARNING,
                "%s: TE %.3f%% -> %.3f%% in %.1f ms (%s): %s",
                status,
                100 * te_before,
                100 * te_after,
                solve_ms,
                solver,
                reason,
            )
        return GuardrailResult(
            weights, te_before, te_after, status, solve_ms, distance, reason, solver, turnover
        )

    def _violations(self, inputs: _Inputs, w: np.ndarray, te: float) -> list[str]:
        """Human-readable list of the constraints ``w`` violates; empty when admissible. O(n k)."""
        tol = self.tolerance
        found = []
        if te > self.te_limit * (1 + tol):
            found.append(f"TE {te:.3%} > limit {self.te_limit:.3%}")
        if abs(w.sum() - 1) > tol:
            found.append(f"sum(w) = {w.sum():.6f} != 1")
        if w.min() < -tol:
            found.append(f"{int((w < -tol).sum())} negative weights")
        if (w - inputs.upper).max() > tol:
            found.extend(_bound_violations(inputs, w, self.max_weight, tol))
        if (inputs.lower - w).max() > tol:
            found.append(f"{int((inputs.lower - w > tol).sum())} no_sell names below their bound")
        if self.max_turnover is not None:
            turnover = np.abs(w - inputs.current).sum()
            if turnover > self.max_turnover + tol:
                found.append(f"turnover {turnover:.4f} > {self.max_turnover:.4f}")
        return found

    def _validate(
        self,
        proposed: np.ndarray,
        benchmark: np.ndarray,
        risk: FactorRisk,
        current: np.ndarray | None,
        no_buy: np.ndarray | None,
        excluded: np.ndarray | None,
        gain_cost: np.ndarray | None,
        no_sell: np.ndarray | None = None,
    ) -> _Inputs:
        """Check shapes and values; raise ``ValueError`` naming the argument."""
        if not isinstance(risk, FactorRisk):
            raise ValueError(f"risk must be a FactorRisk, got {type(risk).__name__}")
        n = risk.n_securities
        if not (np.isfinite(risk.exposures).all() and np.isfinite(risk.factor_cov).all()):
            raise ValueError("risk contains NaN or infinite exposures or factor_cov")
        if not np.isfinite(risk.specific_var).all():
            raise ValueError("risk contains NaN or infinite specific_var")
        proposed = _vector("proposed", proposed, n)
        benchmark = _vector("benchmark", benchmark, n)
        current = proposed if current is None else _vector("current", current, n)
        no_buy = _mask("no_buy", no_buy, n)
        excluded = _mask("excluded", excluded, n)
        no_sell = _mask("no_sell", no_sell, n)
        if gain_cost is not None:
            gain_cost = _vector("gain_cost", gain_cost, n)
            if gain_cost.min() < 0:
                raise ValueError("gain_cost must be >= 0")
        cap = 1.0 if self.max_weight is None else self.max_weight
        upper = np.full(n, cap)
        if no_buy is not None:
            upper = np.where(no_buy, np.clip(current, 0.0, cap), upper)
        if excluded is not None:
            upper[excluded] = 0.0
        lower = np.zeros(n)
        if no_sell is not None:
            lower = np.where(no_sell, np.clip(current, 0.0, upper), 0.0)
        return _Inputs(
            proposed, benchmark, current, upper, lower, no_buy, no_sell, excluded, gain_cost, risk
        )


def _broken(weights: np.ndarray, inputs: _Inputs, limit: float | None) -> str:
    """What makes a solver's weights unacceptable (budget, TE over ``limit``, NaN); empty if
    none."""
    te = inputs.risk.tracking_error(weights - inputs.benchmark)
    if abs(weights.sum() - 1) <= SOLVER_SUM_SLACK and (
        limit is None or te <= limit * (1 + SOLVER_TE_SLACK)
    ):
        return ""
    return f"sum {weights.sum():.8f}, TE {te:.5%}"


def _bound_violations(
    inputs: _Inputs, w: np.ndarray, max_weight: float | None, tol: float
) -> list[str]:
    """Which upper bounds ``w`` breaks: exclusions, wash-sale blocks, ``max_weight``."""
    above = w - inputs.upper > tol
    found = []
    for name, mask in (("excluded", inputs.excluded), ("no_buy", inputs.no_buy)):
        if mask is not None and (above & mask).any():
            found.append(f"{int((above & mask).sum())} {name} names above their bound")
    if max_weight is not None and (w > max_weight + tol).any():
        found.append(f"{int((w > max_weight + tol).sum())} weights above max_weight {max_weight}")
    return found


def _vector(name: str, value: np.ndarray, n: int) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if array.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) like the risk model, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _mask(name: str, value: np.ndarray | None, n: int) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value)
    if array.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) like the risk model, got {array.shape}")
    if array.dtype != bool:
        raise ValueError(f"{name} must be a boolean mask, got dtype {array.dtype}")
    return array


def _check_positive(name: str, value: float) -> None:
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value}")
