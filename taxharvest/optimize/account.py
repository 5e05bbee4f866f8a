"""The decision program's inputs: the account as plain arrays, its tax position, a policy's intent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taxharvest.market.risk import FactorRisk


def _array(name: str, value, shape: tuple[int, ...], dtype=float) -> np.ndarray:
    """A read-only copy of ``value`` with the given shape; finite when numeric."""
    array = np.array(value, dtype=dtype)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if dtype is float and not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite")
    array.setflags(write=False)
    return array


def _non_negative(name: str, array: np.ndarray) -> None:
    if (array < 0).any():
        raise ValueError(f"{name} must be non-negative")


def _in_range(name: str, value: float, low: float, high: float) -> None:
    if not (np.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


@dataclass(frozen=True)
class TaxPosition:
    """What a dollar realized this decision is worth to the client.

    A net realized loss of one character (short- or long-term) offsets gains at that
    character's marginal rate up to ``capacity_*`` dollars (the gains of that character the
    client still has this year, plus, for short-term, the $3,000 ordinary offset; negative when
    this year's losses already exceed them); beyond that it is a carryforward worth
    ``carry_rate`` per dollar (IRC §1211(b), §1212(b)). A net gain costs the marginal rate,
    except that it first absorbs a negative capacity at ``carry_rate``. The value is concave
    piecewise-linear in each net, so it is convex-representable; ``carry_rate`` may not exceed
    either marginal rate. Where the two rates are equal (every preset: a long-term loss
    offsets short-term gains at the short rate) the program pools the two capacities: the
    characters net before anything is carried. A gain is charged the loss-side rate of its
    character: a convex bound above the tax of a long-term gain (the true tax is concave
    where a gain's rate is below a loss's), so the program realizes long-term gains
    cautiously.
    """

    short_rate: float
    long_rate: float
    carry_rate: float
    capacity_short: float
    capacity_long: float

    def __post_init__(self) -> None:
        _in_range("short_rate", self.short_rate, 0.0, 1.0)
        _in_range("long_rate", self.long_rate, 0.0, 1.0)
        _in_range("carry_rate", self.carry_rate, 0.0, min(self.short_rate, self.long_rate))
        for name in ("capacity_short", "capacity_long"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite")

    @property
    def rates(self) -> np.ndarray:
        """Marginal rates ``(short, long)``."""
        return np.array([self.short_rate, self.long_rate])

    @property
    def capacities(self) -> np.ndarray:
        """Capacities ``(short, long)`` in dollars."""
        return np.array([self.capacity_short, self.capacity_long])


@dataclass(frozen=True)
class AccountState:
    """One account at one decision, over ``m`` securities (stocks, then replacements) and
    ``L`` lot slots per security.

    Attributes:
        price: ``(m,)`` prices, positive.
        shares: ``(m, L)`` shares per lot; an empty slot holds 0.
        basis: ``(m, L)`` total cost basis per lot (wash-sale adjustments included).
        long_term: ``(m, L)`` whether a sale today is long-term.
        cash: cash in dollars, non-negative.
        benchmark: ``(m,)`` benchmark weights, non-negative, summing to 1.
        buy_blocked: ``(m,)`` no purchase (a loss sale of it or an equivalent in the last 30
            days would be washed, IRC §1091).
        sell_blocked: ``(m,)`` no loss sale (it or an equivalent was bought in the last 30
            days); a forced sale (exclusion) of a loss lot is allowed and its loss disallowed.
        excluded: ``(m,)`` must be sold down to zero.
        risk: factor risk model over the ``m`` securities.
        tax: the client's tax position this decision.
        max_gain: net realized gain this decision may not exceed, in dollars (``None``: no
            budget); a transition's remaining yearly gain budget.
        group: ``(m,)`` substantially-identical classes (equal labels are identical), as
            ``Ledger.group``; ``None``: every security its own class.
        te_target: a transition's TE bound for this decision, above the limit (a glide path
            from a legacy book's TE down to the limit); ``None``: the limit.
    """

    price: np.ndarray
    shares: np.ndarray
    basis: np.ndarray
    long_term: np.ndarray
    cash: float
    benchmark: np.ndarray
    buy_blocked: np.ndarray
    sell_blocked: np.ndarray
    excluded: np.ndarray
    risk: FactorRisk
    tax: TaxPosition
    max_gain: float | None = None
    group: np.ndarray | None = None
    te_target: float | None = None

    def __post_init__(self) -> None:
        m, slots = np.shape(self.shares) if np.ndim(self.shares) == 2 else (-1, -1)
        if m < 1 or slots < 1:
            raise ValueError(f"shares must be a non-empty (m, L) array, got {np.shape(self.shares)}")
        arrays = {
            "price": _array("price", self.price, (m,)),
            "shares": _array("shares", self.shares, (m, slots)),
            "basis": _array("basis", self.basis, (m, slots)),
            "long_term": _array("long_term", self.long_term, (m, slots), bool),
            "benchmark": _array("benchmark", self.benchmark, (m,)),
            "buy_blocked": _array("buy_blocked", self.buy_blocked, (m,), bool),
            "sell_blocked": _array("sell_blocked", self.sell_blocked, (m,), bool),
            "excluded": _array("excluded", self.excluded, (m,), bool),
        }
        if self.group is not None:
            arrays["group"] = _array("group", self.group, (m,), np.int64)
        for name, array in arrays.items():
            object.__setattr__(self, name, array)
        if (self.price <= 0).any():
            raise ValueError("price must be positive")
        for name in ("shares", "basis", "benchmark", "group"):
            if getattr(self, name) is not None:
                _non_negative(name, getattr(self, name))
        if not (np.isfinite(self.cash) and self.cash >= 0):
            raise ValueError(f"cash must be finite and non-negative, got {self.cash}")
        if abs(self.benchmark.sum() - 1.0) > 1e-6:
            raise ValueError(f"benchmark must sum to 1, got {self.benchmark.sum()}")
        if self.risk.n_securities != m:
            raise ValueError(f"risk covers {self.risk.n_securities} securities, expected {m}")
        risk = (self.risk.exposures, self.risk.factor_cov, self.risk.specific_var)
        if not all(np.isfinite(part).all() for part in risk):
            raise ValueError("risk must be finite")
        if self.max_gain is not None and not np.isfinite(self.max_gain):
            raise ValueError("max_gain must be finite or None")
        if self.te_target is not None and not (np.isfinite(self.te_target) and self.te_target > 0):
            raise ValueError(f"te_target must be positive or None, got {self.te_target}")
        if self.value <= 0:
            raise ValueError("the account holds nothing: value must be positive")

    @property
    def n_securities(self) -> int:
        return len(self.price)

    @property
    def n_slots(self) -> int:
        return self.shares.shape[1]

    @property
    def value(self) -> float:
        """Account value: positions at ``price`` plus cash."""
        return float((self.shares * self.price[:, None]).sum() + self.cash)


@dataclass(frozen=True)
class Intent:
    """What a policy asks of one decision; the TE guarantee holds whatever it asks.

    Attributes:
        preference: ``(m,)`` harvest preference in ``[0, 1]`` per security: the weight on the
            tax value of its losses. 0: none of its lots is sold at a loss; it frees the
            security to be bought (a purchase would wash a loss sale of the same decision).
        te_budget: share ``(0, 1]`` of the TE limit this decision may use.
        harvest_threshold: minimum loss, as a fraction of a lot's value, for a loss lot to be
            sold; shallower loss lots stay (unless excluded).
    """

    preference: np.ndarray
    te_budget: float = 1.0
    harvest_threshold: float = 0.0

    def __post_init__(self) -> None:
        preference = np.array(self.preference, dtype=float)
        if preference.ndim != 1 or not np.isfinite(preference).all():
            raise ValueError("preference must be a finite 1-d array")
        if ((preference < 0) | (preference > 1)).any():
            raise ValueError("preference must be in [0, 1]")
        preference.setflags(write=False)
        object.__setattr__(self, "preference", preference)
        if not (np.isfinite(self.te_budget) and 0 < self.te_budget <= 1):
            raise ValueError(f"te_budget must be in (0, 1], got {self.te_budget}")
        if not (np.isfinite(self.harvest_threshold) and 0 <= self.harvest_threshold < 1):
            raise ValueError(f"harvest_threshold must be in [0, 1), got {self.harvest_threshold}")

    @classmethod
    def harvest_all(cls, m: int, te_budget: float = 1.0) -> Intent:
        """Full weight on every security's losses."""
        return cls(np.ones(m), te_budget)
