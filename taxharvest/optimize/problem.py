"""One decision as numbers in weight units (dollars over account value), shared by both solvers."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import cached_property

import numpy as np

from taxharvest.guardrails import factor_loadings
from taxharvest.optimize.account import AccountState, Intent


@dataclass(frozen=True)
class Settings:
    """The account's standing rules and the program's fixed prices.

    Attributes:
        te_limit: annualized ex-ante tracking-error limit (the mandate).
        te_aversion: TE penalty, as a share of the book, at TE equal to the limit; the penalty
            is ``te_aversion * (TE / te_limit)^2`` (quadratic: a variance price). The program
            is myopic while an active position outlives its decision (a wash window holds it
            30 days, a swap-back waits for a gain small enough to realize), so the price is
            set for a position held over several decisions: 3e-3 against 1e-3 cut the
            ten-year decoupling by a third on the real decade and on the synthetic paths
            (README, "Results").
        cost_bps: trading cost per dollar traded (sells and buys), in basis points.
        cash_band: post-trade cash may be anywhere in ``[0, cash_band]`` of the book; positive
            (a band, not a point: the solvers need an interior).
        max_turnover: optional cap on dollars traded (sells plus buys) over the book.
        relax_margin: a relaxed decision is solved at ``min TE * (1 + relax_margin)``.
        min_harvest: loss sales of one security below this share of the book are not worth
            its wash window: the second pass drops them and lets the security be bought (it
            also makes the harvested set robust to a solver's residue).
        frozen_stress: the volatility multiple at which the program prices the specific
            risk of the active weights that wash windows freeze for 30 days (names that may
            not be bought back, replacements whose losses may not be sold, what this decision
            harvests or buys of a name holding loss lots, a harvested name's whole
            underweight): the TE bound holds for ``TE^2 + (stress^2 - 1) TE_frozen^2``,
            ``TE_frozen`` their specific risk (:attr:`Problem.program_risk`: their factor
            exposures can be hedged by the next decision). Crashes triple volatility or more
            (DOMAIN §6), and a frozen position cannot be repaired before its window ends. At
            3 every guarded decision of the gfc-2008 and covid-2020 templates stays inside
            the limit (12 paths each; README, "Results"); 1 turns it off.
    """

    te_limit: float = 0.01
    te_aversion: float = 3e-3
    cost_bps: float = 2.0
    cash_band: float = 0.001
    max_turnover: float | None = None
    relax_margin: float = 1e-3
    min_harvest: float = 1e-5
    frozen_stress: float = 3.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.te_limit) and self.te_limit > 0):
            raise ValueError(f"te_limit must be positive, got {self.te_limit}")
        for name in ("te_aversion", "cost_bps"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be finite and non-negative")
        if not 0 < self.cash_band < 1:
            raise ValueError(f"cash_band must be in (0, 1), got {self.cash_band}")
        if self.max_turnover is not None and not self.max_turnover > 0:
            raise ValueError(f"max_turnover must be positive, got {self.max_turnover}")
        if not (np.isfinite(self.min_harvest) and self.min_harvest >= 0):
            raise ValueError(f"min_harvest must be finite and non-negative, got {self.min_harvest}")
        if not (np.isfinite(self.frozen_stress) and self.frozen_stress >= 1):
            raise ValueError(f"frozen_stress must be at least 1, got {self.frozen_stress}")
        if not 0 < self.relax_margin < 1:
            raise ValueError(f"relax_margin must be in (0, 1), got {self.relax_margin}")

    @property
    def risk_price(self) -> float:
        """``kappa`` of the penalty ``kappa * TE^2``."""
        return self.te_aversion / self.te_limit**2

    @property
    def trade_cost(self) -> float:
        return self.cost_bps * 1e-4


@dataclass(frozen=True)
class Duals:
    """A solve's Lagrange multipliers in the objective's units: ``risk`` multiplies the
    program's squared TE (the penalty's price plus the TE bound's), ``buy`` is the linear
    rows' price of a unit of weight bought (the cash band, the turnover cap), ``sell`` ``(m,
    L)`` each lot's reduced cost per unit of weight sold (NaN where the lot was no variable)."""

    risk: float
    buy: float
    sell: np.ndarray


@dataclass(frozen=True)
class ProgramRisk:
    """``q(a) = ||loadings a + offset||^2 + sum(specific_sd^2 a^2) + 2 linear' a + constant``
    over active weights ``a``: the program's (convex) squared TE."""

    loadings: np.ndarray
    specific_sd: np.ndarray
    offset: np.ndarray
    linear: np.ndarray
    constant: float

    def te(self, active: np.ndarray) -> float:
        exposure = self.loadings @ active + self.offset
        square = (exposure @ exposure + np.sum((self.specific_sd * active) ** 2)
                  + 2 * self.linear @ active + self.constant)
        return float(np.sqrt(max(square, 0.0)))

    def gradient(self, active: np.ndarray) -> np.ndarray:
        """``dq/da``, the squared TE's gradient."""
        exposure = self.loadings @ active + self.offset
        return 2 * (self.loadings.T @ exposure + self.specific_sd**2 * active + self.linear)


@dataclass(frozen=True)
class Problem:
    """Minimize ``tax + kappa TE^2 + cost * traded`` over lot sales ``s`` and buys ``b``.

    Weights are post-trade ``w = held - sum_j s_ij + b_i`` over ``m`` securities; cash is
    ``1 - sum(w)``. Tax: the lot sales' net realized gain per character,
    ``N_c = sum coefficient_c * s`` (losses scaled by the intent's preference), costs
    ``rate_c N_c + excess_c pos(-N_c - capacity_c)`` with ``excess = rate - carry_rate``.
    Constraints: ``sell_lower <= s <= sell_upper``, ``0 <= b <= buy_upper``,
    ``1 - cash_band <= sum(w) <= 1`` (:attr:`cash_band`), ``TE_program(w) <= te_cap``,
    ``sum(realized * s) <= gain_budget`` (when given) and ``sum(s) + sum(b) <= turnover`` (when
    given). The program's TE and penalty price the frozen positions at ``frozen_stress`` times
    their volatility (:attr:`program_risk`); :meth:`tracking_error` is the plain model's.

    Attributes (arrays ``(m, L)`` per lot, ``(m,)`` per security):
        lot_weight: value of each lot over the book.
        held: current weights.
        sell_lower / sell_upper: bounds of each lot's sale (lower: excluded, sold in full).
        buy_upper: 1 where a security may be bought, else 0.
        realized: realized gain per unit weight sold (a washed loss realizes 0).
        coefficient_short / coefficient_long: the program's net gain per unit sold, by
            character (realized, losses times preference); where the two rates are equal,
            all in the first, with the year's capacity pooled (the characters net before
            a loss is carried).
        rates, excess, capacity: ``(2,)`` short, long.
        benchmark, loadings ``G`` (``(k, m)``, ``Sigma = G'G + diag(specific_sd^2)``),
        specific_sd: the risk model.
        te_cap, risk_price, trade_cost, gain_budget, turnover: as above.
        band: the account's cash band (:attr:`cash_band`: the one this pass keeps).
        min_harvest: see :class:`Settings`.
        washed_loss: loss per unit weight sold that is disallowed (a forced sale of a
            sell-blocked lot at a loss), positive; zero elsewhere.
        loss_sale: lots whose sale realizes a loss and may happen this decision.
        group: substantially-identical class of each security; excluded: must be sold out.
        buy_frozen_by_wash / buy_frozen_by_harvest: no buy because of a wash window, or
            because a loss lot of it (or of its class) may be sold this decision.
        loss_frozen: securities holding loss lots that may not be sold.
        locked: securities whose losses may not be sold for a while (bought in the last 30
            days), not excluded.
        trade_frozen: securities holding loss lots that this decision may sell or buy (the
            harvest candidates, not wash-blocked, not excluded): what it trades of one is
            frozen for 30 days, a harvest's underweight (no buy back) or a purchase (it locks
            the loss lots). Releasing a candidate to be bought leaves it so.
        sold_under: candidates under the benchmark that this decision was found to harvest
            (:meth:`harvest_priced`): a loss sale blocks the purchase for 30 days, so the
            whole active weight is frozen, not only what is sold.
        frozen_stress: see :class:`Settings`.
    """

    lot_weight: np.ndarray
    held: np.ndarray
    sell_lower: np.ndarray
    sell_upper: np.ndarray
    buy_upper: np.ndarray
    realized: np.ndarray
    coefficient_short: np.ndarray
    coefficient_long: np.ndarray
    rates: np.ndarray
    excess: np.ndarray
    capacity: np.ndarray
    benchmark: np.ndarray
    loadings: np.ndarray
    specific_sd: np.ndarray
    te_cap: float
    risk_price: float
    trade_cost: float
    band: float
    gain_budget: float | None
    turnover: float | None
    min_harvest: float
    washed_loss: np.ndarray
    loss_sale: np.ndarray
    group: np.ndarray
    excluded: np.ndarray
    buy_frozen_by_wash: np.ndarray
    buy_frozen_by_harvest: np.ndarray
    loss_frozen: np.ndarray
    locked: np.ndarray
    trade_frozen: np.ndarray
    sold_under: np.ndarray
    frozen_stress: float = 1.0

    @property
    def cash_band(self) -> float:
        """The cash this pass may leave: the account's band, or any where every security
        that could be bought holds a loss lot on offer. Sell-only in this pass, those wait
        for the pass that frees their purchase, and so do their sales' proceeds: the band
        would forbid every harvest. The optimizer prefers any outcome that keeps the band
        (:attr:`band_waived`)."""
        return self.band if not self.band_waived else 1.0

    @property
    def band_waived(self) -> bool:
        """Whether :attr:`cash_band` waives the account's band (see there)."""
        return not self.buy_upper.any() and bool(self.buy_frozen_by_harvest.any())

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(m, L, k)``, ``k`` the program's risk rows."""
        return (*self.lot_weight.shape, self.program_risk.loadings.shape[0])

    @cached_property
    def frozen_shift(self) -> np.ndarray:
        """``(m,)`` per security, the weight its frozen active position is measured from minus
        the benchmark weight, or NaN when it is not frozen. Wash-blocked (no buy back), locked
        (no loss sale) and :attr:`sold_under` securities: their whole active weight (0). A
        security that may be harvested or bought here (:attr:`trade_frozen`): what this
        decision trades of it (``benchmark - held``); a candidate left alone adds nothing."""
        shift = np.where(self.trade_frozen,
                         self.benchmark - self.held, np.nan)
        whole = self.locked | self.buy_frozen_by_wash | self.sold_under
        return np.where(whole & ~self.excluded, 0.0, shift)

    @property
    def stressed(self) -> bool:
        return self.frozen_stress > 1 and bool(np.isfinite(self.frozen_shift).any())

    @cached_property
    def program_risk(self) -> ProgramRisk:
        """The TE the program bounds and prices: the plain model's, plus the specific risk of
        the frozen positions ``f = P (a + shift)`` at ``frozen_stress`` times its volatility:
        ``TE^2 + (stress^2 - 1) sum_i specific_i^2 f_i^2``. Their factor exposures (market,
        sector, style) are priced as they stand, by the plain model: the next decision can
        hedge them with what is not frozen (either proxy set, the other stocks), while a
        frozen name's own risk stays until its window ends. (Stressing the frozen factor
        exposures too, as if no hedge could follow, froze harvests at 64 names and still
        missed the books that broke the limit: README, "Results".)"""
        if not self.stressed:
            return ProgramRisk(self.loadings, self.specific_sd, np.zeros(len(self.loadings)),
                               np.zeros_like(self.specific_sd), 0.0)
        frozen = np.isfinite(self.frozen_shift)
        shift = np.where(frozen, self.frozen_shift, 0.0)
        stressed_var = (self.frozen_stress**2 - 1) * frozen * self.specific_sd**2
        return ProgramRisk(
            loadings=self.loadings,
            specific_sd=np.sqrt(self.specific_sd**2 + stressed_var),
            offset=np.zeros(len(self.loadings)),
            linear=stressed_var * shift,
            constant=float(stressed_var @ shift**2),
        )

    @cached_property
    def te_floor(self) -> float:
        """A lower bound of :meth:`program_te` over every trade the bounds allow: each
        security's specific terms at its best weight within its own sale and purchase bounds
        (the factor term and the joint rows dropped). Above ``te_cap`` it certifies the
        program infeasible without a solve: the positions that wash windows and exclusions
        hold in place already break the bound."""
        risk = self.program_risk
        lowest = self.held - self.sell_upper.sum(axis=1) - self.benchmark
        highest = self.held - self.sell_lower.sum(axis=1) + self.buy_upper - self.benchmark
        var = risk.specific_sd**2
        best = np.clip(-risk.linear / np.where(var > 0, var, 1.0), lowest, highest)
        square = float(var @ best**2 + 2 * risk.linear @ best) + risk.constant
        return float(np.sqrt(max(square, 0.0)))

    @cached_property
    def lot_tax(self) -> np.ndarray:
        """Linear tax per unit weight sold at the full marginal rates."""
        return self.rates[0] * self.coefficient_short + self.rates[1] * self.coefficient_long

    @cached_property
    def gain_bound(self) -> float:
        """``gain_budget``, or a bound no sale can reach when there is none."""
        if self.gain_budget is not None:
            return self.gain_budget
        return float((self.sell_upper * np.clip(self.realized, 0, None)).sum()) + 1.0

    def weights(self, sells: np.ndarray, buys: np.ndarray) -> np.ndarray:
        return self.held - sells.sum(axis=1) + buys

    def tracking_error(self, weights: np.ndarray) -> float:
        """Ex-ante TE under the plain risk model."""
        return _te(weights - self.benchmark, self.loadings, self.specific_sd)

    def program_te(self, weights: np.ndarray) -> float:
        """The TE the program bounds (frozen positions stressed)."""
        return self.program_risk.te(weights - self.benchmark)

    def objective(self, sells: np.ndarray, buys: np.ndarray) -> float:
        """The program's objective at a trade (for comparing solvers)."""
        net = np.array([(self.coefficient_short * sells).sum(), (self.coefficient_long * sells).sum()])
        tax = self.rates @ net + self.excess @ np.clip(-net - self.capacity, 0, None)
        te = self.program_te(self.weights(sells, buys))
        return float(tax + self.risk_price * te**2 + self.trade_cost * (sells.sum() + buys.sum()))

    def buy_reduced_cost(self, weights: np.ndarray, duals: Duals) -> np.ndarray:
        """``(m,)`` the Lagrangian's change per unit of weight bought at ``weights`` under a
        solve's ``duals``: where it is negative, a purchase would improve the decision."""
        gradient = self.program_risk.gradient(weights - self.benchmark)
        return self.trade_cost + duals.risk * gradient + duals.buy

    def with_te_cap(self, te_cap: float) -> Problem:
        return self._derived(te_cap=te_cap)

    def rebalancing(self, worth: float) -> Problem:
        """The same decision with every optional loss sale worth ``worth`` of its tax value:
        loss lots sold for TE, not for tax (the forced sales of excluded lots keep theirs)."""
        loss = (self.realized < 0) & ~self.excluded[:, None]
        return self._derived(
            coefficient_short=np.where(loss, worth * self.coefficient_short, self.coefficient_short),
            coefficient_long=np.where(loss, worth * self.coefficient_long, self.coefficient_long))

    def unstressed(self) -> Problem:
        """The same decision under the plain risk model."""
        return self._derived(frozen_stress=1.0)

    def without_harvests(self) -> Problem:
        """The same decision with every loss lot kept (excluded ones still sold, their
        classes not bought)."""
        forced = (self.loss_sale & self.excluded[:, None]).any(axis=1)
        freed = self.buy_frozen_by_harvest & ~_classes_of(self.group, forced)
        return self._keeping_losses(freed, ~self.excluded)

    def harvest_priced(self, sells: np.ndarray) -> Problem | None:
        """The decision re-posed where ``sells`` harvest a candidate held under the benchmark
        that is not yet :attr:`sold_under`: its pricing measured the frozen position from the
        held weight (the sale alone), but the sale blocks buying it back, so its whole
        underweight stays for 30 days (the decision is priced as it will stand); ``None``
        when there is none. (A candidate over the benchmark stays priced by what it sells,
        which bounds the underweight a sale can leave.)"""
        harvested = (sells * self.loss_sale).sum(axis=1) > self.min_harvest
        found = harvested & self.trade_frozen & ~self.sold_under & (self.held < self.benchmark)
        if not found.any():
            return None
        return self._derived(sold_under=self.sold_under | found)

    def released(self, sells: np.ndarray) -> Problem | None:
        """The second pass after a first decision's ``sells``: a security that may not be
        bought only because loss lots of its class may be sold, and whose class sold less than
        ``min_harvest`` at a loss, may be bought, and its class keeps its loss lots; ``None``
        when there is none. A purchase then never meets a loss sale of its class in one
        decision (IRC §1091)."""
        harvested = (sells * self.loss_sale).sum(axis=1) > self.min_harvest
        freed = self.buy_frozen_by_harvest & ~_classes_of(self.group, harvested)
        if not freed.any():
            return None
        return self._keeping_losses(freed, _classes_of(self.group, freed))

    def deeper_half(self) -> Problem | None:
        """The decision with only the deeper half of its harvest candidates offered: a class
        whose deepest loss lot is shallower than the candidates' median may be bought and
        keeps its loss lots; ``None`` when no class is left so. Selling losers tilts the
        book toward winners (momentum, size, beta), and the losers are what hedges that
        tilt: with every loser sell-only a tight limit prices each harvest out, so the
        first pass harvests nothing and the second, freeing them all, keeps every loss.
        (Classes whose excluded members sell at a loss stay unbought, as everywhere.)"""
        candidates = self.buy_frozen_by_harvest
        if candidates.sum() < 2:
            return None
        deepest = np.where(self.loss_sale, self.realized, 0.0).min(axis=1)
        by_class = np.zeros(self.group.max() + 1)
        np.minimum.at(by_class, self.group, deepest)
        depth = by_class[self.group]
        forced = (self.loss_sale & self.excluded[:, None]).any(axis=1)
        shallow = (candidates & (depth > np.median(depth[candidates]))
                   & ~_classes_of(self.group, forced))
        if not shallow.any():
            return None
        return self._keeping_losses(shallow, _classes_of(self.group, shallow))

    def _keeping_losses(self, freed: np.ndarray, keeping: np.ndarray) -> Problem:
        """Securities ``keeping`` keep their loss lots (so none is :attr:`sold_under`);
        ``freed`` may be bought."""
        loss_lots = keeping[:, None] & self.loss_sale
        unsold = {"sold_under": self.sold_under & ~keeping} if (
            self.sold_under & keeping).any() else {}  # unchanged, the risk stays shared
        return self._derived(
            sell_upper=np.where(loss_lots, 0.0, self.sell_upper),
            buy_upper=np.where(freed, 1.0, self.buy_upper),
            loss_sale=self.loss_sale & ~loss_lots,
            buy_frozen_by_harvest=self.buy_frozen_by_harvest & ~freed,
            **unsold,
        )

    def _derived(self, **changes) -> Problem:
        """``replace(self, **changes)`` sharing the cached properties that read none of the
        changed fields (a decision's fallbacks derive several problems from one; the program
        risk costs 65 us to build at 500 stocks), without ``replace``'s ``__init__``."""
        unknown = changes.keys() - _FIELDS
        if unknown:
            raise TypeError(f"Problem has no field {', '.join(sorted(unknown))}")
        values = {name: value for name, value in vars(self).items() if name in _FIELDS}
        for name, reads in _CACHED_READS.items():
            if not reads & changes.keys():
                values[name] = getattr(self, name)
        derived = object.__new__(Problem)
        vars(derived).update(values, **changes)
        return derived

    def conflicts(self, tol: float = 1e-9) -> list[str]:
        """The hard constraints that cannot hold together, checked bound by bound."""
        found = []
        forced = self.sell_lower.sum()
        if self.turnover is not None and forced > self.turnover + tol:
            found.append(
                f"turnover cap {self.turnover:.2%} below the forced sales of excluded "
                f"securities ({forced:.2%} of the book)"
            )
        if self.gain_budget is not None:
            optional = (self.sell_upper - self.sell_lower) * np.clip(self.realized, None, 0)
            least_gain = (self.sell_lower * self.realized).sum() + optional.sum()
            if least_gain > self.gain_budget + tol:
                found.append(
                    f"gain budget {self.gain_budget:.3%} of the book below the gain the "
                    f"exclusions force ({least_gain:.3%} after every allowed loss)"
                )
        kept = (self.held - self.sell_lower.sum(axis=1)).sum()
        # nothing buyable here with the band kept (not waived): no pass may buy anything
        buyable = self.buy_upper.any()
        most_invested = kept + (
            (np.inf if self.turnover is None else self.turnover - forced) if buyable else 0.0
        )
        if most_invested < 1 - self.cash_band - tol:
            found.append(
                f"at most {min(most_invested, 1):.2%} of the book can be invested "
                f"({'no security may be bought' if not buyable else 'turnover cap'}), "
                f"cash band requires {1 - self.cash_band:.2%}"
            )
        return found

    def frozen(self) -> str:
        """What the bounds freeze, for a relaxation's reason: per kind, the securities whose
        frozen position is away from the benchmark (not a basket of an empty sector or a
        name not yet listed, which no purchase could reach either) and how far."""
        under = np.clip(self.benchmark - self.held, 0, None)
        over = np.clip(self.held - self.benchmark, 0, None)
        parts = [
            f"{int((mask & (amount > 0)).sum())} {label} ({amount[mask].sum():.2%} {side})"
            for label, mask, amount, side in (
                ("excluded", self.excluded, self.benchmark, "of the benchmark"),
                ("wash-blocked from buying", self.buy_frozen_by_wash, under, "under the benchmark"),
                ("not bought while their losses may be harvested",
                 self.buy_frozen_by_harvest & ~self.sold_under, under, "under the benchmark"),
                ("harvested here while under the benchmark", self.sold_under, under,
                 "under the benchmark"),
                ("with loss lots that may not be sold", self.loss_frozen, over,
                 "over the benchmark"),
            )
            if amount[mask].sum() > 0
        ]
        if self.gain_budget is not None:
            parts.append(f"realized-gain budget {max(self.gain_budget, 0.0):.2%} of the book")
        return "; ".join(parts) or "no frozen positions"


_FROZEN_READS = frozenset({"trade_frozen", "excluded", "benchmark", "held", "locked",
                           "buy_frozen_by_wash", "sold_under"})
_FIELDS = frozenset(field.name for field in fields(Problem))
#: The fields each cached property of :class:`Problem` reads.
_PROGRAM_RISK_READS = _FROZEN_READS | {"frozen_stress", "loadings", "specific_sd"}
_CACHED_READS = {
    "frozen_shift": _FROZEN_READS,
    "program_risk": _PROGRAM_RISK_READS,
    "te_floor": _PROGRAM_RISK_READS | {"sell_lower", "sell_upper", "buy_upper"},
    "lot_tax": frozenset({"rates", "coefficient_short", "coefficient_long"}),
    "gain_bound": frozenset({"gain_budget", "sell_upper", "realized"}),
}


def _te(active: np.ndarray, loadings: np.ndarray, specific_sd: np.ndarray) -> float:
    return float(np.sqrt(np.sum((loadings @ active) ** 2) + np.sum((specific_sd * active) ** 2)))


def _classes_of(group: np.ndarray, members: np.ndarray) -> np.ndarray:
    """The securities whose class holds one of ``members`` (a mask)."""
    marked = np.zeros(group.max() + 1, dtype=bool)
    marked[group[members]] = True
    return marked[group]


GAIN_SLACK = 1e-6  # share of the book: the net gain a decision inside the bound may round to
RATE_TOLERANCE = 1e-9  # short and long rates this close are one rate: the capacity is pooled


def build_problem(state: AccountState, intent: Intent, settings: Settings) -> Problem:
    """Translate an account, an intent and the settings into one :class:`Problem`."""
    m = state.n_securities
    if intent.preference.shape != (m,):
        raise ValueError(f"preference must have shape ({m},), got {intent.preference.shape}")
    value = state.value
    market = state.shares * state.price[:, None]
    lot_weight = market / value
    occupied = state.shares > 0
    gain = np.divide(market - state.basis, market, out=np.zeros_like(market), where=occupied)
    loss = gain < 0
    sell_blocked = state.sell_blocked[:, None]
    excluded = state.excluded[:, None]
    washed = loss & sell_blocked & occupied
    harvestable = (
        loss
        & occupied
        & ~sell_blocked
        & (intent.preference[:, None] > 0)
        & (-gain >= intent.harvest_threshold)
    )
    loadings = factor_loadings(state.risk)
    specific_sd = np.sqrt(np.asarray(state.risk.specific_var, dtype=float))
    te_cap = max(intent.te_budget * settings.te_limit, state.te_target or 0.0)
    sellable = (occupied & ~loss) | harvestable | (occupied & excluded)
    realized = np.where(washed, 0.0, gain)
    gain_budget = None if state.max_gain is None else state.max_gain / value
    weight = np.where(loss & ~excluded, intent.preference[:, None], 1.0)
    coefficient = weight * realized
    loss_sale = harvestable | (excluded & loss & ~washed)
    group = state.group if state.group is not None else np.arange(m)
    harvest_block = _classes_of(group, loss_sale.any(axis=1))
    wash_block = state.buy_blocked & ~state.excluded
    buy_upper = np.where(state.excluded | state.buy_blocked | harvest_block, 0.0, 1.0)
    candidates = harvest_block & ~state.excluded & ~state.buy_blocked
    tax = state.tax
    coefficient_short = np.where(state.long_term, 0.0, coefficient)
    coefficient_long = np.where(state.long_term, coefficient, 0.0)
    capacity = tax.capacities / value
    if np.isclose(tax.short_rate, tax.long_rate, rtol=0.0, atol=RATE_TOLERANCE):
        # one rate: the characters net before anything is carried (IRC §1222), so the year's
        # capacity is pooled (a long-term loss offsets short-term gains at the same rate)
        coefficient_short, coefficient_long = coefficient, np.zeros_like(coefficient)
        capacity = np.array([capacity.sum(), 0.0])
    problem = Problem(
        lot_weight=lot_weight,
        held=lot_weight.sum(axis=1),
        sell_lower=np.where(excluded, lot_weight, 0.0),
        sell_upper=np.where(sellable, lot_weight, 0.0),
        buy_upper=buy_upper,
        realized=realized,
        coefficient_short=coefficient_short,
        coefficient_long=coefficient_long,
        rates=tax.rates,
        excess=tax.rates - tax.carry_rate,
        capacity=capacity,
        benchmark=state.benchmark,
        loadings=np.ascontiguousarray(loadings),
        specific_sd=specific_sd,
        te_cap=te_cap,
        risk_price=settings.risk_price,
        trade_cost=settings.trade_cost,
        band=settings.cash_band,
        gain_budget=gain_budget,
        turnover=settings.max_turnover,
        min_harvest=settings.min_harvest,
        washed_loss=np.where(washed, -gain, 0.0),
        loss_sale=loss_sale,
        group=group,
        excluded=state.excluded,
        buy_frozen_by_wash=wash_block,
        buy_frozen_by_harvest=candidates,
        trade_frozen=candidates,
        sold_under=np.zeros(m, dtype=bool),
        loss_frozen=(loss & occupied & ~sellable).any(axis=1),
        locked=state.sell_blocked & ~state.excluded,
        frozen_stress=settings.frozen_stress,
    )
    # Inside the bound (the book, its cash invested like the index, within it under the
    # plain model) a decision realizes no net gain beyond what exclusions force: gains may
    # pay for the room a harvest needs, never for tracking alone, which the TE price would
    # buy at every decision. (The stressed TE as the trigger let a book with exclusions,
    # always above it, turn over half its value a year.)
    invested = problem.held + max(state.cash / value, 0.0) * state.benchmark
    if problem.tracking_error(invested) > te_cap:
        return problem
    if not ((problem.sell_upper > 0) & (realized < 0)).any():  # no loss to pay for a gain
        gain_lots = (realized > 0) & ~excluded
        return replace(problem, sell_upper=np.where(gain_lots, 0.0, problem.sell_upper))
    # a hair above the forced gain keeps the budget's row an interior for the solvers
    forced = max(float((problem.sell_lower * realized).sum()), 0.0) + GAIN_SLACK
    return replace(problem, gain_budget=forced if gain_budget is None else min(gain_budget, forced))
