"""Tracking-error guardrail: admissibility, optimality against a dense formulation, fallbacks."""

from __future__ import annotations

import logging

import cvxpy as cp
import numpy as np
import pytest
from synthetic_universe import SyntheticUniverse, synthetic_universe

from taxharvest.guardrails import FactorRisk, GuardrailResult, TrackingErrorGuardrail
from taxharvest.guardrails.projection import RELAX_MARGIN
from taxharvest.market import risk as market_risk

LIMIT = 0.01


@pytest.fixture(scope="module")
def universe() -> SyntheticUniverse:
    return synthetic_universe(n_stocks=44, n_sectors=4, n_styles=2, seed=7)


@pytest.fixture(scope="module")
def guardrail() -> TrackingErrorGuardrail:
    return TrackingErrorGuardrail(LIMIT)


def harvested(universe: SyntheticUniverse, count: int) -> np.ndarray:
    """The benchmark with ``count`` stocks, from the 5th largest down, moved into their proxies."""
    order = np.argsort(universe.benchmark[: universe.n_stocks])[::-1]
    return universe.swap_to_proxies(universe.benchmark, order[4 : 4 + count])


def masks(universe: SyntheticUniverse) -> tuple[np.ndarray, np.ndarray]:
    """``no_buy`` on two mid-size stocks, ``excluded`` on one other."""
    order = np.argsort(universe.benchmark[: universe.n_stocks])[::-1]
    n = len(universe.benchmark)
    no_buy, excluded = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    no_buy[order[[10, 12]]] = True
    excluded[order[11]] = True
    return no_buy, excluded


def assert_admissible(
    result: GuardrailResult,
    universe: SyntheticUniverse,
    *,
    limit: float = LIMIT,
    current: np.ndarray | None = None,
    no_buy: np.ndarray | None = None,
    excluded: np.ndarray | None = None,
    atol: float = 1e-7,
) -> None:
    w = result.weights
    assert universe.risk.tracking_error(w - universe.benchmark) <= limit * (1 + 1e-4)
    assert result.te_after == pytest.approx(universe.risk.tracking_error(w - universe.benchmark))
    assert w.sum() == pytest.approx(1.0, abs=atol)
    assert w.min() >= -atol
    if excluded is not None:
        assert np.all(np.abs(w[excluded]) <= atol)
    if no_buy is not None:
        assert np.all(w[no_buy] <= current[no_buy] + atol)


def dense_projection(
    universe: SyntheticUniverse,
    proposed: np.ndarray,
    current: np.ndarray,
    upper: np.ndarray,
    *,
    limit: float = LIMIT,
    gain_cost: np.ndarray | None = None,
    cost_bps: float = 0.0,
    max_turnover: float | None = None,
) -> np.ndarray:
    """The same projection written independently: full covariance, atoms, constants only."""
    sigma = cp.psd_wrap(universe.risk.covariance())
    w = cp.Variable(len(proposed))
    objective = 0.5 * cp.sum_squares(w - proposed) + cost_bps * 1e-4 * cp.norm1(w - current)
    if gain_cost is not None:
        objective += gain_cost @ cp.pos(np.minimum(proposed, current) - w)
    constraints = [
        cp.sum(w) == 1,
        w >= 0,
        w <= upper,
        cp.quad_form(w - universe.benchmark, sigma) <= limit**2,
    ]
    if max_turnover is not None:
        constraints.append(cp.norm1(w - current) <= max_turnover)
    cp.Problem(cp.Minimize(objective), constraints).solve(solver="CLARABEL")
    return w.value


def dense_min_te(universe: SyntheticUniverse, upper: np.ndarray) -> float:
    """Minimum achievable TE under the hard constraints, from the full covariance."""
    w = cp.Variable(len(upper))
    sigma = cp.psd_wrap(universe.risk.covariance())
    problem = cp.Problem(
        cp.Minimize(cp.quad_form(w - universe.benchmark, sigma)),
        [cp.sum(w) == 1, w >= 0, w <= upper],
    )
    problem.solve(solver="CLARABEL")
    return float(np.sqrt(problem.value))


def test_factor_risk_is_reexported() -> None:
    assert FactorRisk is market_risk.FactorRisk


def test_admissible_proposal_is_returned_without_solving(
    universe: SyntheticUniverse, guardrail: TrackingErrorGuardrail, monkeypatch
) -> None:
    def no_solver(*args, **kwargs):
        raise AssertionError("the fast path must not call the solver")

    monkeypatch.setattr(cp.Problem, "solve", no_solver)
    no_buy, excluded = masks(universe)
    proposed = universe.swap_to_proxies(universe.benchmark, np.flatnonzero(excluded))
    result = guardrail.project(
        proposed, universe.benchmark, universe.risk, no_buy=no_buy, excluded=excluded
    )
    assert result.status == "unchanged"
    assert result.solver is None and result.distance == 0.0 and result.reason == ""
    np.testing.assert_array_equal(result.weights, proposed)
    assert result.te_after == result.te_before < LIMIT
    with pytest.raises(ValueError):
        result.weights[0] = 1.0  # results are immutable


@pytest.mark.parametrize(
    "options, priced",
    [
        ({}, False),
        ({"max_weight": 0.15}, False),
        ({"cost_bps": 5.0}, True),
        ({"max_turnover": 0.3, "gain_penalty": 2.0}, True),
    ],
)
def test_projection_is_the_nearest_admissible_point(
    universe: SyntheticUniverse, options: dict, priced: bool
) -> None:
    guardrail = TrackingErrorGuardrail(LIMIT, **options)
    n = len(universe.benchmark)
    current = harvested(universe, 2)
    proposed = harvested(universe, 8)
    no_buy, excluded = masks(universe)
    gain_cost = np.random.default_rng(3).uniform(0.0, 0.01, n) if priced else None
    result = guardrail.project(
        proposed,
        universe.benchmark,
        universe.risk,
        current=current,
        no_buy=no_buy,
        excluded=excluded,
        gain_cost=gain_cost,
    )
    assert result.status == "projected" and result.solver == "CLARABEL"
    assert "TE" in result.reason and result.te_before > LIMIT
    assert_admissible(result, universe, current=current, no_buy=no_buy, excluded=excluded)
    cap = options.get("max_weight", 1.0)
    upper = np.where(excluded, 0.0, np.where(no_buy, np.minimum(current, cap), cap))
    assert result.weights.max() <= cap + 1e-7
    expected = dense_projection(
        universe,
        proposed,
        current,
        upper,
        gain_cost=None if gain_cost is None else options.get("gain_penalty", 1.0) * gain_cost,
        cost_bps=options.get("cost_bps", 0.0),
        max_turnover=options.get("max_turnover"),
    )
    np.testing.assert_allclose(result.weights, expected, atol=1e-5)
    assert result.distance == pytest.approx(np.linalg.norm(result.weights - proposed))
    assert result.turnover == pytest.approx(np.abs(result.weights - current).sum())
    if "max_turnover" in options:
        assert result.turnover <= options["max_turnover"] + 1e-6


def test_gain_cost_moves_weight_where_it_is_cheap(
    universe: SyntheticUniverse, guardrail: TrackingErrorGuardrail
) -> None:
    proposed = harvested(universe, 8)
    plain = guardrail.project(proposed, universe.benchmark, universe.risk)
    sold = np.flatnonzero(plain.weights < proposed - 1e-4)
    expensive = np.zeros(len(proposed), dtype=bool)
    expensive[sold[::2]] = True
    priced = guardrail.project(
        proposed, universe.benchmark, universe.risk, gain_cost=np.where(expensive, 0.05, 0.0)
    )
    assert priced.status == "projected"
    assert_admissible(priced, universe)
    sells_plain = (proposed - plain.weights).clip(0)
    sells_priced = (proposed - priced.weights).clip(0)
    assert sells_priced[expensive].sum() < 0.5 * sells_plain[expensive].sum()
    assert sells_priced[~expensive].sum() > sells_plain[~expensive].sum()


def test_problems_are_dpp_and_built_once(
    universe: SyntheticUniverse, guardrail: TrackingErrorGuardrail
) -> None:
    n, k = len(universe.benchmark), universe.risk.n_factors
    program = guardrail.program(n, k)
    assert program.projection.is_dpp() and program.min_te.is_dpp()
    for count in (6, 7, 8):
        guardrail.project(harvested(universe, count), universe.benchmark, universe.risk)
    assert guardrail.program(n, k) is program
    assert program.projection.solver_stats is not None


def test_unreachable_limit_is_relaxed_to_the_minimum_te(
    universe: SyntheticUniverse, guardrail: TrackingErrorGuardrail, caplog
) -> None:
    n = len(universe.benchmark)
    excluded = np.zeros(n, dtype=bool)
    excluded[np.argsort(universe.benchmark[: universe.n_stocks])[::-1][:6]] = True
    proposed = universe.swap_to_proxies(universe.benchmark, np.flatnonzero(excluded))
    with caplog.at_level(logging.WARNING, logger="taxharvest.guardrails"):
        result = guardrail.project(proposed, universe.benchmark, universe.risk, excluded=excluded)
    assert result.status == "relaxed"
    assert "unreachable" in result.reason and "unreachable" in caplog.text
    te_min = dense_min_te(universe, np.where(excluded, 0.0, 1.0))
    assert te_min > LIMIT
    assert te_min * (1 - 1e-6) <= result.te_after <= te_min * (1 + RELAX_MARGIN) * (1 + 1e-4)
    assert_admissible(result, universe, limit=result.te_after, excluded=excluded)


@pytest.mark.parametrize("case", ["all excluded", "no_buy and excluded", "turnover"])
def test_infeasible_hard_constraints_fall_back(universe: SyntheticUniverse, case: str) -> None:
    n = len(universe.benchmark)
    current = harvested(universe, 8)
    options: dict = {}
    excluded = np.ones(n, dtype=bool)
    no_buy = None
    if case == "no_buy and excluded":
        excluded = np.arange(n) % 2 == 0
        no_buy = ~excluded
    if case == "turnover":  # excluded names hold 30%: selling them exceeds the turnover cap
        excluded = np.zeros(n, dtype=bool)
        excluded[np.argsort(current)[::-1][:4]] = True
        options = {"max_turnover": 0.05}
    result = TrackingErrorGuardrail(LIMIT, **options).project(
        current,
        universe.benchmark,
        universe.risk,
        current=current,
        no_buy=no_buy,
        excluded=excluded,
    )
    assert result.status == "fallback"
    assert "infeasible" in result.reason
    np.testing.assert_allclose(result.weights, current)


@pytest.mark.filterwarnings("ignore:Solution may be inaccurate")
def test_solver_failure_tries_the_fallback_solver_then_falls_back(
    universe: SyntheticUniverse, monkeypatch
) -> None:
    proposed = harvested(universe, 8)
    solve = cp.Problem.solve

    def clarabel_fails(self, *args, solver=None, **kwargs):
        if solver == "CLARABEL":
            raise cp.SolverError("injected failure")
        return solve(self, *args, solver=solver, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", clarabel_fails)
    guardrail = TrackingErrorGuardrail(LIMIT)
    result = guardrail.project(proposed, universe.benchmark, universe.risk)
    assert result.status == "projected" and result.solver == "SCS"
    assert_admissible(result, universe, atol=1e-6)

    def stops_early(self, *args, solver=None, **kwargs):  # a non-optimal status from both
        limits = {"CLARABEL": {"max_iter": 1}, "SCS": {"max_iters": 1}}[solver]
        return solve(self, *args, solver=solver, **{**kwargs, **limits})

    monkeypatch.setattr(cp.Problem, "solve", stops_early)
    current = harvested(universe, 2) * 1.5
    result = guardrail.project(proposed, universe.benchmark, universe.risk, current=current)
    assert result.status == "fallback" and result.solver is None
    assert "CLARABEL" in result.reason and "SCS" in result.reason
    np.testing.assert_allclose(result.weights, current / current.sum())


def test_full_universe_binding_projection() -> None:
    universe = synthetic_universe(seed=1)
    rng = np.random.default_rng(1)
    weight = universe.benchmark[: universe.n_stocks]
    names = rng.choice(universe.n_stocks, 100, replace=False, p=weight)
    proposed = universe.swap_to_proxies(universe.benchmark, names)
    no_buy = np.zeros(len(proposed), dtype=bool)
    no_buy[names[:20]] = True
    guardrail = TrackingErrorGuardrail(LIMIT)
    result = guardrail.project(
        proposed,
        universe.benchmark,
        universe.risk,
        current=universe.benchmark,
        no_buy=no_buy,
        gain_cost=rng.uniform(0.0, 0.05, len(proposed)),
    )
    assert len(universe.benchmark) == 511 and result.te_before > LIMIT
    assert result.status == "projected"
    assert_admissible(result, universe, current=universe.benchmark, no_buy=no_buy)


def test_projection_logs_its_reason(
    universe: SyntheticUniverse, guardrail: TrackingErrorGuardrail, caplog
) -> None:
    with caplog.at_level(logging.INFO, logger="taxharvest.guardrails"):
        result = guardrail.project(harvested(universe, 8), universe.benchmark, universe.risk)
    assert result.status == "projected"
    assert caplog.records[-1].levelno == logging.INFO
    assert result.reason in caplog.text


@pytest.mark.parametrize(
    "change, argument",
    [
        ({"proposed": np.ones(3)}, "proposed"),
        ({"benchmark": np.full(48, np.nan)}, "benchmark"),
        ({"current": np.ones(47)}, "current"),
        ({"no_buy": np.zeros(48)}, "no_buy"),
        ({"excluded": np.zeros(3, dtype=bool)}, "excluded"),
        ({"gain_cost": -np.ones(48)}, "gain_cost"),
        ({"risk": "not a risk model"}, "risk"),
    ],
)
def test_invalid_inputs_raise(
    universe: SyntheticUniverse, guardrail: TrackingErrorGuardrail, change: dict, argument: str
) -> None:
    arguments = {
        "proposed": universe.benchmark,
        "benchmark": universe.benchmark,
        "risk": universe.risk,
    }
    arguments.update(change)
    with pytest.raises(ValueError, match=argument):
        guardrail.project(**arguments)


@pytest.mark.parametrize(
    "options, argument",
    [
        ({"te_limit": 0.0}, "te_limit"),
        ({"max_weight": 1.5}, "max_weight"),
        ({"max_turnover": -1.0}, "max_turnover"),
        ({"cost_bps": np.nan}, "cost_bps"),
        ({"solver": "NOT_A_SOLVER"}, "solver"),
    ],
)
def test_invalid_configuration_raises(options: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        TrackingErrorGuardrail(**options)


def test_no_sell_names_keep_at_least_their_current_weight(
    universe: SyntheticUniverse, guardrail: TrackingErrorGuardrail
) -> None:
    """A name bought in the last 30 days may not be sold (a loss sale would be a wash sale)."""
    current = universe.benchmark
    proposed = harvested(universe, 12)
    sold = np.flatnonzero(proposed[: universe.n_stocks] < current[: universe.n_stocks] - 1e-12)
    no_sell = np.zeros(len(current), dtype=bool)
    no_sell[sold[:3]] = True
    free = guardrail.project(proposed, universe.benchmark, universe.risk, current=current)
    held = guardrail.project(
        proposed, universe.benchmark, universe.risk, current=current, no_sell=no_sell
    )
    assert free.status == held.status == "projected"
    assert np.any(free.weights[no_sell] < current[no_sell] - 1e-6)
    assert np.all(held.weights[no_sell] >= current[no_sell] - 1e-7)
    assert_admissible(held, universe, current=current)
