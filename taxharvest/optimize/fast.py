"""A specialised interior-point solver for the decision program (the fast path).

The same problem as :mod:`taxharvest.optimize.reference`, with TE as the convex quadratic
constraint ``a' Sigma a <= te_cap^2`` (``a = w - benchmark``). Mehrotra's predictor-corrector
on the primal-dual system; each Newton matrix is

    N = D + M' (diag(alpha) + Psi W Psi') M + E' V E

with ``D`` the bound barriers (diagonal), ``M`` the map from trades to post-trade weights (one
coefficient per variable; the variables of a security are contiguous), ``alpha`` the specific
risk, ``Psi`` the security-level columns (the factor loadings, the TE constraint's gradient,
the cash-band rows) and ``E`` the few other dense rows (carry epigraphs, gain budget,
turnover). ``D + M' diag(alpha) M`` is one diagonal-plus-rank-one block per security
(Sherman-Morrison); one Woodbury capacitance of rank ``k + 3 + rows`` does the rest, in
``O(n rows + m k^2)`` per iteration, where a generic solver factors a sparse system with dense
rows. Variables are scaled to their natural size (a lot's sale as a share of the lot), rows to
unit coefficients, the objective to a unit gradient.

Speed: no BLAS or LAPACK call inside the interior point (at these sizes OpenBLAS's threads
cost far more than they save: 100x per iteration on a busy 2-core machine); sums that may be
reordered are SIMD reductions, divisions are branch-free loops. An unreachable TE cap is certified inside the interior point by a dual bound on the TE over
the feasible set (:func:`_quadratic_floor`), not by solving the minimum-TE twin. A solver
remembers its last few solves: a decision's fallbacks may pose the same program twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from taxharvest.optimize.problem import Duals, Problem
from taxharvest.optimize.reference import Attempt

#: Compiled once to the cache; numpy's error model: a division by zero gives inf or nan (the
#: iteration then stops on its measure) instead of raising, and no checks slow the loops.
_jit = nb.njit(cache=True, error_model="numpy")
#: The same for sums whose order may change (SIMD reductions; NaN and inf still propagate).
_jit_sum = nb.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})

#: Specific variance floor (annualized): keeps each security's block strictly convex.
SPECIFIC_FLOOR = 1e-10
MAX_ITERATIONS = 80
#: Converged: scaled dual residual and mean complementarity within TOLERANCE, scaled primal
#: residuals within 10 x TOLERANCE.
TOLERANCE = 1e-8
#: Otherwise the best iterate is accepted when its measure is within this.
ACCEPTABLE = 1e-6
#: Iterations without a better iterate, from an acceptable one, before it is taken.
STALLED = 5
#: Iterative refinement of the corrector's Newton solve once the mean complementarity is below
#: REFINE_FROM: at most REFINEMENTS steps, while its relative residual is above REFINE_BELOW.
REFINE_FROM = 1e-6
REFINEMENTS = 3
REFINE_BELOW = 1e-8
#: Share of the low-rank part's diagonal added to the barrier diagonal in the factorization.
REGULARIZATION = 1e-10
#: A cold start's complementarity on the pairs whose bounds are far (large buy, carry and row
#: bounds): duals of that size against the distance, not 1.
COLD_PAIR = 0.1
#: A TE cap is out of reach when a dual bound on ``quad_scale q`` exceeds 1 by this.
FLOOR_MARGIN = 1e-7
#: Solves remembered by a :class:`FastSolver`: a decision's fallbacks pose the same program
#: more than once (both passes falling back to the same plain, harvest-free problem).
REMEMBERED = 4


@_jit_sum
def _inner(u, v):
    """``u @ v`` of two vectors."""
    total = 0.0
    for i in range(len(u)):
        total += u[i] * v[i]
    return total


@_jit_sum
def _dot(rows, x):
    """``rows @ x`` (loops: no BLAS call overhead, and no BLAS threads, which cost 100x on a
    busy machine at these sizes)."""
    out = np.zeros(rows.shape[0])
    for r in range(rows.shape[0]):
        total = 0.0
        for v in range(rows.shape[1]):
            total += rows[r, v] * x[v]
        out[r] = total
    return out


@_jit
def _combine(weights, rows):
    """``weights @ rows`` for a few rows."""
    out = np.zeros(rows.shape[1])
    for r in range(rows.shape[0]):
        for v in range(rows.shape[1]):
            out[v] += weights[r] * rows[r, v]
    return out


@_jit_sum
def _gram(rows, weight):
    """The lower triangle of ``rows diag(weight) rows'``."""
    size, length = rows.shape
    weighted = np.empty((size, length))
    for a in range(size):
        for i in range(length):
            weighted[a, i] = weight[i] * rows[a, i]
    out = np.zeros((size, size))
    for a in range(size):
        for b in range(a + 1):
            out[a, b] = _inner(rows[a], weighted[b])
    return out


@_jit
def _to_securities(values, start, coef):
    """``M values``: per security, ``sum_v coef_v values_v`` over its segment."""
    m = len(start) - 1
    out = np.zeros(m)
    for i in range(m):
        total = 0.0
        for v in range(start[i], start[i + 1]):
            total += coef[v] * values[v]
        out[i] = total
    return out


@_jit
def _from_securities(per_security, start, coef, n):
    """``M' per_security``: ``coef_v per_security_i`` on security ``i``'s segment, 0 beyond."""
    out = np.zeros(n)
    for i in range(len(start) - 1):
        for v in range(start[i], start[i + 1]):
            out[v] = coef[v] * per_security[i]
    return out


@_jit
def _b_inverse(p, inv_d, weighted, start, shrink):
    """``B^-1 p`` with ``B = D + M' diag(alpha) M``, one Sherman-Morrison per security
    (``weighted = D^-1 coef``, ``shrink = alpha / zeta``), and ``M D^-1 p`` per security."""
    out = inv_d * p
    m = len(start) - 1
    sums = np.empty(m)
    for i in range(m):
        total = 0.0
        for v in range(start[i], start[i + 1]):
            total += weighted[v] * p[v]
        sums[i] = total
        factor = shrink[i] * total
        for v in range(start[i], start[i + 1]):
            out[v] -= weighted[v] * factor
    return out, sums


@_jit
def _risk(a, loadings, specific, offset, linear, constant):
    """Half the gradient and the value of ``q(a) = ||G a + offset||^2 + a' diag(specific) a +
    2 linear' a + constant`` (:class:`~taxharvest.optimize.problem.ProgramRisk`; its Hessian
    is ``2 Sigma``)."""
    exposure = _dot(loadings, a) + offset
    sigma_a = _combine(exposure, loadings)
    value = _inner(exposure, exposure) + constant
    for i in range(len(a)):
        sigma_a[i] += specific[i] * a[i] + linear[i]
        value += a[i] * (specific[i] * a[i] + 2.0 * linear[i])
    return sigma_a, value


@_jit
def _cholesky(matrix):
    """Lower Cholesky factor of a small symmetric positive definite ``matrix`` (its lower
    triangle read)."""
    size = matrix.shape[0]
    chol = np.zeros((size, size))
    for j in range(size):
        total = matrix[j, j]
        for p in range(j):
            total -= chol[j, p] * chol[j, p]
        root = np.sqrt(total)
        chol[j, j] = root
        for i in range(j + 1, size):
            total = matrix[i, j]
            for p in range(j):
                total -= chol[i, p] * chol[j, p]
            chol[i, j] = total / root
    return chol


@_jit
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


@_jit
def _capacitance(inv_d, weighted, start, shrink, zeta, beta, psi, psi_weight, rows, row_weight):
    """Lower Cholesky factor of ``I + U' B^-1 U``, ``U = [M' Psi sqrt(W), E' sqrt(V)]``, and
    ``B^-1 E'`` (as rows);
    ``M B^-1 M' = diag(beta)`` and ``M B^-1 p = M D^-1 p / zeta``. ``psi`` is ``Psi'`` (one
    row per column of ``Psi``)."""
    n_psi, n_rows = psi.shape[0], rows.shape[0]
    b_rows = np.empty_like(rows)
    per_security = np.empty((n_rows, len(zeta)))
    for r in range(n_rows):
        b_rows[r], sums = _b_inverse(rows[r], inv_d, weighted, start, shrink)
        per_security[r] = sums / zeta
    size = n_psi + n_rows
    inner = np.zeros((size, size))  # its lower triangle
    inner[:n_psi, :n_psi] = _gram(psi, beta)
    for r in range(n_rows):  # (M B^-1 E')' Psi
        inner[n_psi + r, :n_psi] = _dot(psi, per_security[r])
    for r in range(n_rows):
        for q in range(r + 1):
            inner[n_psi + r, n_psi + q] = _inner(rows[r], b_rows[q])
    root = np.sqrt(np.concatenate((psi_weight, row_weight)))
    for a in range(size):
        for b in range(a + 1):
            inner[a, b] *= root[a] * root[b]
        inner[a, a] += 1.0
    return _cholesky(inner), b_rows


@_jit
def _woodbury(rhs, inv_d, weighted, start, shrink, zeta, psi, psi_weight, b_rows, row_weight,
              chol):
    """``N^-1 rhs = B^-1 rhs - B^-1 U C^-1 U' B^-1 rhs`` through the capacitance factor
    ``chol`` in two passes over the variables: ``B^-1 E'`` is ``b_rows``, and ``B^-1 M' c``
    is ``D^-1 coef c / zeta`` on each security's variables."""
    n, m, n_rows, n_psi = len(rhs), len(zeta), b_rows.shape[0], psi.shape[0]
    sums, by_rows = np.empty(m), np.zeros(n_rows)  # M D^-1 rhs, E B^-1 rhs
    for i in range(m):
        total = 0.0
        for v in range(start[i], start[i + 1]):
            total += weighted[v] * rhs[v]
        sums[i] = total
    for r in range(n_rows):
        by_rows[r] = _inner(b_rows[r], rhs)
    root_psi, root_rows = np.sqrt(psi_weight), np.sqrt(row_weight)
    u = np.concatenate((root_psi * _dot(psi, sums / zeta), root_rows * by_rows))
    coefficient = _cholesky_solve(chol, u)
    row_part = root_rows * coefficient[n_psi:]
    # per security: B^-1 rhs's Sherman-Morrison term and B^-1 M' Psi (root_psi coefficient)
    per_security = shrink * sums + _combine(root_psi * coefficient[:n_psi], psi) / zeta
    out = np.empty(n)
    for i in range(m):
        factor = per_security[i]
        for v in range(start[i], start[i + 1]):
            out[v] = inv_d[v] * rhs[v] - weighted[v] * factor
    for v in range(start[m], n):
        out[v] = inv_d[v] * rhs[v]
    for r in range(n_rows):
        part = row_part[r]
        for v in range(n):
            out[v] -= part * b_rows[r, v]
    return out


@_jit
def _apply(p, d_diag, start, coef, alpha, psi, psi_weight, rows, row_weight):
    """``N p``."""
    moved = _to_securities(p, start, coef)
    per_security = alpha * moved + _combine(psi_weight * _dot(psi, moved), psi)
    out = d_diag * p + _combine(row_weight * _dot(rows, p), rows)
    for i in range(len(moved)):
        for v in range(start[i], start[i + 1]):
            out[v] += coef[v] * per_security[i]
    return out


@_jit
def _factor_terms(d_diag, start, coef, alpha, psi, psi_weight, rows, row_weight):
    """``D^-1`` of the factorization (``D`` plus REGULARIZATION times the diagonal of ``N -
    D``), ``D^-1 coef`` and ``M D^-1 coef`` per security."""
    n, m, n_rows = len(d_diag), len(alpha), rows.shape[0]
    per_security = alpha.copy()
    for a in range(psi.shape[0]):
        for i in range(m):
            per_security[i] += psi[a, i] * psi[a, i] * psi_weight[a]
    low, inv_d, weighted, sigma = np.zeros(n), np.empty(n), np.empty(n), np.empty(m)
    for r in range(n_rows):
        weight = row_weight[r]
        for v in range(n):
            low[v] += weight * rows[r, v] * rows[r, v]
    for i in range(m):
        share = per_security[i]
        for v in range(start[i], start[i + 1]):
            low[v] += coef[v] * coef[v] * share
    for v in range(n):  # branch-free: SIMD divisions
        inv_d[v] = 1.0 / (d_diag[v] + REGULARIZATION * low[v])
        weighted[v] = inv_d[v] * coef[v]
    for i in range(m):
        total = 0.0
        for v in range(start[i], start[i + 1]):
            total += weighted[v] * coef[v]
        sigma[i] = total
    return inv_d, weighted, sigma


@_jit
def _newton_solve(rhs, d_diag, inv_d, weighted, start, coef, alpha, shrink, zeta, psi,
                  psi_weight, rows, row_weight, chol, b_rows, refine):
    """Solve ``N dx = rhs``: Woodbury, then (``refine``) iterative refinement while it helps."""
    factors = (inv_d, weighted, start, shrink, zeta, psi, psi_weight, b_rows, row_weight, chol)
    dx = _woodbury(rhs, *factors)
    if not refine:
        return dx
    error = rhs - _apply(dx, d_diag, start, coef, alpha, psi, psi_weight, rows, row_weight)
    size = np.abs(error).max()
    threshold = REFINE_BELOW * (1.0 + np.abs(rhs).max())
    for _ in range(REFINEMENTS):
        if size <= threshold:
            break
        candidate = dx + _woodbury(error, *factors)
        candidate_error = rhs - _apply(candidate, d_diag, start, coef, alpha, psi, psi_weight,
                                       rows, row_weight)
        candidate_size = np.abs(candidate_error).max()
        if candidate_size >= size:
            break
        dx, error, size = candidate, candidate_error, candidate_size
    return dx


@_jit
def _step_to_boundary(values, deltas, step):
    """Largest step up to ``step`` keeping ``values + step * deltas`` non-negative."""
    for i in range(len(values)):
        if deltas[i] < 0:
            step = min(step, -values[i] / deltas[i])
    return step


@_jit_sum
def _dual_terms(x, z, zu, upper, c, start, coef, per_security, rows, row_y):
    """``upper - x``, the dual residual ``c + M' per_security + rows' row_y - z + zu``, the
    barrier diagonal ``z / x + zu / (upper - x)``, the bound pairs' complementarity and
    ``1 / x``, ``1 / (upper - x)`` (the loops branch-free: SIMD divisions)."""
    n = len(x)
    gap, residual, d_diag = np.empty(n), np.empty(n), np.empty(n)
    inv_x, inv_gap = np.empty(n), np.empty(n)
    complementarity = 0.0
    for v in range(n):
        gap[v] = upper[v] - x[v]
        inv_x[v], inv_gap[v] = 1.0 / x[v], 1.0 / gap[v]
        residual[v] = c[v] - z[v] + zu[v]
        d_diag[v] = z[v] * inv_x[v] + zu[v] * inv_gap[v]
        complementarity += x[v] * z[v] + gap[v] * zu[v]
    for r in range(rows.shape[0]):
        weight = row_y[r]
        for v in range(n):
            residual[v] += weight * rows[r, v]
    for i in range(len(start) - 1):
        for v in range(start[i], start[i + 1]):
            residual[v] += coef[v] * per_security[i]
    return gap, residual, d_diag, complementarity, inv_x, inv_gap


@_jit
def _bound_rhs(x, gap, z, zu, inv_x, inv_gap, dx, dz, dzu, centre, corrector, residual_d, rows,
               row_weight, start, coef, per_security):
    """The bound pairs' complementarity targets (affine, or corrected with the affine
    directions) and the Newton rhs: ``-residual_d - rows' row_weight + M' per_security``
    plus their part."""
    n = len(x)
    target_lo, target_up, rhs = np.empty(n), np.empty(n), np.empty(n)
    shift = centre if corrector else 0.0
    for v in range(n):
        lo, up = shift - x[v] * z[v], shift - gap[v] * zu[v]
        if corrector:
            lo -= dx[v] * dz[v]
            up += dx[v] * dzu[v]
        target_lo[v], target_up[v] = lo, up
        rhs[v] = lo * inv_x[v] - up * inv_gap[v] - residual_d[v]
    for r in range(rows.shape[0]):
        weight = row_weight[r]
        for v in range(n):
            rhs[v] -= weight * rows[r, v]
    for i in range(len(start) - 1):
        for v in range(start[i], start[i + 1]):
            rhs[v] += coef[v] * per_security[i]
    return target_lo, target_up, rhs


@_jit
def _bound_directions(inv_x, inv_gap, z, zu, dx, target_lo, target_up):
    """``dz`` and ``dzu`` from ``dx``."""
    n = len(dx)
    dz, dzu = np.empty(n), np.empty(n)
    for v in range(n):
        dz[v] = (target_lo[v] - z[v] * dx[v]) * inv_x[v]
        dzu[v] = (target_up[v] + zu[v] * dx[v]) * inv_gap[v]
    return dz, dzu


@_jit
def _bound_step(x, gap, z, zu, dx, dz, dzu, step):
    """Largest step up to ``step`` keeping the bound pairs positive: every pair's ratio
    first, branch-free (SIMD divisions; a direction away from its bound gives +inf), then
    their minimum."""
    n = len(x)
    ratio = np.empty(n)
    for v in range(n):
        to_x = (x[v] if dx[v] < 0 else gap[v]) / abs(dx[v])
        to_z = z[v] / (-dz[v] if dz[v] < 0 else 0.0)
        to_zu = zu[v] / (-dzu[v] if dzu[v] < 0 else 0.0)
        ratio[v] = min(to_x, min(to_z, to_zu))
    for v in range(n):
        if ratio[v] < step:
            step = ratio[v]
    return step


@_jit_sum
def _bound_complementarity(x, gap, z, zu, dx, dz, dzu, step):
    """The bound pairs' complementarity after ``step``."""
    total = 0.0
    for v in range(len(x)):
        total += ((x[v] + step * dx[v]) * (z[v] + step * dz[v])
                  + (gap[v] - step * dx[v]) * (zu[v] + step * dzu[v]))
    return total


@_jit
def _advance(step, *pairs):
    """``value += step * delta`` in place for each ``(value, delta)``."""
    for value, delta in pairs:
        for v in range(len(value)):
            value[v] += step * delta[v]


@_jit
def _quadratic_floor(x, moved, value, sigma_a, duals, quad_scale, start, coef, upper,
                     security_rows, rows, bound, free_rows):
    """A lower bound on ``quad_scale q`` over the feasible set (weak duality on its convex
    minorant at ``x``): for row duals ``duals >= 0`` (those of ``free_rows`` only, the rows
    that no variable beyond the securities' enters), every feasible ``x'`` has ``quad_scale
    q(x') >= value + g_q'(x' - x) + duals'(A x' - bound) >= value - g_q'x - duals'bound +
    sum_v upper_v min(0, (g_q + A'duals)_v)``, ``value = quad_scale q(x)``, ``g_q`` its
    gradient. Above 1, the TE cap is out of reach."""
    n_security_rows = security_rows.shape[0]
    gradient = 2.0 * quad_scale * sigma_a
    per_security = gradient.copy()
    total = value - _inner(gradient, moved)
    for r in range(n_security_rows):
        total -= duals[r] * bound[r]
        for i in range(len(per_security)):
            per_security[i] += duals[r] * security_rows[r, i]
    slope = _from_securities(per_security, start, coef, len(x))
    for r in range(rows.shape[0]):
        if free_rows[r]:
            dual = duals[n_security_rows + r]
            total -= dual * bound[n_security_rows + r]
            for v in range(len(x)):
                slope[v] += dual * rows[r, v]
    for v in range(len(x)):
        if slope[v] < 0:
            total += slope[v] * upper[v]
    return total


@_jit
def _interior_point(x, z, zu, slack, y, omega, mu, c, start, coef, upper, security_rows, rows,
                    bound, a0, loadings, specific, offset, linear, constant, kappa, quad_scale,
                    max_iterations, tolerance):
    """Minimize ``c'x + kappa q(x)`` s.t. ``0 <= x <= upper``, ``[security_rows M; rows] x <=
    bound`` and, when ``quad_scale > 0``, ``quad_scale q(x) <= 1``; ``q`` the program's
    squared TE (:func:`_risk`) with ``a = a0 + M x``. Variables ``start[i]:start[i + 1]``
    move security ``i``; those from ``start[m]`` on move none. Every bound is finite.

    Each inequality is a pair of a primal slack and a dual, both kept positive: ``(x, z)``,
    ``(upper - x, zu)``, ``(slack, y)`` for the rows and ``(omega, mu)`` for the quadratic;
    the start gives them all (``x`` strictly inside its bounds). Returns ``(x, converged,
    iterations, floor, y, mu, z, zu)`` (the duals of the rows, the quadratic and the bounds
    at ``x``), ``floor`` the best dual bound on ``quad_scale q`` over the feasible set
    (:func:`_quadratic_floor`; it stops as soon as one certifies the quadratic constraint
    infeasible, above ``1 + FLOOR_MARGIN``; ``-inf`` when none was computed).
    """
    n, k, n_security_rows = len(c), loadings.shape[0], security_rows.shape[0]
    has_quad = quad_scale > 0
    n_pairs = 2 * n + len(bound) + (1 if has_quad else 0)
    x, z, zu, slack, y = x.copy(), z.copy(), zu.copy(), slack.copy(), y.copy()
    if not has_quad:
        mu = 0.0

    def row_values(x, moved):
        return np.concatenate((_dot(security_rows, moved), _dot(rows, x)))

    # the security-level columns of Psi, as rows: TE gradient, security rows, factor loadings
    psi = np.empty((1 + n_security_rows + k, len(a0)))
    psi[1:1 + n_security_rows] = security_rows
    psi[1 + n_security_rows:] = loadings
    scale_c = 1.0 + np.abs(c).max()
    scale_b = 1.0 + (np.abs(bound).max() if len(bound) else 0.0)
    free_rows = np.ones(rows.shape[0], dtype=np.bool_)  # rows no carry variable enters
    for r in range(rows.shape[0]):
        for v in range(start[-1], n):
            if rows[r, v] != 0.0:
                free_rows[r] = False
    floor = -np.inf
    best_x, best_error, best_iteration = x.copy(), np.inf, 0
    best_y, best_mu, best_z, best_zu = y.copy(), mu, z.copy(), zu.copy()
    for iteration in range(max_iterations):
        moved = _to_securities(x, start, coef)
        sigma_a, q = _risk(a0 + moved, loadings, specific, offset, linear, constant)
        residual_e = row_values(x, moved) + slack - bound
        residual_q = 0.0
        if has_quad:
            if quad_scale * q < 1.0:  # feasible: the slack is what the constraint leaves
                omega = 1.0 - quad_scale * q
            residual_q = quad_scale * q + omega - 1.0
        per_security = (2.0 * (kappa + mu * quad_scale) * sigma_a
                        + _combine(y[:n_security_rows], security_rows))
        gap, residual_d, d_diag, complementarity, inv_x, inv_gap = _dual_terms(
            x, z, zu, upper, c, start, coef, per_security, rows, y[n_security_rows:])
        mu_bar = (complementarity + _inner(slack, y) + omega * mu) / n_pairs
        error = max(np.abs(residual_d).max() / scale_c, mu_bar,
                    0.1 * max(np.abs(residual_e).max() if len(bound) else 0.0,
                              abs(residual_q)) / scale_b)
        if error < best_error:
            best_x, best_error, best_iteration = x.copy(), error, iteration
            best_y, best_mu, best_z, best_zu = y.copy(), mu, z.copy(), zu.copy()
        if error <= tolerance:
            return x, True, iteration + 1, floor, y, mu, z, zu
        if has_quad and quad_scale * q > 1.0:  # is the cap out of reach? (duals per unit lam)
            floor = max(floor, _quadratic_floor(
                x, moved, quad_scale * q, sigma_a, y * (quad_scale / (kappa + mu * quad_scale)),
                quad_scale, start, coef, upper, security_rows, rows, bound, free_rows))
            if floor > 1.0 + FLOOR_MARGIN:
                break
        stalled = best_error <= ACCEPTABLE and iteration - best_iteration >= STALLED
        if not error <= 1e3 * best_error or stalled:
            break  # accuracy lost, or no progress from an acceptable iterate: it stands

        lam = kappa + mu * quad_scale
        alpha = 2.0 * lam * specific
        gradient = 2.0 * quad_scale * sigma_a  # of the scaled quadratic, per security
        psi[0] = gradient
        psi_weight = np.concatenate((np.array([mu / omega if has_quad else 0.0]),
                                     y[:n_security_rows] / slack[:n_security_rows],
                                     np.full(k, 2.0 * lam)))
        row_weight = y[n_security_rows:] / slack[n_security_rows:]
        # the factorization sees D plus a share of N's own diagonal: no direction of D is so
        # small against the low-rank part that Woodbury cancels; refinement solves with N
        inv_d, weighted, sigma = _factor_terms(d_diag, start, coef, alpha, psi, psi_weight,
                                               rows, row_weight)
        zeta = 1.0 + alpha * sigma
        shrink = alpha / zeta
        chol, b_rows = _capacitance(inv_d, weighted, start, shrink, zeta, sigma / zeta, psi,
                                    psi_weight, rows, row_weight)

        dx, dz, dzu = np.zeros(n), np.zeros(n), np.zeros(n)
        d_slack, dy = np.zeros(len(bound)), np.zeros(len(bound))
        d_omega, d_mu = 0.0, 0.0
        centre = 0.0
        for corrector in range(2):
            if corrector == 1:
                step = _bound_step(x, gap, z, zu, dx, dz, dzu, 1.0)
                step = _step_to_boundary(slack, d_slack, _step_to_boundary(y, dy, step))
                if has_quad:
                    step = _step_to_boundary(np.array([omega, mu]), np.array([d_omega, d_mu]), step)
                mu_aff = (_bound_complementarity(x, gap, z, zu, dx, dz, dzu, step)
                          + _inner(slack + step * d_slack, y + step * dy)
                          + (omega + step * d_omega) * (mu + step * d_mu)) / n_pairs
                centre = (mu_aff / mu_bar) ** 3 * mu_bar
            target_e = centre - slack * y - corrector * d_slack * dy
            target_q = centre - omega * mu - corrector * d_omega * d_mu
            weight_e = (target_e + y * residual_e) / slack
            per_security = -_combine(weight_e[:n_security_rows], security_rows)
            if has_quad:
                per_security -= gradient * (target_q + mu * residual_q) / omega
            target_lo, target_up, rhs = _bound_rhs(
                x, gap, z, zu, inv_x, inv_gap, dx, dz, dzu, centre, corrector, residual_d, rows,
                weight_e[n_security_rows:], start, coef, per_security)
            dx = _newton_solve(rhs, d_diag, inv_d, weighted, start, coef, alpha, shrink, zeta,
                               psi, psi_weight, rows, row_weight, chol, b_rows,
                               corrector == 1 and mu_bar < REFINE_FROM)
            moved_dx = _to_securities(dx, start, coef)
            dz, dzu = _bound_directions(inv_x, inv_gap, z, zu, dx, target_lo, target_up)
            d_slack = -residual_e - row_values(dx, moved_dx)
            dy = (target_e - y * d_slack) / slack
            if has_quad:
                d_omega = -residual_q - _inner(gradient, moved_dx)
                d_mu = (target_q - mu * d_omega) / omega
        step = _bound_step(x, gap, z, zu, dx, dz, dzu, 1.0 / 0.99)
        step = _step_to_boundary(slack, d_slack, _step_to_boundary(y, dy, step))
        if has_quad:
            step = _step_to_boundary(np.array([omega, mu]), np.array([d_omega, d_mu]), step)
        step *= 0.99
        _advance(step, (x, dx), (z, dz), (zu, dzu), (slack, d_slack), (y, dy))
        omega += step * d_omega
        mu += step * d_mu
    return (best_x, best_error <= ACCEPTABLE and not floor > 1.0, iteration + 1, floor, best_y,
            best_mu, best_z, best_zu)


class FastSolver:
    """Solves a :class:`Problem` (or its minimum-TE twin) with :func:`_interior_point`, from a
    cold start: a warm start from a related solve (the first pass's iterate for the second)
    took 35 iterations where a cold one takes 23. When the decision does not converge, the
    minimum-TE twin tells an infeasible TE cap from a failure.
    """

    def __init__(self, max_iterations: int = MAX_ITERATIONS, tolerance: float = TOLERANCE) -> None:
        self.max_iterations = max_iterations
        self.tolerance = tolerance
        self._solved: list[tuple[tuple, tuple]] = []  # (inputs, result), the latest last

    def _interior_point(self, *inputs):
        """:func:`_interior_point`, or the result of a remembered solve of the same inputs
        (compared exactly; copies are kept, so a caller's later change of an array is seen)."""
        for remembered, result in self._solved:
            if _same(remembered, inputs):
                return result
        result = _interior_point(*inputs)
        kept = tuple(np.array(v) if isinstance(v, np.ndarray) else v for v in inputs)
        self._solved = [*self._solved[1 - REMEMBERED:], (kept, result)]
        return result

    def solve(self, problem: Problem, *, min_te: bool = False) -> Attempt:
        sells, buys, floor, duals = self._run(problem, min_te)
        if sells is not None:
            return Attempt(sells, buys, False, "", "fast", duals)
        if floor > 1.0 + FLOOR_MARGIN:  # certified: no need for the minimum-TE twin
            return Attempt(None, None, True, f"fast: minimum TE at least "
                           f"{problem.te_cap * np.sqrt(floor):.4%}, above the cap", None)
        if not min_te:
            floor_sells, floor_buys, *_ = self._run(problem, True)
            if floor_sells is not None:
                floor = problem.program_te(problem.weights(floor_sells, floor_buys))
                if floor >= problem.te_cap:
                    return Attempt(None, None, True, f"fast: minimum TE {floor:.4%} above the cap", None)
        return Attempt(None, None, False, "fast: did not converge", None)

    def _run(self, problem: Problem, min_te: bool):
        """Trades in weight units, the interior point's bound on ``(TE / te_cap)^2`` and the
        duals at the trades (``None`` trades when it did not converge; ``None`` duals for the
        minimum-TE twin or when nothing may trade)."""
        layout = _Layout(problem, carry=0 if min_te else 2)
        if not len(layout.size):  # nothing may trade: the forced sales are the answer
            return problem.sell_lower.copy(), np.zeros(problem.shape[0]), -np.inf, None
        a0, kept = _active(problem.held, problem.benchmark, problem.sell_lower)
        row_matrix, bound, row_scale = layout.rows(problem, min_te, kept)
        # the cash-band rows are +-M' / scale: security-level columns of the Newton matrix
        security_rows = np.outer(np.array([1.0, -1.0]) / row_scale[:2], np.ones(problem.shape[0]))

        cost = np.zeros(len(layout.size)) if min_te else layout.cost(problem)
        risk = problem.program_risk
        loadings = risk.loadings
        specific = np.maximum(risk.specific_sd**2, SPECIFIC_FLOOR)
        kappa = 1.0 if min_te else problem.risk_price
        sigma_a0 = _risk(a0, loadings, specific, risk.offset, risk.linear, risk.constant)[0]
        scale = max(np.abs(cost).max(initial=0.0),
                    2 * kappa * np.abs(sigma_a0).max() * np.abs(layout.coef).max(), 1e-12)
        units = _Units(layout.size, row_scale, scale)
        x0 = layout.cold_start(problem.cash_band / 2 + kept - 1.0)
        # no pair starts much further from the central path than a lot's (0.1 and 0.9)
        slack = np.maximum(bound - row_matrix @ x0, 1.0)
        x, converged, _, floor, y, mu, z, zu = self._interior_point(
            x0, np.ones(len(x0)), np.minimum(1.0, COLD_PAIR / (layout.upper - x0)), slack,
            np.ones(len(bound)), 1.0, 1.0, cost / scale, layout.start, layout.coef, layout.upper,
            security_rows, row_matrix[2:], bound, a0, loadings, specific, risk.offset, risk.linear,
            risk.constant, kappa / scale, 0.0 if min_te else 1.0 / problem.te_cap**2,
            self.max_iterations, self.tolerance,
        )
        if not converged:
            return None, None, floor, None
        duals = None if min_te else units.duals(y, mu, z - zu, kappa, problem, layout)
        return (*layout.trades(x, problem), floor, duals)


def _same(a: tuple, b: tuple) -> bool:
    """Whether two argument tuples are equal, arrays element by element (shapes and scalars
    first: they tell most different solves apart)."""
    arrays = []
    for u, v in zip(a, b, strict=True):
        if isinstance(u, np.ndarray):
            if not (isinstance(v, np.ndarray) and u.shape == v.shape and u.dtype == v.dtype):
                return False
            arrays.append((u, v))
        elif isinstance(v, np.ndarray) or u != v:
            return False
    return all(np.array_equal(u, v) for u, v in arrays)


@_jit
def _layout(sell_lower, sell_upper, buy_upper, benchmark, held, carry, most_carry):
    """:class:`_Layout`'s arrays in one pass: ``keys``, ``security`` and ``is_lot`` (of the
    trades), ``size``, ``coef``, ``upper``, ``start``."""
    m, slots = sell_upper.shape
    n_trades = 0
    for i in range(m):
        for j in range(slots):
            n_trades += sell_upper[i, j] > sell_lower[i, j]
        n_trades += buy_upper[i] > 0
    n = n_trades + carry
    keys, security = np.empty(n, np.int64), np.empty(n_trades, np.int64)
    is_lot, start = np.zeros(n_trades, np.bool_), np.empty(m + 1, np.int64)
    size, coef, upper = np.ones(n), np.zeros(n), np.empty(n)
    v = 0
    for i in range(m):
        start[i] = v
        for j in range(slots):
            if sell_upper[i, j] > sell_lower[i, j]:
                keys[v], security[v], is_lot[v] = i * slots + j, i, True
                size[v], coef[v], upper[v] = sell_upper[i, j], -sell_upper[i, j], 1.0
                v += 1
        if buy_upper[i] > 0:
            keys[v], security[v] = m * slots + i, i
            size[v] = max(benchmark[i], held[i], 1.0 / m)
            coef[v], upper[v] = size[v], 1.0 / size[v]
            v += 1
    start[m] = v
    for c in range(carry):
        keys[v + c], upper[v + c] = m * slots + m + c, most_carry
    return keys, security, is_lot, size, coef, upper, start


@_jit
def _rows(is_lot, lots, size, carries, cash_bounds, short, long, capacity, realized, forced,
          has_gain, gain_budget, has_turnover, turnover):
    """:meth:`_Layout.rows` (lot coefficients read at the flat ``lots``; ``forced`` the
    forced sales, flat)."""
    n, trades = len(size), len(is_lot)
    count = 2 + 2 * carries + has_gain + has_turnover
    matrix, bound = np.zeros((count, n)), np.empty(count)
    bound[:2] = cash_bounds
    for v in range(trades):  # invested money per unit
        matrix[0, v] = -1.0 if is_lot[v] else 1.0
        matrix[1, v] = -matrix[0, v]
    r = 2
    if carries:
        for c, coefficient in enumerate((short, long)):
            _lot_row(matrix[r], is_lot, lots, -coefficient)
            matrix[r, trades + c] = -1.0
            bound[r] = capacity[c] + _inner(coefficient, forced)
            r += 1
    if has_gain:
        _lot_row(matrix[r], is_lot, lots, realized)
        bound[r] = gain_budget - _inner(realized, forced)
        r += 1
    if has_turnover:
        matrix[r, :trades] = 1.0
        bound[r] = turnover - forced.sum()
    scale = np.empty(count)
    for r in range(count):
        largest = 1e-12
        for v in range(n):
            matrix[r, v] *= size[v]
            largest = max(largest, abs(matrix[r, v]))
        scale[r] = largest
        matrix[r] /= largest
        bound[r] /= largest
    return matrix, bound, scale


@_jit
def _lot_row(row, is_lot, lots, values):
    """``row`` on the lot variables: ``values`` (flat, per lot) of each."""
    lot = 0
    for v in range(len(is_lot)):
        if is_lot[v]:
            row[v] = values[lots[lot]]
            lot += 1


@_jit
def _cold_start(is_lot, size, upper, cash_to_spend):
    """:meth:`_Layout.cold_start`."""
    trades = len(is_lot)
    sold, bought = 0.0, 0.0
    for v in range(trades):
        if is_lot[v]:
            sold += 0.1 * size[v]
        else:
            bought += size[v]
    buy = max((sold - cash_to_spend) / max(bought, 1e-12), 1e-3)
    x = np.full(len(size), 0.5)
    for v in range(trades):
        x[v] = 0.1 if is_lot[v] else min(buy, 0.5 * upper[v])
    return x


@_jit
def _trades(x, keys, security, is_lot, size, sell_lower, sell_upper):
    """:meth:`_Layout.trades` (``sell_upper`` flat)."""
    sells, buys = sell_lower.copy(), np.zeros(sell_lower.shape[0])
    flat = sells.reshape(-1)  # a view: the copy is contiguous
    for v in range(len(is_lot)):
        traded = max(x[v], 0.0) * size[v]
        if is_lot[v]:
            flat[keys[v]] += min(traded, sell_upper[keys[v]])
        else:
            buys[security[v]] = traded
    return sells, buys


@_jit
def _active(held, benchmark, sell_lower):
    """The active weights once the forced sales are made, and the weight they keep."""
    active = held - benchmark
    kept = 0.0
    for i in range(len(held)):
        for j in range(sell_lower.shape[1]):
            active[i] -= sell_lower[i, j]
        kept += held[i] - sell_lower[i].sum()
    return active, kept


@_jit
def _cost(is_lot, keys, size, rates, short, long, trade_cost, excess):
    """:meth:`_Layout.cost` (``short``, ``long`` flat)."""
    trades = len(is_lot)
    cost = np.empty(len(size))
    for v in range(trades):
        tax = rates[0] * short[keys[v]] + rates[1] * long[keys[v]] if is_lot[v] else 0.0
        cost[v] = (tax + trade_cost) * size[v]
    cost[trades:] = excess
    return cost


class _Layout:
    """The free variables of a problem, security by security (the sale of each lot that may be
    sold but is not forced, as a share of the lot; then the buy when the security may be
    bought, in units of its benchmark or held weight, at least ``1/m``), then ``carry``
    epigraphs. ``start``, ``coef``: each security's segment and ``M``; ``keys``: what each
    variable is (lot ``i L + j``, buy ``m L + i``, carry ``m L + m + c``)."""

    def __init__(self, problem: Problem, carry: int) -> None:
        # bounds that never bind: a buy of the whole book, a carry of every loss and capacity
        most_carry = 1.0 + np.abs(problem.capacity).max() + np.abs(problem.realized).max()
        (self.keys, self.security, self.is_lot, self.size, self.coef, self.upper,
         self.start) = _layout(problem.sell_lower, problem.sell_upper, problem.buy_upper,
                               problem.benchmark, problem.held, carry, most_carry)
        self.n_trades = len(self.security)
        self.lot_at = np.flatnonzero(self.is_lot)  # where the free lots sit, in their order
        self.lots = self.keys[self.lot_at]  # free lots, flat

    def rows(self, problem: Problem, min_te: bool, kept: float):
        """The dense rows ``row x <= bound`` scaled to unit maximum, their bounds and scales:
        invested at most 1 and at least ``1 - cash_band``, the carries' epigraphs (unless
        ``min_te``), the gain budget and the turnover cap when given."""
        gain, turnover = problem.gain_budget, problem.turnover
        return _rows(self.is_lot, self.lots, self.size, not min_te,
                     np.array([1.0 - kept, kept - (1.0 - problem.cash_band)]),
                     problem.coefficient_short.ravel(), problem.coefficient_long.ravel(),
                     problem.capacity, problem.realized.ravel(), problem.sell_lower.ravel(),
                     gain is not None, 0.0 if gain is None else gain,
                     turnover is not None, 0.0 if turnover is None else turnover)

    def cost(self, problem: Problem) -> np.ndarray:
        """The objective's linear part per variable: each lot's tax at the full marginal rates
        and the trading cost, the carries' excess rates."""
        return _cost(self.is_lot, self.keys, self.size, problem.rates,
                     problem.coefficient_short.ravel(), problem.coefficient_long.ravel(),
                     problem.trade_cost, problem.excess)

    def cold_start(self, cash_to_spend: float) -> np.ndarray:
        """A tenth of every lot sold; the buys, alike in their units, invest what that and the
        cash leave to the middle of the cash band; carries halfway to one."""
        return _cold_start(self.is_lot, self.size, self.upper, cash_to_spend)

    def trades(self, x: np.ndarray, problem: Problem) -> tuple[np.ndarray, np.ndarray]:
        """Sells ``(m, L)`` and buys ``(m,)`` in weight units."""
        return _trades(x, self.keys, self.security, self.is_lot, self.size, problem.sell_lower,
                       problem.sell_upper.ravel())


@dataclass(frozen=True)
class _Units:
    """The scaling of one solve: variable sizes, row scales, the objective scale."""

    size: np.ndarray
    row_scale: np.ndarray
    scale: float

    def duals(self, y, mu, bound_duals, kappa, problem: Problem, layout: _Layout) -> Duals:
        """The multipliers in the objective's units: a bought unit of weight enters the cash
        rows as +1 and -1 and the turnover row (the last, when given) as +1; a lot's reduced
        cost is its bound duals' difference per unit of weight sold."""
        per_unit = y / self.row_scale
        buy = per_unit[0] - per_unit[1] + (per_unit[-1] if problem.turnover is not None else 0.0)
        sell = np.full(problem.lot_weight.size, np.nan)
        sell[layout.lots] = (bound_duals / self.size)[layout.lot_at]
        return Duals(risk=kappa + mu * self.scale / problem.te_cap**2, buy=self.scale * buy,
                     sell=self.scale * sell.reshape(problem.lot_weight.shape))
