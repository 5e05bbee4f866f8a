"""Tax-aware decision program: one convex optimization per decision, a pure function of the
account (:class:`AccountState`), a policy's :class:`Intent` and the account's :class:`Settings`."""

from taxharvest.optimize.account import AccountState, Intent, TaxPosition
from taxharvest.optimize.optimizer import Decision, TaxAwareOptimizer
from taxharvest.optimize.problem import Problem, Settings, build_problem

__all__ = [
    "AccountState",
    "Decision",
    "Intent",
    "Problem",
    "Settings",
    "TaxAwareOptimizer",
    "TaxPosition",
    "build_problem",
]
