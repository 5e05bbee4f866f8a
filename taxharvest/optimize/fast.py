"""A specialised interior-point solver for the decision program (the fast path).

The same problem as :mod:`taxharvest.optimize.reference`, with TE as the convex quadratic
constraint ``a' Sigma a <= te_cap^2`` (``a = w - benchmark``). Mehrotra's predictor-corrector
on the primal-dual system; each Newton matrix is

    N = D + 2 lambda M' diag(d) M + U U'

with ``D`` the bound barriers (diagonal), ``M`` the map from trades to post-trade weights (one
``+-1`` per variable: the variables of a security form one block, diagonal plus rank one) and
``U`` of rank ``k + 1 + rows``: the factor part of ``Sigma``, the TE constraint's gradient and
the few dense rows (carry epigraphs, cash band, gain budget, turnover). Sherman-Morrison per
security and one Woodbury capacitance of that rank solve it in ``O(n rows + m k^2)``, where a
generic solver factors a sparse system with dense rows. Variables are scaled to their natural
size (a lot's sale as a share of the lot), rows to unit coefficients, the objective to a unit
gradient.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from taxharvest.optimize.problem import Problem
from taxharvest.optimize.reference import Attempt

#: Specific variance floor (annualized): keeps each security's block strictly convex.
SPECIFIC_FLOOR = 1e-10
MAX_ITERATIONS = 80
TOLERANCE = 1e-8
#: The best iterate is accepted when its scaled residuals and gap are within this.
ACCEPTABLE = 1e-6
#: Iterative refinement steps of each Newton solve, at most, while its relative residual is
#: above REFINE_BELOW.
REFINEMENTS = 3
REFINE_BELOW = 1e-10
#: Share of the low-rank part's diagonal added to the barrier diagonal in the factorization.
REGULARIZATION = 1e-8


@nb.njit(cache=True)
def _name_sums(values, coef, name, m):
    """Per security ``sum_v coef_v values_v`` over its variables."""
    out = np.zeros(m)
    for v in range(len(values)):
        if name[v] >= 0:
            out[name[v]] += coef[v] * values[v]
    return out


@nb.njit(cache=True)
def _b_inverse(p, inv_d, coef, name, alpha, zeta, m):
    """``B^-1 p`` with ``B = D + M' diag(alpha) M``, one Sherman-Morrison per security."""
    scaled = inv_d * p
    sums = _name_sums(scaled, coef, name, m)
    out = scaled.copy()
    for v in range(len(p)):
        i = name[v]
        if i >= 0:
            out[v] -= inv_d[v] * coef[v] * alpha[i] * sums[i] / zeta[i]
    return out


@nb.njit(cache=True)
def _risk(a, loadings, specific):
    """``Sigma a`` and ``a' Sigma a``."""
    exposure = loadings @ a
    sigma_a = loadings.T @ exposure + specific * a
    return sigma_a, exposure @ exposure + a @ (specific * a)


@nb.njit(cache=True)
def _cholesky_solve(chol, u):
    """``(L L')^-1 u`` for a lower-triangular ``L`` by two substitutions."""
    size = len(u)
    y = u.copy()
    for i in range(size):
        for j in range(i):
            y[i] -= chol[i, j] * y[j]
        y[i] /= chol[i, i]
    for i in range(size - 1, -1, -1):
        for j in range(i + 1, size):
            y[i] -= chol[j, i] * y[j]
        y[i] /= chol[i, i]
    return y


@nb.njit(cache=True)
def _woodbury(rhs, inv_d, coef, name, alpha, zeta, psi, psi_weight, rows, row_weight, chol, m):
    """``N^-1 rhs`` through ``B^-1`` and the capacitance factor ``chol``."""
    g = _b_inverse(rhs, inv_d, coef, name, alpha, zeta, m)
    per_name = _name_sums(inv_d * rhs, coef, name, m) / zeta
    n_psi = psi.shape[1]
    root_psi, root_rows = np.sqrt(psi_weight), np.sqrt(row_weight)
    u = np.concatenate((root_psi * (psi.T @ per_name), root_rows * (rows @ g)))
    coefficient = _cholesky_solve(chol, u)
    combined = psi @ (root_psi * coefficient[:n_psi])
    p = rows.T @ (root_rows * coefficient[n_psi:])
    for v in range(len(rhs)):
        if name[v] >= 0:
            p[v] += coef[v] * combined[name[v]]
    return g - _b_inverse(p, inv_d, coef, name, alpha, zeta, m)


@nb.njit(cache=True)
def _newton_apply(p, d_diag, coef, name, alpha, psi, psi_weight, rows, row_weight, m):
    """``N p``, for iterative refinement."""
    weights = _name_sums(p, coef, name, m)
    per_name = alpha * weights + psi @ (psi_weight * (psi.T @ weights))
    out = d_diag * p + rows.T @ (row_weight * (rows @ p))
    for v in range(len(p)):
        if name[v] >= 0:
            out[v] += coef[v] * per_name[name[v]]
    return out


@nb.njit(cache=True)
def _low_rank_diagonal(coef, name, alpha, psi, psi_weight, rows, row_weight):
    """The diagonal of ``N - D``."""
    per_name = alpha + (psi * psi) @ psi_weight
    out = (rows * rows).T @ row_weight
    for v in range(len(coef)):
        if name[v] >= 0:
            out[v] += coef[v] * coef[v] * per_name[name[v]]
    return out


@nb.njit(cache=True)
def _newton_solve(rhs, d_diag, inv_d, coef, name, alpha, zeta, psi, psi_weight, rows,
                  row_weight, chol, m):
    """Solve ``N dx = rhs``: Woodbury, then iterative refinement while it helps."""
    dx = _woodbury(rhs, inv_d, coef, name, alpha, zeta, psi, psi_weight, rows, row_weight,
                   chol, m)
    error = rhs - _newton_apply(dx, d_diag, coef, name, alpha, psi, psi_weight, rows,
                                row_weight, m)
    size = np.abs(error).max()
    for _ in range(REFINEMENTS):
        if size <= REFINE_BELOW * (1.0 + np.abs(rhs).max()):
            break
        candidate = dx + _woodbury(error, inv_d, coef, name, alpha, zeta, psi, psi_weight, rows,
                                   row_weight, chol, m)
        candidate_error = rhs - _newton_apply(candidate, d_diag, coef, name, alpha, psi,
                                              psi_weight, rows, row_weight, m)
        candidate_size = np.abs(candidate_error).max()
        if candidate_size >= size:
            break
        dx, error, size = candidate, candidate_error, candidate_size
    return dx


@nb.njit(cache=True)
def _capacitance(inv_d, coef, name, alpha, zeta, psi, psi_weight, rows, row_weight, m):
    """Lower Cholesky factor of ``I + U' B^-1 U``, ``U = [M' psi sqrt(psi_weight), rows'
    sqrt(row_weight)]``; ``M B^-1 M' = diag(beta)`` and ``M B^-1 p`` are per-security sums."""
    beta = _name_sums(inv_d * coef, coef, name, m) / zeta
    n_psi, n_rows = psi.shape[1], rows.shape[0]
    b_rows = np.empty_like(rows)
    per_name = np.empty((n_rows, m))
    for r in range(n_rows):
        b_rows[r] = _b_inverse(rows[r], inv_d, coef, name, alpha, zeta, m)
        per_name[r] = _name_sums(inv_d * rows[r], coef, name, m) / zeta
    root = np.concatenate((np.sqrt(psi_weight), np.sqrt(row_weight)))
    inner = np.empty((n_psi + n_rows, n_psi + n_rows))
    inner[:n_psi, :n_psi] = psi.T @ (psi * beta.reshape(-1, 1))
    cross = psi.T @ per_name.T
    inner[:n_psi, n_psi:] = cross
    inner[n_psi:, :n_psi] = cross.T
    inner[n_psi:, n_psi:] = rows @ b_rows.T
    return np.linalg.cholesky(np.eye(n_psi + n_rows) + inner * np.outer(root, root))


@nb.njit(cache=True)
def _step_to_boundary(values, deltas):
    """Largest step in ``(0, 1]`` keeping ``values + step * deltas`` non-negative."""
    step = 1.0
    for i in range(len(values)):
        if deltas[i] < 0:
            step = min(step, -values[i] / deltas[i])
    return step


@nb.njit(cache=True)
def _interior_point(c, coef, name, upper, rows, bound, a0, loadings, specific, kappa,
                    quad_scale, max_iterations, tolerance):
    """Minimize ``c'x + kappa q(x)`` s.t. ``0 <= x <= upper``, ``rows x <= bound`` and, when
    ``quad_scale > 0``, ``quad_scale * q(x) <= 1``; ``q = a' Sigma a``, ``a = a0 + M x``.

    Every inequality is a pair (primal ``P_j(x) >= 0``, dual ``dual_j >= 0``), in the order
    lower bounds, finite upper bounds, rows (with slacks), the quadratic (with a slack).
    Returns ``(x, converged, iterations)``.
    """
    n, m, n_rows, k = len(c), len(a0), len(bound), loadings.shape[0]
    has_quad = quad_scale > 0
    capped = np.flatnonzero(np.isfinite(upper))
    n_up = len(capped)
    n_pairs = n + n_up + n_rows + (1 if has_quad else 0)
    x = np.ones(n)
    x[capped] = 0.1 * upper[capped]
    slack = np.maximum(bound - rows @ x, 1.0)
    omega = 1.0
    dual = np.ones(n_pairs)
    residual = np.zeros(n_pairs)  # what a pair's slack misses of its constraint
    psi = np.empty((m, k + 1))  # security-level columns of U: the factors, the TE gradient
    psi[:, :k] = loadings.T
    scale_c = 1.0 + np.abs(c).max()
    scale_b = 1.0 + (np.abs(bound).max() if n_rows else 0.0)
    best_x, best_error = x.copy(), np.inf
    for iteration in range(max_iterations):
        z, zu = dual[:n], dual[n:n + n_up]
        y = dual[n + n_up:n + n_up + n_rows]
        mu = dual[n_pairs - 1] if has_quad else 0.0
        a = a0 + _name_sums(x, coef, name, m)
        sigma_a, q = _risk(a, loadings, specific)
        grad_q = np.zeros(n)
        for v in range(n):
            if name[v] >= 0:
                grad_q[v] = 2.0 * coef[v] * sigma_a[name[v]]
        grad_qs = quad_scale * grad_q
        primal = np.empty(n_pairs)
        primal[:n] = x
        primal[n:n + n_up] = upper[capped] - x[capped]
        primal[n + n_up:n + n_up + n_rows] = slack
        residual[n + n_up:n + n_up + n_rows] = rows @ x + slack - bound
        if has_quad:
            if quad_scale * q < 1.0:  # feasible: the slack is what the constraint leaves
                omega = 1.0 - quad_scale * q
            primal[n_pairs - 1] = omega
            residual[n_pairs - 1] = quad_scale * q + omega - 1.0
        residual_d = c + kappa * grad_q + mu * grad_qs - z + rows.T @ y
        residual_d[capped] += zu
        mu_bar = primal @ dual / n_pairs
        error = max(np.abs(residual_d).max() / scale_c,
                    np.abs(residual[n + n_up:]).max() / scale_b, mu_bar)
        if error < best_error:
            best_x, best_error = x.copy(), error
        if error <= tolerance:
            return x, True, iteration + 1
        if error > 1e3 * best_error:  # accuracy lost (or no interior): the best iterate stands
            break

        lam = kappa + mu * quad_scale
        d_diag = z / x
        d_diag[capped] += zu / primal[n:n + n_up]
        alpha = 2.0 * lam * specific
        psi[:, k] = 2.0 * quad_scale * sigma_a
        psi_weight = np.full(k + 1, 2.0 * lam)
        psi_weight[k] = mu / omega if has_quad else 0.0
        row_weight = y / slack
        # the factorization sees D plus a share of N's own diagonal: no direction of D is so
        # small against the low-rank part that Woodbury cancels; refinement solves with N
        inv_d = 1.0 / (d_diag + REGULARIZATION * _low_rank_diagonal(
            coef, name, alpha, psi, psi_weight, rows, row_weight))
        zeta = 1.0 + alpha * _name_sums(inv_d * coef, coef, name, m)
        chol = _capacitance(inv_d, coef, name, alpha, zeta, psi, psi_weight, rows, row_weight, m)

        target = -primal * dual
        d_primal = np.zeros(n_pairs)
        d_dual = np.zeros(n_pairs)
        dx = np.zeros(n)
        for corrector in range(2):
            if corrector == 1:
                step = min(_step_to_boundary(primal, d_primal), _step_to_boundary(dual, d_dual))
                mu_aff = (primal + step * d_primal) @ (dual + step * d_dual) / n_pairs
                target = (mu_aff / mu_bar) ** 3 * mu_bar - primal * dual - d_primal * d_dual
            weight = (target + dual * residual) / primal
            rhs = -residual_d + weight[:n] - rows.T @ weight[n + n_up:n + n_up + n_rows]
            rhs[capped] -= weight[n:n + n_up]
            if has_quad:
                rhs -= grad_qs * weight[n_pairs - 1]
            dx = _newton_solve(rhs, d_diag, inv_d, coef, name, alpha, zeta, psi, psi_weight,
                               rows, row_weight, chol, m)
            d_primal[:n] = dx
            d_primal[n:n + n_up] = -dx[capped]
            d_primal[n + n_up:n + n_up + n_rows] = -residual[n + n_up:n + n_up + n_rows] - rows @ dx
            if has_quad:
                d_primal[n_pairs - 1] = -residual[n_pairs - 1] - grad_qs @ dx
            d_dual = (target - dual * d_primal) / primal
        step = min(1.0, 0.99 * min(_step_to_boundary(primal, d_primal),
                                   _step_to_boundary(dual, d_dual)))
        x = x + step * dx
        slack = slack + step * d_primal[n + n_up:n + n_up + n_rows]
        if has_quad:
            omega += step * d_primal[n_pairs - 1]
        dual = dual + step * d_dual
    return best_x, best_error <= ACCEPTABLE, iteration + 1


class FastSolver:
    """Solves a :class:`Problem` (or its minimum-TE twin) with :func:`_interior_point`.

    Free variables: the sale of each lot that may be sold but is not forced (as a share of the
    lot), the buy of each buyable security (in units of its benchmark or held weight, at least
    ``1/m``) and, for the decision, the two carry epigraphs; forced sales (exclusions) are
    constants. When the decision does not converge, the minimum-TE twin tells an infeasible TE
    cap from a failure.
    """

    def __init__(self, max_iterations: int = MAX_ITERATIONS, tolerance: float = TOLERANCE) -> None:
        self.max_iterations = max_iterations
        self.tolerance = tolerance

    def solve(self, problem: Problem, *, min_te: bool = False) -> Attempt:
        sells, buys = self._run(problem, min_te)
        if sells is not None:
            return Attempt(sells, buys, False, "", "fast")
        if not min_te:
            floor_sells, floor_buys = self._run(problem, True)
            if floor_sells is not None:
                floor = problem.tracking_error(problem.weights(floor_sells, floor_buys))
                if floor >= problem.te_cap:
                    return Attempt(None, None, True, f"fast: minimum TE {floor:.4%} above the cap", None)
        return Attempt(None, None, False, "fast: did not converge", None)

    def _run(self, problem: Problem, min_te: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Trades in weight units, or ``(None, None)`` when the interior point did not converge."""
        m = problem.shape[0]
        free = problem.sell_upper > problem.sell_lower
        lot_size = problem.sell_upper[free]
        buyable = np.flatnonzero(problem.buy_upper > 0)
        buy_size = np.maximum(np.maximum(problem.benchmark, problem.held), 1.0 / m)[buyable]
        carry = 0 if min_te else 2
        n_lots, n_buys = len(lot_size), len(buyable)
        forced = problem.sell_lower
        rows = _Rows(lot_size, buy_size, carry)
        if not min_te:
            for c, coefficient in enumerate((problem.coefficient_short, problem.coefficient_long)):
                rows.add(-coefficient[free], 0.0, -np.eye(2)[c],
                         problem.capacity[c] + (coefficient * forced).sum())
        kept = problem.held.sum() - forced.sum()
        rows.add(-1.0, 1.0, 0.0, 1.0 - kept)
        rows.add(1.0, -1.0, 0.0, kept - (1.0 - problem.cash_band))
        if problem.gain_budget is not None:
            rows.add(problem.realized[free], 0.0, 0.0,
                     problem.gain_budget - (problem.realized * forced).sum())
        if problem.turnover is not None:
            rows.add(1.0, 1.0, 0.0, problem.turnover - forced.sum())

        name = np.concatenate([np.nonzero(free)[0], buyable, np.full(carry, -1)]).astype(np.int64)
        coef = np.concatenate([-lot_size, buy_size, np.zeros(carry)])
        upper = np.concatenate([np.ones(n_lots), np.full(n_buys + carry, np.inf)])
        cost = np.zeros(len(name)) if min_te else np.concatenate([
            (problem.lot_tax[free] + problem.trade_cost) * lot_size,
            problem.trade_cost * buy_size,
            problem.excess,
        ])
        a0 = problem.held - forced.sum(axis=1) - problem.benchmark
        specific = np.maximum(problem.specific_sd**2, SPECIFIC_FLOOR)
        kappa = 1.0 if min_te else problem.risk_price
        sigma_a0 = problem.loadings.T @ (problem.loadings @ a0) + specific * a0
        scale = max(np.abs(cost).max(initial=0.0),
                    2 * kappa * np.abs(sigma_a0).max() * np.abs(coef).max(initial=0.0), 1e-12)
        x, converged, _ = _interior_point(
            cost / scale, coef, name, upper, *rows.arrays(), a0,
            np.ascontiguousarray(problem.loadings), specific, kappa / scale,
            0.0 if min_te else 1.0 / problem.te_cap**2, self.max_iterations, self.tolerance,
        )
        if not converged:
            return None, None
        sells = forced.copy()
        sells[free] += np.clip(x[:n_lots], 0.0, 1.0) * lot_size
        buys = np.zeros(m)
        buys[buyable] = np.clip(x[n_lots:n_lots + n_buys], 0.0, None) * buy_size
        return sells, buys


class _Rows:
    """Dense rows ``row x <= bound`` over (lots, buys, carries), each scaled to a unit maximum."""

    def __init__(self, lot_size: np.ndarray, buy_size: np.ndarray, carry: int) -> None:
        self.sizes = (lot_size, buy_size, np.ones(carry))
        self.rows: list[np.ndarray] = []
        self.bounds: list[float] = []

    def add(self, lots, buys, carries, bound: float) -> None:
        """Coefficients per unit weight (scalars broadcast) for lots, buys and carries."""
        row = np.concatenate([np.broadcast_to(coefficient, size.shape) * size
                              for coefficient, size in zip((lots, buys, carries), self.sizes, strict=True)])
        scale = max(np.abs(row).max(initial=0.0), 1e-12)
        self.rows.append(row / scale)
        self.bounds.append(bound / scale)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.rows), np.array(self.bounds)
