"""Tracking-error guardrail: admissibility, optimality against a dense formulation, the fast
path against the cvxpy reference, fallbacks."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace

import cvxpy as cp
import numpy as np
import pytest
from synthetic_universe import SyntheticUniverse, synthetic_universe

from taxharvest.guardrails import FactorRisk, GuardrailResult, TrackingErrorGuardrail
from taxharvest.guardrails.fast import FastProjection, NotCertified
from taxharvest.guardrails.projection import RELAX_MARGIN
from taxharvest.market import risk as market_risk

LIMIT = 0.01
#: Clarabel settings of the independent dense formulation: tight enough to judge the fast path.
TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "max_iter": 500}
#: Interior-point weights are accurate to about the root of the objective's accuracy: how far
#: the reference (default Clarabel tolerances) and the tight dense solve may sit from the exact
#: optimum, and how far the tight dense objective from the fast path's.
REFERENCE_ATOL = 3e-5
FAST_ATOL = 5e-6
OBJECTIVE_SLACK = 1e-9


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
    lower: np.ndarray | float = 0.0,
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
        w >= lower,
        w <= upper,
        cp.quad_form(w - universe.benchmark, sigma) <= limit**2,
    ]
    if max_turnover is not None:
        constraints.append(cp.norm1(w - current) <= max_turnover)
    tight_solve(cp.Problem(cp.Minimize(objective), constraints))
    return w.value


def dense_min_te(
    universe: SyntheticUniverse, upper: np.ndarray, lower: np.ndarray | float = 0.0
) -> float:
    """Minimum achievable TE under the hard constraints, from the full covariance."""
    w = cp.Variable(len(upper))
    sigma = cp.psd_wrap(universe.risk.covariance())
    problem = cp.Problem(
        cp.Minimize(cp.quad_form(w - universe.benchmark, sigma)),
        [cp.sum(w) == 1, w >= lower, w <= upper],
    )
    tight_solve(problem)
    return float(np.sqrt(problem.value))


def tight_solve(problem: cp.Problem) -> None:
    """Clarabel at ``TIGHT``; it may stop at its reduced accuracy, still far above the default."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Solution may be inaccurate")
        problem.solve(solver="CLARABEL", **TIGHT)


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


@pytest.mark.parametrize("method", ["fast", "reference"])
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
    universe: SyntheticUniverse, options: dict, priced: bool, method: str
) -> None:
    guardrail = TrackingErrorGuardrail(LIMIT, method=method, **options)
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
    # the fast path has no turnover cap: the reference solves those
    fast = method == "fast" and "max_turnover" not in options
    assert result.status == "projected" and result.solver == ("fast" if fast else "CLARABEL")
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
    np.testing.assert_allclose(result.weights, expected, atol=FAST_ATOL if fast else REFERENCE_ATOL)
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


def test_problems_are_dpp_and_built_once(universe: SyntheticUniverse) -> None:
    guardrail = TrackingErrorGuardrail(LIMIT, method="reference")
    n, k = len(universe.benchmark), universe.risk.n_factors
    program = guardrail.program(n, k)
    assert program.projection.is_dpp() and program.min_te.is_dpp()
    for count in (6, 7, 8):
        guardrail.project(harvested(universe, count), universe.benchmark, universe.risk)
    assert guardrail.program(n, k) is program
    assert program.projection.solver_stats is not None


@pytest.mark.parametrize("method", ["fast", "reference"])
def test_unreachable_limit_is_relaxed_to_the_minimum_te(
    universe: SyntheticUniverse, method: str, caplog
) -> None:
    n = len(universe.benchmark)
    excluded = np.zeros(n, dtype=bool)
    excluded[np.argsort(universe.benchmark[: universe.n_stocks])[::-1][:6]] = True
    proposed = universe.swap_to_proxies(universe.benchmark, np.flatnonzero(excluded))
    guardrail = TrackingErrorGuardrail(LIMIT, method=method)
    with caplog.at_level(logging.WARNING, logger="taxharvest.guardrails"):
        result = guardrail.project(proposed, universe.benchmark, universe.risk, excluded=excluded)
    assert result.status == "relaxed" and result.solver == (
        "fast" if method == "fast" else "CLARABEL"
    )
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
    guardrail = TrackingErrorGuardrail(LIMIT, method="reference")
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
    arguments = {
        "current": universe.benchmark,
        "no_buy": no_buy,
        "gain_cost": rng.uniform(0.0, 0.05, len(proposed)),
    }
    result = TrackingErrorGuardrail(LIMIT).project(
        proposed, universe.benchmark, universe.risk, **arguments
    )
    assert len(universe.benchmark) == 511 and result.te_before > LIMIT
    assert result.status == "projected" and result.solver == "fast"
    assert_admissible(result, universe, current=universe.benchmark, no_buy=no_buy)
    reference = TrackingErrorGuardrail(LIMIT, method="reference").project(
        proposed, universe.benchmark, universe.risk, **arguments
    )
    np.testing.assert_allclose(result.weights, reference.weights, atol=REFERENCE_ATOL)


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
        ({"method": "exact"}, "method"),
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


SIZES = {
    "small": {"n_stocks": 24, "n_sectors": 3, "n_styles": 2},
    "medium": {"n_stocks": 150, "n_sectors": 6, "n_styles": 3},
}


@dataclass(frozen=True)
class Scenario:
    """One projection to solve both ways, and the status both must report."""

    universe: SyntheticUniverse
    proposed: np.ndarray
    arguments: dict
    status: str

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The hard bounds the arguments imply (what ``_validate`` derives)."""
        n = len(self.proposed)
        current = self.arguments.get("current", self.proposed)
        no_buy = self.arguments.get("no_buy", np.zeros(n, dtype=bool))
        upper = np.where(no_buy, np.clip(current, 0.0, 1.0), 1.0)
        upper[self.arguments.get("excluded", np.zeros(n, dtype=bool))] = 0.0
        no_sell = self.arguments.get("no_sell", np.zeros(n, dtype=bool))
        return np.where(no_sell, np.clip(current, 0.0, upper), 0.0), upper


def zero_specific_risk(universe: SyntheticUniverse) -> SyntheticUniverse:
    """No specific risk on the proxies and on every fourth stock."""
    specific_var = universe.risk.specific_var.copy()
    specific_var[universe.n_stocks :] = 0.0
    specific_var[: universe.n_stocks : 4] = 0.0
    return replace(universe, risk=replace(universe.risk, specific_var=specific_var))


def duplicated(universe: SyntheticUniverse, pairs: int) -> SyntheticUniverse:
    """The first ``pairs`` odd stocks made copies of the even stocks before them."""
    risk = universe.risk
    exposures, specific_var = risk.exposures.copy(), risk.specific_var.copy()
    benchmark, sector = universe.benchmark.copy(), universe.sector.copy()
    copies = np.arange(1, 2 * pairs, 2)
    for target in (exposures, specific_var, benchmark, sector):
        target[copies] = target[copies - 1]
    risk = FactorRisk(exposures, risk.factor_cov, specific_var)
    return replace(universe, risk=risk, benchmark=benchmark / benchmark.sum(), sector=sector)


def scenario(case: str, size: str, seed: int) -> Scenario:
    universe = synthetic_universe(**SIZES[size], seed=seed)
    if case.startswith("zero specific risk"):
        universe = zero_specific_risk(universe)
    if case == "repeated prices":
        universe = duplicated(universe, 5)
    rng = np.random.default_rng(seed)
    benchmark, stocks = universe.benchmark, universe.n_stocks
    n = len(benchmark)
    largest = np.argsort(benchmark[:stocks])[::-1]

    def mask(names: np.ndarray) -> np.ndarray:
        chosen = np.zeros(n, dtype=bool)
        chosen[names] = True
        return chosen

    harvest = rng.choice(stocks, stocks // 4, replace=False, p=benchmark[:stocks])
    proposed = universe.swap_to_proxies(benchmark, harvest)
    gain_cost = rng.uniform(0.0, 0.03, n)
    binding = {"current": benchmark, "no_buy": mask(harvest[:3]), "gain_cost": gain_cost}
    top = universe.swap_to_proxies(benchmark, largest[:5])
    if case in ("binding", "zero specific risk"):
        return Scenario(universe, proposed, binding, "projected")
    if case == "repeated prices":  # twin securities, one gain price, most proposals at current
        prices = {**binding, "gain_cost": np.full(n, 0.01)}
        return Scenario(universe, proposed, prices, "projected")
    if case == "non-binding":  # an excluded name held: the budget binds, the TE limit does not
        excluded = mask(largest[-1:])
        arguments = {"current": benchmark, "excluded": excluded, "gain_cost": gain_cost}
        return Scenario(universe, benchmark, arguments, "projected")
    if case in ("relaxed, excluded", "zero specific risk, relaxed"):
        excluded = mask(largest[:8])
        return Scenario(
            universe,
            universe.swap_to_proxies(benchmark, largest[:8]),
            {"excluded": excluded},
            "relaxed",
        )
    if case == "relaxed, wash sales":  # harvested names blocked, their proxies unsellable
        wash = {"current": top, "no_buy": mask(largest[:5]), "no_sell": mask(np.arange(stocks, n))}
        return Scenario(universe, top, wash, "relaxed")
    if case == "all no_buy":  # only sales, of a book 5% larger than the budget
        sells = {"current": 1.05 * top, "no_buy": np.ones(n, dtype=bool), "gain_cost": gain_cost}
        return Scenario(universe, proposed, sells, "relaxed")
    raise ValueError(case)


CASES = [
    "binding",
    "non-binding",
    "relaxed, excluded",
    "relaxed, wash sales",
    "all no_buy",
    "zero specific risk",
    "zero specific risk, relaxed",
    "repeated prices",
]


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("case", CASES)
def test_fast_path_matches_the_reference(case: str, size: str, seed: int) -> None:
    s = scenario(case, size, seed)
    universe, benchmark, risk = s.universe, s.universe.benchmark, s.universe.risk
    fast = TrackingErrorGuardrail(LIMIT).project(s.proposed, benchmark, risk, **s.arguments)
    reference = TrackingErrorGuardrail(LIMIT, method="reference").project(
        s.proposed, benchmark, risk, **s.arguments
    )
    assert (fast.solver, reference.solver) == ("fast", "CLARABEL")
    assert fast.status == reference.status == s.status, (fast.reason, reference.reason)
    np.testing.assert_allclose(fast.weights, reference.weights, atol=REFERENCE_ATOL)

    lower, upper = s.bounds()
    w = fast.weights
    assert np.all(w >= lower) and np.all(w <= upper) and abs(w.sum() - 1) <= 1e-10
    limit = LIMIT
    if s.status == "relaxed":
        limit = dense_min_te(universe, upper, lower) * (1 + RELAX_MARGIN)
        assert fast.te_after == pytest.approx(limit, rel=1e-7)
    assert fast.te_after <= limit * (1 + 1e-8)
    expected = dense_projection(
        universe,
        s.proposed,
        s.arguments.get("current", s.proposed),
        upper,
        lower=lower,
        limit=fast.te_after,
        gain_cost=s.arguments.get("gain_cost"),
    )
    np.testing.assert_allclose(w, expected, atol=FAST_ATOL)
    assert objective(s, w) == pytest.approx(objective(s, expected), abs=OBJECTIVE_SLACK)


def objective(s: Scenario, w: np.ndarray) -> float:
    """The projection objective of ``w`` (gain penalty 1, no trading cost)."""
    value = 0.5 * np.sum((w - s.proposed) ** 2)
    if "gain_cost" in s.arguments:
        anchor = np.minimum(s.proposed, s.arguments["current"])
        value += s.arguments["gain_cost"] @ np.maximum(anchor - w, 0.0)
    return float(value)


def test_a_single_admissible_point_is_the_answer(universe: SyntheticUniverse) -> None:
    """Everything no_buy and the book fully invested: only the current book is admissible."""
    held = harvested(universe, 6)
    everything = np.ones(len(held), dtype=bool)
    result = TrackingErrorGuardrail(LIMIT).project(
        harvested(universe, 9), universe.benchmark, universe.risk, current=held, no_buy=everything
    )
    assert result.status == "relaxed" and result.solver == "fast"
    np.testing.assert_allclose(result.weights, held, atol=1e-12)


def test_uncertified_or_broken_fast_answers_go_to_the_reference(
    universe: SyntheticUniverse, monkeypatch
) -> None:
    proposed = harvested(universe, 8)
    expected = TrackingErrorGuardrail(LIMIT, method="reference").project(
        proposed, universe.benchmark, universe.risk
    )

    def uncertified(self, limit, hint=None):
        raise NotCertified("injected")

    def broken(self, limit, hint=None):  # an answer over the TE limit must never come back
        self.multiplier = 0.0
        return proposed

    for replacement in (uncertified, broken):
        monkeypatch.setattr(FastProjection, "project", replacement)
        result = TrackingErrorGuardrail(LIMIT).project(proposed, universe.benchmark, universe.risk)
        assert result.status == "projected" and result.solver == "CLARABEL"
        np.testing.assert_allclose(result.weights, expected.weights, atol=1e-9)


def test_the_multiplier_hint_only_changes_the_path(universe: SyntheticUniverse) -> None:
    """A guardrail warm from a very different problem gives the same answer as a fresh one."""
    n = len(universe.benchmark)
    excluded = np.zeros(n, dtype=bool)
    excluded[np.argsort(universe.benchmark[: universe.n_stocks])[::-1][:6]] = True
    warm = TrackingErrorGuardrail(LIMIT)
    warm.project(
        universe.swap_to_proxies(universe.benchmark, np.flatnonzero(excluded)),
        universe.benchmark,
        universe.risk,
        excluded=excluded,
    )
    proposed = harvested(universe, 8)
    hinted = warm.project(proposed, universe.benchmark, universe.risk)
    fresh = TrackingErrorGuardrail(LIMIT).project(proposed, universe.benchmark, universe.risk)
    assert hinted.solver == fresh.solver == "fast"
    np.testing.assert_allclose(hinted.weights, fresh.weights, atol=1e-9)
