"""The measures of a run (DOMAIN §4), defined once and used by every workflow.

Inputs are per-step series, one entry per decision (the reset state first), and the few
end-of-run figures a series cannot carry (see :class:`Trajectory`). Conventions:

- ``years`` is calendar time between the first and last date / 365.25.
- Realized tracking error uses the daily active returns ``P_d / P_{d-1} - B_d / B_{d-1}``
  annualized with ``sqrt(252)``, whatever the decision cadence (DOMAIN §4); the rolling
  figure at a step reads the 63 trading days up to its end, and the decoupling every day's
  close. A trajectory without its days (:class:`Daily`) reads its steps instead,
  annualized with ``sqrt(252 / step_days)``, the rolling figure over ``round(63 /
  step_days)`` steps (13 weekly returns a window: a noisy estimate, whose maximum over a
  run reads high; the real decade's books read their whole-run TE 0-10% lower weekly).
- The bias statistic (the Barra bias test) checks the ex-ante TE against those same active
  returns: each step's active return over the ex-ante TE of the book held through it,
  scaled to the step (``z_t = a_t / (TE_t sqrt(step_days / 252))``), then the standard
  deviation of ``z`` over the run. 1 is an unbiased risk model; above 1 it underestimates
  the tracking error (``1 ± sqrt(2 / T)`` is about the 95% band of an unbiased model over
  ``T`` normal steps; fat tails widen it). Steps whose book is the benchmark (ex-ante TE
  under :data:`MIN_TESTED_TE`) test nothing and are left out. The robust figure is the
  median absolute deviation of ``z``, scaled to agree with the standard deviation on normal
  ``z``: well below the plain figure, it says a few tail steps make the bias. The calm
  figure leaves out the crash steps (:func:`crash_steps`), defined from the benchmark alone;
  the daily one standardizes each day's active return by its step's forecast (the test at a
  day's horizon).
- At liquidation, each side pays what selling everything adds to the client's tax of the
  last year (:data:`YearTax`, in brackets: the 20% band and NIIT on a large gain, netting,
  the ordinary offset): the portfolio its embedded gains by term (short-term lots at
  ordinary rates), the savings account's gain (long-term) and the carryforwards it left
  (what the portfolio added included); the benchmark its gain over its basis (long-term;
  its initial cost plus the dividends it reinvested, ``Trajectory.benchmark_basis``) with
  the client's own carryforwards. Both are measured from the tax the client owes with
  neither sold. The liquidated and step-up excesses are annualized ratios of after-tax
  wealth to the benchmark's, each relative to its start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from taxharvest.market.risk import TRADING_DAYS

ROLLING_DAYS = 63
INTERVENTIONS = ("projected", "relaxed", "fallback")
MIN_TESTED_TE = 1e-4  # annualized ex-ante TE below which the book is the benchmark
CRASH_DRAWDOWN = -0.20  # a bear market: the benchmark 20% below its running peak
CRASH_VOL_DAYS = 21  # the benchmark's trailing month of volatility ...
CRASH_VOL_MULTIPLE = 2.0  # ... above twice its median over the run
MAD_TO_SD = 1.4826  # median absolute deviation to standard deviation, normal data
#: The client's tax of the liquidation's year, in dollars, given the net short- and long-term
#: gains realized on top of the outside income and the ``(short, long)`` carryforwards in.
YearTax = Callable[[float, float, tuple[float, float]], float]


@dataclass(frozen=True)
class Daily:
    """Every trading day's close of a run, the reset day first (``(D + 1,)`` each): ``dates``
    (datetime64[D]), the account's value (``portfolio``), the benchmark's (``benchmark``),
    the day's deposits and withdrawals paid into both (``cash_flow``) and the account's cash
    (``cash``, when recorded)."""

    dates: np.ndarray
    portfolio: np.ndarray
    benchmark: np.ndarray
    cash_flow: np.ndarray
    cash: np.ndarray | None = None

    def active_returns(self) -> np.ndarray:
        """``(D,)`` each day's portfolio minus benchmark return (time-weighted)."""
        return (_growth(self.portfolio, self.cash_flow)
                - _growth(self.benchmark, self.cash_flow))


def _growth(values: np.ndarray, flows: np.ndarray | None) -> np.ndarray:
    """Time-weighted growth per period of a value series, its flows taken out."""
    flows = np.zeros(len(values)) if flows is None else flows
    return (values[1:] - flows[1:]) / values[:-1]


def _index(values: np.ndarray, flows: np.ndarray | None) -> np.ndarray:
    """Time-weighted index of a value series, 1 at the start."""
    return np.concatenate([[1.0], np.cumprod(_growth(values, flows))])


@dataclass(frozen=True)
class Trajectory:
    """One run as the measures see it.

    Attributes:
        dates: ``(T + 1,)`` datetime64[D] of each decision, the reset state first.
        portfolio, benchmark, savings: ``(T + 1,)`` dollar values after each step: the account
            (cash included), the benchmark, the tax savings account (invested in the benchmark).
        ex_ante_te: ``(T + 1,)`` ex-ante tracking error of the book decided at each step's
            start (under that day's risk model) and held through the step; first, the
            initial book's.
        tax_savings: ``(T + 1,)`` tax savings paid into the savings account during each step.
        harvested_losses: ``(T + 1,)`` losses realized during each step (allowed part).
        sold: ``(T + 1,)`` dollars sold during each step.
        n_trades, wash_sale_disallowed: ``(T + 1,)`` per step.
        guardrail_status: ``(T + 1,)`` the guardrail's status at each decision (``off`` without).
        step_days: trading days per step.
        unrealized_gain: the account's embedded gain at the horizon, dollars; of it
            ``unrealized_short_gain`` in lots held a year or less.
        realized_gain: net gain realized over the run, dollars.
        carry_base, carry_with: the ``(short, long)`` loss carryforwards out of the last
            settled year, the client's own without the portfolio and with it.
        benchmark_basis: the benchmark's cost basis at the horizon (default: its initial cost).
        cash_flow: ``(T + 1,)`` deposits (+) and withdrawals (-) during each step, paid into
            the account and the benchmark alike (zeros without flows). Returns are
            time-weighted: each step's growth excludes its flow.
        daily: the run's trading days (:class:`Daily`), which the realized TE, its rolling
            figure and the decoupling read (DOMAIN §4); without them (a run that recorded
            only its steps) they read the steps.
    """

    dates: np.ndarray
    portfolio: np.ndarray
    benchmark: np.ndarray
    savings: np.ndarray
    ex_ante_te: np.ndarray
    tax_savings: np.ndarray
    harvested_losses: np.ndarray
    sold: np.ndarray
    n_trades: np.ndarray
    wash_sale_disallowed: np.ndarray
    guardrail_status: np.ndarray
    step_days: int
    unrealized_gain: float
    realized_gain: float
    unrealized_short_gain: float = 0.0
    carry_base: tuple[float, float] = (0.0, 0.0)
    carry_with: tuple[float, float] = (0.0, 0.0)
    benchmark_basis: float | None = None
    cash_flow: np.ndarray | None = None
    daily: Daily | None = None

    @property
    def years(self) -> float:
        return float((self.dates[-1] - self.dates[0]).astype(int)) / 365.25

    @property
    def steps_per_year(self) -> float:
        return TRADING_DAYS / self.step_days

    def growth(self, values: np.ndarray) -> np.ndarray:
        """``(T,)`` time-weighted growth per step of a value series (its flows taken out)."""
        return _growth(values, self.cash_flow)

    def index(self, values: np.ndarray) -> np.ndarray:
        """``(T + 1,)`` time-weighted index of a value series, 1 at the start."""
        return _index(values, self.cash_flow)

    def active_returns(self) -> np.ndarray:
        """``(T,)`` per-step portfolio minus benchmark return (time-weighted)."""
        return self.growth(self.portfolio) - self.growth(self.benchmark)

    def realized(self) -> tuple[np.ndarray, np.ndarray, float]:
        """What realized TE reads: the active returns (daily, else per step), the date each
        ends on and how many there are a year."""
        if self.daily is None:
            return self.active_returns(), self.dates[1:], self.steps_per_year
        return self.daily.active_returns(), self.daily.dates[1:], float(TRADING_DAYS)

    def indexes(self) -> tuple[np.ndarray, np.ndarray]:
        """The portfolio's and the benchmark's time-weighted indexes, daily where recorded."""
        if self.daily is None:
            return self.index(self.portfolio), self.index(self.benchmark)
        d = self.daily
        return _index(d.portfolio, d.cash_flow), _index(d.benchmark, d.cash_flow)


def annualized(growth: float, years: float) -> float:
    """``growth ** (1 / years) - 1``."""
    return float(growth ** (1.0 / years) - 1.0)


def tax_alpha(benchmark_end: float, savings_end: float, years: float) -> float:
    """Pre-liquidation tax alpha: ``((V_bench(T) + S(T)) / V_bench(T)) ** (1 / years) - 1``."""
    return annualized((benchmark_end + savings_end) / benchmark_end, years)


def realized_te(active: np.ndarray, steps_per_year: float) -> float:
    """Standard deviation of per-step active returns, annualized; 0 with fewer than 2 steps."""
    return float(np.std(active, ddof=1) * np.sqrt(steps_per_year)) if len(active) > 1 else 0.0


def rolling_windows(trajectory: Trajectory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Realized TE over every window of 63 trading days (of ``round(63 / step_days)`` steps
    without daily values): the figures and the first and last date of each window's returns."""
    active, dates, per_year = trajectory.realized()
    window = ROLLING_DAYS if trajectory.daily is not None else max(
        2, round(ROLLING_DAYS / trajectory.step_days))
    if len(active) < window:
        return np.empty(0), dates[:0], dates[:0]
    windows = np.lib.stride_tricks.sliding_window_view(active, window)
    return (windows.std(axis=1, ddof=1) * np.sqrt(per_year), dates[:len(dates) - window + 1],
            dates[window - 1:])


def rolling_te(trajectory: Trajectory) -> np.ndarray:
    """``(T + 1,)`` the realized TE of the window ending with each step (NaN until full)."""
    te, _, last = rolling_windows(trajectory)
    out = np.full(len(trajectory.dates), np.nan)
    at = np.searchsorted(last, trajectory.dates)
    found = at < len(last)
    found[found] = last[at[found]] == trajectory.dates[found]
    out[found] = te[at[found]]
    return out


def standardized_active_returns(trajectory: Trajectory) -> np.ndarray:
    """``(T,)`` each step's active return over the ex-ante TE of the book held through it,
    scaled to the step; NaN where that book is the benchmark (TE under :data:`MIN_TESTED_TE`)."""
    te = trajectory.ex_ante_te[1:]
    scale = np.where(te >= MIN_TESTED_TE, te, np.nan) / np.sqrt(trajectory.steps_per_year)
    return trajectory.active_returns() / scale


def standardized_daily_returns(trajectory: Trajectory) -> np.ndarray:
    """Each day's active return over the ex-ante TE of the book held through it (its step's),
    scaled to a day; the steps' (:func:`standardized_active_returns`) without daily values."""
    if trajectory.daily is None:
        return standardized_active_returns(trajectory)
    days = trajectory.daily
    te = trajectory.ex_ante_te[np.searchsorted(trajectory.dates, days.dates[1:])]
    scale = np.where(te >= MIN_TESTED_TE, te, np.nan) / np.sqrt(TRADING_DAYS)
    return days.active_returns() / scale


def crash_steps(trajectory: Trajectory) -> np.ndarray:
    """``(T,)`` steps in a crash, from the benchmark alone: it ends the step in a bear market
    (below its running peak by more than :data:`CRASH_DRAWDOWN`), or its volatility over the
    steps of the trailing month (:data:`CRASH_VOL_DAYS`, this step the last) is above
    :data:`CRASH_VOL_MULTIPLE` times the run's median of that figure."""
    index = trajectory.index(trajectory.benchmark)
    drawdown = index[1:] / np.maximum.accumulate(index)[1:] - 1.0
    window = max(2, round(CRASH_VOL_DAYS / trajectory.step_days))
    returns = trajectory.growth(trajectory.benchmark)
    volatility = np.full(len(returns), np.nan)
    if len(returns) >= window:
        windows = np.lib.stride_tricks.sliding_window_view(returns, window)
        volatility[window - 1:] = windows.std(axis=1, ddof=1)
    # steps before a full window (NaN) are judged by their drawdown alone
    typical = np.nanmedian(volatility) if np.isfinite(volatility).any() else np.inf
    turbulent = volatility > CRASH_VOL_MULTIPLE * typical
    return (drawdown < CRASH_DRAWDOWN) | turbulent


def bias_statistic(z: np.ndarray) -> float:
    """Standard deviation of the finite standardized returns ``z``; NaN with fewer than 2."""
    z = z[np.isfinite(z)]
    return float(np.std(z, ddof=1)) if len(z) > 1 else np.nan


def robust_bias_statistic(z: np.ndarray) -> float:
    """The median absolute deviation of the finite ``z``, scaled to a standard deviation."""
    z = z[np.isfinite(z)]
    return float(MAD_TO_SD * np.median(np.abs(z - np.median(z)))) if len(z) > 1 else np.nan


def liquidated_excess(trajectory: Trajectory, year_tax: YearTax) -> float:
    """Annualized after-tax excess when portfolio + savings and benchmark are all sold at T."""
    t = trajectory
    savings_gain = t.savings[-1] - t.tax_savings.sum()
    unsold = year_tax(0.0, 0.0, t.carry_base)
    ours = t.portfolio[-1] + t.savings[-1] - (year_tax(
        t.unrealized_short_gain, t.unrealized_gain - t.unrealized_short_gain + savings_gain,
        t.carry_with) - unsold)
    basis = t.benchmark[0] if t.benchmark_basis is None else t.benchmark_basis
    bench = t.benchmark[-1] - (year_tax(0.0, t.benchmark[-1] - basis, t.carry_base) - unsold)
    # both sides started equal and saw the same flows: their after-tax wealth compares directly
    return annualized(ours / bench * t.benchmark[0] / t.portfolio[0], t.years)


def net_of_fee(annual: float, fee: float) -> float:
    """An annualized excess ``annual`` net of a management fee ``fee`` charged on the account's
    value each year: ``(1 + annual) * (1 - fee) - 1`` (about ``annual - fee``). The fee
    multiplies the account's growth by ``1 - fee`` a year, so it scales with the account, and
    it is not deductible (IRC §67(g) suspends miscellaneous itemized deductions)."""
    return (1.0 + annual) * (1.0 - fee) - 1.0


def compute_metrics(trajectory: Trajectory, *, year_tax: YearTax, te_limit: float,
                    fee: float = 0.0) -> dict:
    """Every scalar measure of DOMAIN §4 for one run.

    Args:
        trajectory: the run.
        year_tax: the client's tax of the liquidation's year (:data:`YearTax`).
        te_limit: the tracking-error limit; ``te_above_limit`` is the share of steps whose
            ex-ante TE exceeds it.
        fee: annual management fee as a fraction of value; ``tax_alpha_net_of_fee`` and
            ``after_tax_excess_liquidated_net_of_fee`` are those measures :func:`net_of_fee`.
    """
    t = trajectory
    years = t.years
    mean_value = float(t.portfolio.mean())
    alpha = tax_alpha(t.benchmark[-1], t.savings[-1], years)
    status = np.asarray(t.guardrail_status)
    active, _, per_year = t.realized()
    te = realized_te(active, per_year)
    rolling = rolling_windows(t)[0]
    ours, bench = t.indexes()
    relative = ours - bench
    liquidated = liquidated_excess(t, year_tax)
    z = standardized_active_returns(t)
    return {
        "tax_alpha": alpha,
        "tax_alpha_net_of_fee": net_of_fee(alpha, fee),
        "active_return": annualized(ours[-1], years) - annualized(bench[-1], years),
        "after_tax_excess_liquidated": liquidated,
        "after_tax_excess_liquidated_net_of_fee": net_of_fee(liquidated, fee),
        "after_tax_excess_step_up": annualized(
            (t.portfolio[-1] + t.savings[-1]) / t.benchmark[-1] * t.benchmark[0] / t.portfolio[0],
            years),
        "harvest_yield": -t.realized_gain / years / mean_value,
        "harvested_losses": float(t.harvested_losses.sum()),
        "tax_savings": float(t.tax_savings.sum()),
        "tracking_error": te,
        # a run shorter than the window has no rolling figure: its whole-run TE stands in
        "max_rolling_te": float(rolling.max()) if len(rolling) else te,
        # the decided books only (as te_above_limit): the reset book (a legacy transfer) is
        # no decision
        "max_ex_ante_te": float(t.ex_ante_te[1:].max()) if len(t.ex_ante_te) > 1
        else float(t.ex_ante_te[0]),
        "bias_statistic": bias_statistic(z),
        "bias_statistic_robust": robust_bias_statistic(z),
        "bias_statistic_calm": bias_statistic(z[~crash_steps(t)]),
        "bias_statistic_daily": bias_statistic(standardized_daily_returns(t)),
        "te_above_limit": float((t.ex_ante_te[1:] > te_limit).mean()),
        "decoupling": float(np.abs(relative).max()),
        "relative_decoupling": float(np.abs(ours / bench - 1.0).max()),
        "embedded_gain": t.unrealized_gain / float(t.portfolio[-1]),
        "turnover": float(t.sold.sum()) / years / mean_value,
        "n_trades": int(t.n_trades.sum()),
        "wash_sale_disallowed": float(t.wash_sale_disallowed.sum()),
        "guardrail_interventions": int(np.isin(status, INTERVENTIONS).sum()),
        "guardrail_relaxed": int((status == "relaxed").sum()),
        "years": years,
    }


def yearly_measures(trajectory: Trajectory) -> dict[str, dict[str, float]]:
    """Per calendar year of the step's date: harvested losses, dollars sold, realized TE (of
    the year's days, or steps)."""
    t = trajectory
    years = _year(t.dates[1:])
    active, dates, per_year = t.realized()
    active_years = _year(dates)
    return {
        str(year): {
            "harvested_losses": float(t.harvested_losses[1:][years == year].sum()),
            "sold": float(t.sold[1:][years == year].sum()),
            "te": realized_te(active[active_years == year], per_year),
        }
        for year in np.unique(years)
    }


def _year(dates: np.ndarray) -> np.ndarray:
    return dates.astype("datetime64[Y]").astype(int) + 1970
