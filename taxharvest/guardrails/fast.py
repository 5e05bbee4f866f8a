"""The guardrail's fast path: the projection solved exactly through its dual, with certificates.

With the TE constraint priced at a multiplier ``lam`` the projection is
``min F(w) + lam/2 TE(w)^2`` over ``H = {sum(w) = 1, lower <= w <= upper}``, where
``F(w) = 1/2 ||w - p||^2 + sum_j price_j' pos(kink_j - w)`` and ``TE(w)^2 = ||G a||^2 + d' a^2``,
``a = w - b`` (``Sigma = G'G + diag(d)``). Pricing the factor exposures ``G a`` with ``z`` and
the budget with ``nu`` separates it per security: each weight is the closed-form minimizer of a
one-dimensional piecewise quadratic. For each ``z`` the budget price solves the monotone
piecewise-linear ``sum(w) = 1`` exactly; the dual in ``z`` (k unknowns) is then concave with a
piecewise-linear gradient, maximized by a semismooth Newton method with a line search. A
safeguarded Newton method on ``1 / TE(lam)`` finds the multiplier where the limit binds.

Every answer is certified: dual residuals within ``DUAL_TOL``, TE at the limit within
``TE_TOL``, an unreachable limit or a minimum TE by a Frank-Wolfe lower bound on ``min_H TE^2``.
Anything uncertified raises :class:`NotCertified`, and the caller solves with the reference.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numba as nb
import numpy as np

_T = TypeVar("_T")

#: Compiled once to the cache; numpy's error model (no division checks in the loops).
_jit = nb.njit(cache=True, error_model="numpy")

#: Largest dual residual (factor exposures and budget, in weight units) of a solved dual.
DUAL_TOL = 1e-12
#: The budget price search stops at this budget residual.
BUDGET_TOL = 1e-14
#: The multiplier search stops when TE is within this relative amount of the limit.
TE_TOL = 1e-9
#: A minimum TE is certified when ``TE^2`` is within this relative amount of its lower bound.
GAP_TOL = 1e-9
#: Proximal steps of the minimum-TE search price ``TE^2`` at this multiple of the mean variance.
PROXIMAL_STIFFNESS = 1e4
#: Sufficient increase of the dual along a Newton step (Armijo).
ARMIJO = 1e-4
#: Dual values within this relative amount count as equal (rounding) in the line search.
VALUE_ROUNDING = 1e-14
#: Iteration caps: budget prices per dual point, Newton steps per dual, halvings per line
#: search, multipliers per limit, proximal steps per minimum TE.
MAX_BUDGET, MAX_NEWTON, MAX_HALVINGS, MAX_MULTIPLIERS, MAX_PROXIMAL = 100, 60, 50, 80, 100
#: Without a bracket, the multiplier grows at least and at most these factors per step.
MIN_GROWTH, MAX_GROWTH = 2.0, 1e3


class NotCertified(Exception):
    """The fast path has no certified answer; the caller solves with the reference."""


def _certified(method: Callable[..., _T]) -> Callable[..., _T]:
    """``method`` with a singular Newton matrix (a multiplier far out) as ``NotCertified``."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs) -> _T:
        try:
            return method(*args, **kwargs)
        except np.linalg.LinAlgError as error:
            raise NotCertified(f"singular Newton matrix: {error}") from error

    return wrapper


@dataclass(frozen=True)
class _Objective:
    """``1/2 ||w - target||^2 + sum_j prices[j]' pos(kinks[j] - w)``; ``kinks`` ``(hinges, n)``,
    ascending down each column."""

    target: np.ndarray
    kinks: np.ndarray
    prices: np.ndarray


@dataclass(frozen=True)
class _Point:
    """A solved dual: factor and budget prices, the weights, which are on a smooth piece."""

    z: np.ndarray
    budget_price: float
    w: np.ndarray
    free: np.ndarray


@_jit
def _minimizers(pull, curvature, kinks, prices, lower, upper, budget_price, w, free):
    """Each ``w_i = argmin curvature_i/2 w^2 - r_i w + hinges_i(w)`` on ``[lower_i, upper_i]``,
    ``r = pull - budget_price``, into ``w``; ``free``: on a smooth piece inside the box.

    Returns ``sum(w)``, ``-d sum(w) / d budget_price`` and the sum of the minimized values.
    """
    total = rate = value = 0.0
    for i in range(len(pull)):
        r = pull[i] - budget_price
        slope = 0.0  # minus the slope of the hinges left of every kink
        for h in range(kinks.shape[0]):
            slope += prices[h, i]
        wi = (r + slope) / curvature[i]
        kinked = False
        for h in range(kinks.shape[0]):
            slope -= prices[h, i]
            if wi > kinks[h, i]:
                candidate = (r + slope) / curvature[i]
                kinked = candidate <= kinks[h, i]
                wi = max(kinks[h, i], candidate)
        free[i] = not kinked and lower[i] < wi < upper[i]
        wi = min(max(wi, lower[i]), upper[i])
        w[i] = wi
        total += wi
        if free[i]:
            rate += 1.0 / curvature[i]
        value += wi * (0.5 * curvature[i] * wi - r)
        for h in range(kinks.shape[0]):
            value += prices[h, i] * max(kinks[h, i] - wi, 0.0)
    return total, rate, value


@_jit
def _budget_price(pull, curvature, kinks, prices, lower, upper, start, w, free):
    """The price ``nu`` with ``sum(w(nu)) = 1`` (``sum(w)`` falls in ``nu``, piecewise linearly):
    Newton from ``start`` inside the bracket where every weight is at a bound, else bisection.
    Leaves ``w`` and ``free`` at ``nu``; returns ``nu``, the budget residual and the value."""
    low = np.min(pull - curvature * upper)  # at or below: every weight at its upper bound
    high = np.max(pull + prices.sum(axis=0) - curvature * lower)  # at or above: at its lower
    nu = min(max(start, low), high)
    gap, value = np.inf, 0.0
    for _ in range(MAX_BUDGET):
        total, rate, value = _minimizers(pull, curvature, kinks, prices, lower, upper, nu, w, free)
        gap = total - 1.0
        if abs(gap) <= BUDGET_TOL or high - low <= BUDGET_TOL * (1.0 + abs(nu)):
            break
        if gap > 0:
            low = nu
        else:
            high = nu
        newton = nu + gap / rate if rate > 0 else np.nan
        nu = newton if low < newton < high else 0.5 * (low + high)
    return nu, gap, value - nu


@_jit
def _newton_solve(loadings_t, gain, damping, rhs):
    """Solve ``(G P G' + damping I) step = rhs``, ``P = C - c c' / sum(c)``, ``C = diag(gain)``:
    the negated generalized Hessian of the dual in ``z`` once the budget price is eliminated."""
    moving = np.flatnonzero(gain)
    rows = loadings_t[moving]
    weighted = rows * gain[moving].reshape(-1, 1)
    hessian = rows.T @ weighted + damping * np.eye(len(rhs))
    if len(moving):
        spread = weighted.sum(axis=0)
        hessian -= np.outer(spread, spread) / gain.sum()
    return np.linalg.solve(hessian, rhs)


@_jit
def _dual_point(problem, inv_lam, z, budget_price, w, free):
    """The dual at factor prices ``z``: weights into ``w`` and ``free``, the budget price
    (searched from ``budget_price``), the dual value, its gradient in ``z``, the residual."""
    pull, curvature, kinks, prices, lower, upper, loadings_t, benchmark_exposure = problem
    nu, gap, value = _budget_price(
        pull - loadings_t @ z, curvature, kinks, prices, lower, upper, budget_price, w, free
    )
    grad = w @ loadings_t - benchmark_exposure - inv_lam * z
    value -= benchmark_exposure @ z + 0.5 * inv_lam * (z @ z)
    return nu, value, grad, max(np.abs(grad).max(), abs(gap))


@_jit
def _solve_dual(problem, inv_lam, z, budget_price, w, free):
    """Semismooth Newton ascent on the dual from ``z``; a step is taken when the dual rises
    enough (Armijo), or holds to rounding while the residual halves (near the answer a rise
    is below rounding). Leaves the answer's weights in ``w`` and ``free``; returns its factor
    and budget prices and residual (above ``DUAL_TOL`` when it failed)."""
    curvature, loadings_t = problem[1], problem[6]
    trial_w, trial_free = np.empty_like(w), np.empty_like(free)
    nu, value, grad, residual = _dual_point(problem, inv_lam, z, budget_price, w, free)
    for _ in range(MAX_NEWTON):
        if residual <= DUAL_TOL:
            break
        step = _newton_solve(loadings_t, free / curvature, inv_lam, grad)
        rise, rounding = grad @ step, VALUE_ROUNDING * (1.0 + abs(value))
        scale, accepted = 1.0, False
        for _ in range(MAX_HALVINGS):
            trial_z = z + scale * step
            trial_nu, trial_value, trial_grad, trial_residual = _dual_point(
                problem, inv_lam, trial_z, nu, trial_w, trial_free
            )
            if trial_value >= value + ARMIJO * scale * rise or (
                trial_value >= value - rounding and trial_residual <= 0.5 * residual
            ):
                accepted = True
                break
            scale *= 0.5
        if not accepted:
            break
        z, nu, value, grad, residual = trial_z, trial_nu, trial_value, trial_grad, trial_residual
        w[:] = trial_w
        free[:] = trial_free
    return z, nu, residual


def _cheapest(cost: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """``min cost' w`` over ``H``: the lower bounds, then the budget left to the cheapest names."""
    order = np.argsort(cost)
    room = (upper - lower)[order]
    fill = np.clip(1.0 - lower.sum() - (np.cumsum(room) - room), 0.0, room)
    return float(cost @ lower + cost[order] @ fill)


class _PricedProblem:
    """``min F(w) + lam/2 TE(w)^2`` over ``H`` through its dual in ``z`` (none at ``lam = 0``)."""

    def __init__(self, space: FastProjection, objective: _Objective, lam: float) -> None:
        self.space, self.objective, self.lam = space, objective, lam
        self.curvature = 1.0 + lam * space.specific_var
        self.pull = objective.target + lam * space.specific_var * space.benchmark

    def solve(self, z: np.ndarray, budget_price: float) -> _Point:
        """The dual solved from ``z`` (0 at ``lam = 0``) and ``budget_price``, to ``DUAL_TOL``."""
        space = self.space
        w, free = np.empty(len(self.pull)), np.empty(len(self.pull), dtype=np.bool_)
        securities = (self.curvature, self.objective.kinks, self.objective.prices)
        if self.lam == 0:  # only the budget is priced
            nu, gap, _ = _budget_price(
                self.pull, *securities, space.lower, space.upper, budget_price, w, free
            )
            residual = abs(gap)
        else:
            problem = (
                self.pull,
                *securities,
                space.lower,
                space.upper,
                space.loadings_t,
                space.benchmark_exposure,
            )
            z, nu, residual = _solve_dual(problem, 1.0 / self.lam, z, budget_price, w, free)
        if not residual <= DUAL_TOL:  # NaN included
            raise NotCertified(f"dual at multiplier {self.lam:.3g} not solved")
        return _Point(z, nu, w, free)

    def variance_slope(self, point: _Point) -> float:
        """``d TE^2 / d lam`` at a solved ``point``, its free set held (implicit function)."""
        space = self.space
        slope = space.risk_slope(point.w)
        if self.lam == 0:  # z = lam G a: at 0 the prices move by Sigma a
            return -2.0 * slope @ self._keep_budget(point, slope)
        # differentiate G w(z, lam) - G b - z / lam = 0 in lam
        drift = -space.specific_var * (point.w - space.benchmark)
        rhs = self._keep_budget(point, drift) @ space.loadings_t + point.z / self.lam**2
        dz = self._newton_step(point, rhs)
        return 2.0 * slope @ self._keep_budget(point, drift - space.loadings_t @ dz)

    def _keep_budget(self, point: _Point, shift: np.ndarray) -> np.ndarray:
        """How the weights move when the pulls move by ``shift`` and the budget price keeps
        ``sum(w)``: ``P shift``, ``P = C - c c' / sum(c)``, ``c`` the free securities' ``1/curvature``."""
        gain = point.free / self.curvature
        total = gain.sum()
        moved = gain * shift
        return moved - gain * (moved.sum() / total) if total > 0 else moved

    def _newton_step(self, point: _Point, rhs: np.ndarray) -> np.ndarray:
        gain = point.free / self.curvature
        return _newton_solve(self.space.loadings_t, gain, 1.0 / self.lam, rhs)


class FastProjection:
    """One call's projection data; ``project`` and ``min_te`` answer like the reference problems.

    Args:
        proposed, benchmark, current, lower, upper: weights and bounds over the n securities.
        loadings: ``G`` (k x n) with ``G'G`` the factor part of the covariance.
        specific_var: ``d``, the specific variances.
        gain_cost: price of a sale below ``min(proposed, current)``.
        sell_cost: price of a sale below ``current`` (twice the trading cost: with ``sum(w) = 1``
            the sells are half of ``||w - current||_1`` up to a constant).
    """

    def __init__(
        self,
        proposed: np.ndarray,
        benchmark: np.ndarray,
        current: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        loadings: np.ndarray,
        specific_var: np.ndarray,
        gain_cost: np.ndarray,
        sell_cost: float,
    ) -> None:
        self.benchmark, self.lower, self.upper = benchmark, lower, upper
        self.loadings_t, self.specific_var = np.ascontiguousarray(loadings.T), specific_var
        self.benchmark_exposure = benchmark @ self.loadings_t
        self.objective = _Objective(
            proposed,
            np.vstack([np.minimum(proposed, current), current]),
            np.vstack([gain_cost, np.full(len(current), sell_cost)]),
        )
        self._last: _Point | None = None
        self.multiplier = 0.0

    def tracking_variance(self, w: np.ndarray) -> float:
        active = w - self.benchmark
        exposure = active @ self.loadings_t
        return float(exposure @ exposure + self.specific_var @ active**2)

    def risk_slope(self, w: np.ndarray) -> np.ndarray:
        """``Sigma (w - b)``, half the gradient of ``TE^2``."""
        active = w - self.benchmark
        return self.loadings_t @ (active @ self.loadings_t) + self.specific_var * active

    def variance_floor(self, w: np.ndarray) -> float:
        """Frank-Wolfe lower bound on ``min_H TE^2``, valid for any ``w`` (TE^2 is convex)."""
        slope = self.risk_slope(w)
        return self.tracking_variance(w) + 2.0 * (
            _cheapest(slope, self.lower, self.upper) - slope @ w
        )

    @_certified
    def project(self, limit: float, hint: float | None = None) -> np.ndarray | None:
        """Nearest admissible weights at ``limit``; ``None`` when the limit is unreachable.

        Newton on ``1/TE(lam) - 1/limit`` (nearly linear in ``lam``), kept inside the bracket
        of multipliers known to give TE above and below the limit, its first step to ``hint``
        when given (a related problem's multiplier). Sets ``multiplier`` to the answer's.
        """
        lam, below, above = 0.0, 0.0, np.inf
        problem = _PricedProblem(self, self.objective, lam)
        point = problem.solve(np.zeros(self.loadings_t.shape[1]), 0.0)
        te = np.sqrt(self.tracking_variance(point.w))
        self.multiplier = lam
        if te <= limit * (1 + TE_TOL):
            return point.w
        slope = self.risk_slope(point.w)
        start = (te / limit - 1.0) * te**2 / (slope @ slope)  # exact for Sigma = s^2 I, no bounds
        for _ in range(MAX_MULTIPLIERS):
            if hint is None:
                rate = -problem.variance_slope(point) / (2 * te**3)  # d(1/TE)/dlam
                guess = lam - (1 / te - 1 / limit) / rate if rate > 0 else np.nan
            else:
                guess, hint = hint, None
            if te > limit:
                below, self._last = lam, point
                # only a multiplier that must grow fast may be chasing an unreachable limit
                if not guess < MIN_GROWTH * lam and self.variance_floor(point.w) > limit**2:
                    return None
            else:
                above = lam
            lam = _safeguarded(guess, below, above, start)
            problem = _PricedProblem(self, self.objective, lam)
            point = self._warm_solve(problem, point)
            te = np.sqrt(self.tracking_variance(point.w))
            if abs(te - limit) <= TE_TOL * limit:
                self.multiplier = lam
                return point.w
        raise NotCertified(f"no multiplier within {TE_TOL:g} of the TE limit {limit:.4%}")

    @_certified
    def min_te(self) -> np.ndarray:
        """Weights of certified minimum TE: proximal steps from the last point ``project`` saw."""
        point = self._last or _PricedProblem(self, self.objective, 0.0).solve(
            np.zeros(self.loadings_t.shape[1]), 0.0
        )
        mean_variance = (self.loadings_t**2).sum() / len(point.w) + self.specific_var.mean()
        stiffness = PROXIMAL_STIFFNESS / mean_variance
        no_hinges = np.empty((0, len(point.w)))
        for _ in range(MAX_PROXIMAL):
            te2 = self.tracking_variance(point.w)
            if te2 - self.variance_floor(point.w) <= GAP_TOL * te2:
                return point.w
            anchor = _Objective(point.w, no_hinges, no_hinges)
            point = self._warm_solve(_PricedProblem(self, anchor, stiffness), point)
        raise NotCertified(f"minimum TE not certified in {MAX_PROXIMAL} proximal steps")

    def _warm_solve(self, problem: _PricedProblem, point: _Point) -> _Point:
        """Solve from ``point``: ``z = lam G a`` holds at every solution."""
        z = problem.lam * ((point.w - self.benchmark) @ self.loadings_t)
        return problem.solve(z, point.budget_price)


def _safeguarded(guess: float, below: float, above: float, start: float) -> float:
    """``guess`` if inside the bracket (growth capped while it has no top); else its (geometric)
    midpoint, or growth from ``below`` or, while no multiplier is known too small, ``start``."""
    base = max(below, start)
    if not np.isfinite(above):
        return min(guess, MAX_GROWTH * base) if guess > below else MIN_GROWTH * base
    if below < guess < above:
        return guess
    return np.sqrt(below * above) if below > 0 else 0.5 * above
