"""The tax-aware decision: one convex program per decision, never raising on market conditions."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from taxharvest.optimize.account import AccountState, Intent
from taxharvest.optimize.fast import FastSolver
from taxharvest.optimize.problem import Problem, Settings, build_problem
from taxharvest.optimize.reference import Attempt, ReferenceProgram

logger = logging.getLogger("taxharvest.optimize")

Status = Literal["optimal", "relaxed", "fallback"]
Method = Literal["reference", "fast"]

#: Solvers are given the TE cap times ``1 - TE_MARGIN``, and a trade is accepted only within
#: the cap itself: the guarantee holds exactly, not within a solver's tolerance.
TE_MARGIN = 1e-5
#: A trade is accepted when every linear constraint holds within this (weight units).
LINEAR_SLACK = 1e-6
#: The fast path falls back to the cvxpy reference only up to this many lot slots (m x L):
#: the reference's parametrized program (DPP) takes about 4 GB at 522 x 8 and grows with the
#: square of the slots; beyond, a failed fast solve holds the book (``fallback``).
REFERENCE_MAX_SLOTS = 5_000
#: The preference given to the loss lots an intent keeps when the TE limit needs them sold, and
#: to every loss lot when a decision falls back to rebalancing (no stress of the frozen
#: positions can be met): they may be sold, worth (almost) nothing to the program.
LIFTED_PREFERENCE = 1e-9
#: The last step of a decision whose frozen positions no stress can price (see the class).
REBALANCING = "the plain risk model, loss lots sold for TE, not for tax"


@dataclass(frozen=True)
class Decision:
    """One decision's trades and what they realize.

    Attributes:
        status: ``optimal``; ``relaxed`` (the TE limit is unreachable under the hard
            constraints: solved at the minimum TE times ``1 + relax_margin``); ``fallback``
            (hard constraints infeasible or every solver failed: the current book, no trade).
        reason: why it is relaxed or a fallback, or why the intent's TE budget was raised;
            empty when optimal as asked.
        weights: ``(m,)`` post-trade weights; cash: post-trade cash weight.
        sell_shares: ``(m, L)`` shares sold per lot; buy_shares: ``(m,)`` shares bought.
        realized_short, realized_long: net realized gain in dollars (losses negative; a
            disallowed loss is not realized).
        disallowed: dollars of loss washed by forced sales (sell-blocked excluded lots).
        te: ex-ante TE of ``weights``; te_cap: the TE bound it was solved under, on
            ``program_te`` (the frozen positions stressed); te_min: the minimum achievable TE
            when it was computed (relaxations), else ``None``.
        turnover: dollars traded (sells plus buys) over the book.
        solver: what produced the trades (``None`` for a fallback); solve_ms: wall time.
    """

    status: Status
    reason: str
    weights: np.ndarray = field(repr=False)
    cash: float
    sell_shares: np.ndarray = field(repr=False)
    buy_shares: np.ndarray = field(repr=False)
    realized_short: float
    realized_long: float
    disallowed: float
    te: float
    te_cap: float
    te_min: float | None
    turnover: float
    solver: str | None
    solve_ms: float
    program_te: float


@dataclass(frozen=True)
class _Outcome:
    """A solved problem (its TE cap the one used), its trades, and what to say about them."""

    problem: Problem
    attempt: Attempt
    status: Status
    reason: str = ""
    te_min: float | None = None


class TaxAwareOptimizer:
    """Chooses post-trade holdings that maximize the after-tax value of realized losses, minus
    the tax on realized gains, a TE penalty and trading cost (see :class:`Problem`), with TE at
    most ``intent.te_budget * te_limit``.

    Two passes keep every decision free of wash sales: in the first, a security whose loss
    lots may be sold is not bought; the second frees those that sold (almost) none at a loss
    to be bought, their loss lots then kept (:meth:`Problem.released`), and solves again; the
    better of the two stands. The second is skipped where the first pass's duals show that no
    freed purchase would improve it (:func:`_may_improve`). The two passes run again with
    only the deeper half of the candidates offered, the shallower free to be bought as
    hedges (:meth:`Problem.deeper_half`), and the better partition stands. A first pass in
    which every security that may be bought is sell-only may leave cash (its harvest's
    proceeds, :attr:`Problem.cash_band`); the passes that free purchases then always run, and
    an outcome within the account's band is preferred to one beyond it (:func:`_rank`).

    Positions that earlier decisions froze in wash windows cannot be undone: where they make
    the stressed bound unreachable, :meth:`_pass` keeps this decision from adding to them
    for tax. In a crash, a volatility spike that pushes the book past its bound
    becomes a rebalance, not a harvest of every name the stress could not price (that froze
    a fifth of the index on a gfc-2008 path and held the book above its limit for months).

    When the TE bound is unreachable under the hard constraints, the minimum achievable TE is
    found and the decision solved at the larger of the bound and ``min TE * (1 +
    relax_margin)``: ``relaxed`` when that exceeds the limit, the reason naming what the bounds
    froze. When the hard constraints conflict, or no solver succeeds, the book is held
    (``fallback``). Only invalid inputs raise (``ValueError``).

    Args:
        settings: the account's standing rules and prices.
        method: ``reference`` (cvxpy, Clarabel then SCS) or ``fast`` (the specialised solver,
            the reference where it fails).

    Compiled programs are cached per shape ``(m, L, k)``; not thread-safe.
    """

    def __init__(self, settings: Settings | None = None, *, method: Method = "reference") -> None:
        if method not in ("reference", "fast"):
            raise ValueError(f"method must be 'reference' or 'fast', got {method!r}")
        self.settings = settings or Settings()
        self.method = method
        self._programs: dict[tuple[int, int, int], ReferenceProgram] = {}
        self._fast = FastSolver()

    def program(self, shape: tuple[int, int, int]) -> ReferenceProgram:
        """The reference program for ``(m, L, k)``, compiled on first use."""
        if shape not in self._programs:
            self._programs[shape] = ReferenceProgram(*shape, self.settings)
        return self._programs[shape]

    def decide(self, state: AccountState, intent: Intent, *, min_buy: float = 0.0) -> Decision:
        """The decision for ``state`` under ``intent``. The TE guarantee holds whatever the
        intent asks: when the loss lots it keeps make the limit unreachable, they may be sold
        (worth nothing to the program) before the limit is relaxed. ``min_buy``: the share of
        the book below which the caller does not trade a purchase (its tickets); a book that
        may sell nothing, holds less cash than that and meets its bound (and the limit: a
        glide path's step above it is reported relaxed) is left as it is without a solve
        (what the program would buy could not trade)."""
        start = time.perf_counter()
        problem = build_problem(state, intent, self.settings)
        if (state.cash < min_buy * state.value and not problem.sell_upper.any()
                and problem.program_te(problem.held) <= min(problem.te_cap,
                                                             self.settings.te_limit)):
            return self._result(state, _Outcome(problem, _no_trade(problem), "optimal"), start)
        conflicts = problem.conflicts()
        if conflicts:
            reason = f"hard constraints infeasible: {'; '.join(conflicts)}"
            return self._result(state, _hold(problem, reason), start)
        outcome = self._two_passes(problem)
        if outcome.status == "relaxed" and outcome.te_min is not None and (
                (intent.preference == 0).any() or intent.harvest_threshold > 0):
            lifted = build_problem(state, Intent(np.maximum(intent.preference, LIFTED_PREFERENCE),
                                                 intent.te_budget), self.settings)
            retry = self._two_passes(lifted)
            if retry.status != "fallback" and _rank(retry, lifted) < _rank(outcome, lifted):
                outcome = replace(retry, reason="; ".join(filter(None, (
                    f"the loss lots the intent keeps made the TE limit unreachable "
                    f"({outcome.reason}): they may be sold", retry.reason))))
        return self._result(state, outcome, start)

    def _two_passes(self, problem: Problem) -> _Outcome:
        """The two passes offering every candidate, and, where it may gain, again offering
        the deeper half alone (:meth:`Problem.deeper_half`); the better stands (see the
        class)."""
        posed, first = self._priced_pass(problem)
        outcome = self._released(problem, posed, first)
        split = problem.deeper_half()
        if split is not None and (posed.band_waived or _may_improve(
                posed, split, first, posed.buy_frozen_by_harvest)):
            posed, other = self._priced_pass(split)
            other = self._released(problem, posed, other)
            if other.status != "fallback" and _rank(other, problem) < _rank(outcome, problem):
                outcome = other
        return outcome

    def _released(self, problem: Problem, posed: Problem, first: _Outcome) -> _Outcome:
        """The first pass's ``first`` outcome of ``posed``, or the second's where it frees
        securities and may gain (see the class), ranked on ``problem``."""
        released = posed.released(first.attempt.sells) if first.status != "fallback" else None
        if released is not None and (posed.band_waived or _may_improve(posed, released, first)):
            _, second = self._priced_pass(released)
            if second.status != "fallback" and _rank(second, problem) <= _rank(first, problem):
                return second
        return first

    def _priced_pass(self, problem: Problem) -> tuple[Problem, _Outcome]:
        """:meth:`_pass`, posed again while its trade harvests candidates under the benchmark
        whose whole underweight, which the sale freezes, breaks the bound
        (:meth:`Problem.harvest_priced`); ``(the problem last posed, its outcome)``."""
        while True:
            outcome = self._pass(problem)
            attempt = outcome.attempt
            if outcome.problem is not problem or not problem.stressed:  # a fallback's
                return problem, outcome
            priced = problem.harvest_priced(attempt.sells)
            if priced is None or priced.program_te(
                    problem.weights(attempt.sells, attempt.buys)) <= problem.te_cap:
                return problem, outcome
            problem = priced

    def _pass(self, problem: Problem) -> _Outcome:
        """Solve at ``problem.te_cap``. When the frozen positions' stress makes it
        unreachable: every loss lot kept under the plain risk model; then the plain model
        rebalancing (loss sales worth ``LIFTED_PREFERENCE`` of their tax: sold for TE, not
        for tax); the cap relaxed, still rebalancing, when even that fails (the class
        explains why)."""
        attempt = self._solve(problem)
        if attempt.sells is not None:
            return self._solved(problem, attempt)
        if not attempt.infeasible:
            return _hold(problem, f"solver failed ({attempt.error})")
        if problem.stressed:
            frozen = (f"TE budget {problem.te_cap:.3%} unreachable with the frozen positions "
                      f"at {problem.frozen_stress:g}x volatility ({problem.frozen()})")
            plain = problem.unstressed()
            for derive, what in ((Problem.without_harvests, "no new harvest"),
                                 (_rebalancing, REBALANCING)):
                candidate = derive(plain)  # built only when the one before fails
                outcome = self._solve(candidate)
                if outcome.sells is not None:
                    solved = self._solved(candidate, outcome)
                    return replace(solved, reason="; ".join(filter(None, (
                        solved.reason, f"{frozen}: {what}"))))
            outcome = self._pass(candidate)  # the rebalancing problem, relaxed
            return replace(outcome, reason=f"{frozen}; relaxed under {REBALANCING}; "
                           f"{outcome.reason}")
        floor = self._solve(problem, min_te=True)
        if floor.sells is None:
            what = "hard constraints jointly infeasible" if floor.infeasible else "minimum-TE solve failed"
            return _hold(problem, f"{what} ({floor.error}); {problem.frozen()}")
        te_min = problem.program_te(problem.weights(floor.sells, floor.buys))
        limit = self.settings.te_limit
        cap = max(problem.te_cap, te_min * (1 + self.settings.relax_margin))
        if te_min <= limit < cap:  # reachable, if only just: the limit holds
            cap = limit
        relaxed = problem.with_te_cap(cap)
        # a fast path's infeasible verdict that the minimum TE contradicts goes to the reference
        attempt = self._solve(relaxed, reference=te_min <= problem.te_cap)
        note = ""
        if attempt.sells is None:
            attempt, note = floor, f"; the decision at that bound failed ({attempt.error}), kept the minimum-TE book"
        bound = f"TE limit {limit:.3%}" if cap > limit else f"TE budget {problem.te_cap:.3%}"
        reach = "unreachable" if te_min > problem.te_cap else "only just reachable"
        reason = (
            f"{bound} {reach} under the hard constraints: minimum TE {te_min:.3%}, solved at "
            f"{cap:.3%} ({problem.frozen()}){note}"
        )
        return _Outcome(relaxed, attempt, "relaxed" if cap > limit else "optimal", reason, te_min)

    def _solved(self, problem: Problem, attempt: Attempt) -> _Outcome:
        """A trade within the bound asked for: ``relaxed`` when a transition's glide path
        set that bound above the limit."""
        limit = self.settings.te_limit
        if problem.te_cap <= limit:
            return _Outcome(problem, attempt, "optimal")
        return _Outcome(problem, attempt, "relaxed", f"transition glide path: TE bound "
                        f"{problem.te_cap:.3%} above the {limit:.3%} limit")

    def _solve(
        self,
        problem: Problem,
        *,
        min_te: bool = False,
        reference: bool = False,
    ) -> Attempt:
        """Solve (the fast path first, unless ``reference``) and accept
        only a trade that keeps every constraint; the reference solves what the fast path
        cannot. A bound below :attr:`Problem.te_floor` is infeasible without a solve."""
        if not min_te and problem.te_floor > problem.te_cap:
            return Attempt(None, None, True, f"certified without a solve: the positions the "
                           f"bounds hold read {problem.te_floor:.3%} alone", None)
        solved = problem.with_te_cap(problem.te_cap * (1 - TE_MARGIN))
        attempt = None
        if self.method == "fast" and not reference:
            fast = self._fast.solve(solved, min_te=min_te)
            attempt = _checked(problem, fast, min_te)
            if attempt.sells is not None or attempt.infeasible:
                return attempt
        if self.method == "fast" and problem.lot_weight.size > REFERENCE_MAX_SLOTS:
            failed = attempt.error if attempt is not None else "fast path not certain"
            return Attempt(None, None, False, f"{failed}; the cvxpy reference is not tried "
                           f"beyond {REFERENCE_MAX_SLOTS:,} lot slots (its compiled program "
                           "outgrows memory)", None)
        return _checked(problem, self.program(problem.shape).solve(solved, min_te=min_te), min_te)

    @staticmethod
    def _result(state: AccountState, outcome: _Outcome, start: float) -> Decision:
        problem, attempt = outcome.problem, outcome.attempt
        value = state.value
        sells, buys = attempt.sells, attempt.buys
        weights = problem.weights(sells, buys)
        gains = problem.realized * sells * value
        decision = Decision(
            status=outcome.status,
            reason=outcome.reason,
            weights=weights,
            cash=float(1.0 - weights.sum()),
            sell_shares=sells * value / state.price[:, None],
            buy_shares=buys * value / state.price,
            realized_short=float(gains[~state.long_term].sum()),
            realized_long=float(gains[state.long_term].sum()),
            disallowed=float((problem.washed_loss * sells).sum() * value),
            te=problem.tracking_error(weights),
            te_cap=problem.te_cap,
            te_min=outcome.te_min,
            turnover=float(sells.sum() + buys.sum()),
            solver=attempt.solver,
            solve_ms=1e3 * (time.perf_counter() - start),
            program_te=problem.program_te(weights),
        )
        if outcome.status != "optimal":
            logger.warning("%s in %.1f ms: %s", outcome.status, decision.solve_ms, outcome.reason)
        return decision


def _may_improve(problem: Problem, released: Problem, first: _Outcome,
                 freed: np.ndarray | None = None) -> bool:
    """Whether a pass on ``released`` may improve on the first: unless the first solved
    ``problem`` itself and gave its duals, and the release prices risk alike (it does not
    where a name the first pass priced whole for its harvest keeps its losses), it may; else
    where a ``freed`` purchase (by default those ``released`` frees) has a negative reduced
    cost at the first pass's trade. Weak duality bounds the gain otherwise: ``released``
    only frees those purchases and keeps loss lots, so its optimum is no better than that of
    ``problem`` with the purchases freed, which the first trade solves (for the deeper half,
    freed are every candidate, as its own second pass may free any)."""
    attempt, duals = first.attempt, first.attempt.duals
    if first.problem is not problem or duals is None or (
            released.program_risk is not problem.program_risk):
        return True
    if freed is None:
        freed = released.buy_upper > problem.buy_upper
    weights = problem.weights(attempt.sells, attempt.buys)
    return bool((released.buy_reduced_cost(weights, duals)[freed] < 0).any())


def _rank(outcome: _Outcome, problem: Problem) -> tuple[bool, bool, float, float]:
    """Within the limit first, then within the account's cash band, then the lower TE
    bound, then the lower objective of ``problem`` (the decision as first posed: both
    passes measured alike)."""
    attempt = outcome.attempt
    return (
        outcome.status == "relaxed",
        outcome.problem.band_waived,
        outcome.problem.te_cap,
        problem.objective(attempt.sells, attempt.buys),
    )


def _rebalancing(problem: Problem) -> Problem:
    """``problem`` rebalancing: its loss sales worth ``LIFTED_PREFERENCE`` of their tax."""
    return problem.rebalancing(LIFTED_PREFERENCE)


def _no_trade(problem: Problem) -> Attempt:
    return Attempt(np.zeros_like(problem.lot_weight), np.zeros_like(problem.held), False, "", None)


def _hold(problem: Problem, reason: str) -> _Outcome:
    """No trade, as a fallback."""
    return _Outcome(problem, _no_trade(problem), "fallback", reason)


def _checked(problem: Problem, attempt: Attempt, min_te: bool) -> Attempt:
    """``attempt`` with buys trimmed by what a solver's tolerance invests beyond the book (no
    borrowing, exactly), or a failure when it breaks a constraint beyond the slacks."""
    if attempt.sells is None:
        return attempt
    buys = attempt.buys
    excess = problem.weights(attempt.sells, buys).sum() - 1.0
    if excess > 0 and buys.sum() > 0:
        buys = buys * max(0.0, 1.0 - excess / buys.sum())
    broken = violations(problem, attempt.sells, buys, te=not min_te)
    if broken:
        return Attempt(None, None, False, f"{attempt.solver}: {'; '.join(broken)}", None)
    return replace(attempt, buys=buys)


def violations(problem: Problem, sells: np.ndarray, buys: np.ndarray, *, te: bool = True) -> list[str]:
    """The constraints a trade breaks beyond the acceptance slacks (``te``: check the TE cap)."""
    found = []
    weights = problem.weights(sells, buys)
    if te and problem.program_te(weights) > problem.te_cap:
        found.append(f"TE {problem.program_te(weights):.5%} above {problem.te_cap:.5%}")
    invested = weights.sum()
    if not 1 - problem.cash_band - LINEAR_SLACK <= invested <= 1 + LINEAR_SLACK:
        found.append(f"invested {invested:.8f} outside the cash band")
    if (problem.realized * sells).sum() > problem.gain_bound + LINEAR_SLACK:
        found.append("gain budget exceeded")
    if problem.turnover is not None and sells.sum() + buys.sum() > problem.turnover + LINEAR_SLACK:
        found.append("turnover cap exceeded")
    return found
