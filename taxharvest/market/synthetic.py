"""Synthetic S&P-500-like market: factor returns under a hidden calm/stressed/crash regime.

Daily total return of stock ``i`` in sector ``k`` on day ``t`` in regime ``g``::

    r_it = beta_i * m_t + s_kt + h_i * e_it
    m_t  = mu_g + sqrt(a_g M) z_t,   s_kt = sqrt(b_g S) z_kt,   e_it = sqrt(c_g E) z_it

with unit-variance Student-t shocks ``z`` and a Markov chain over regimes. The calm
variances ``M, S, E`` and the factor tail index are solved in closed form so that the
crash-free chain (calm + stressed) reproduces the real 2010-2019 statistics stored as
``targets`` in ``data/synthetic.yaml``; the regime multipliers ``a, b, c`` encode how
volatility and correlation change in stress and crashes (see the YAML for sources).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from taxharvest.market.risk import TRADING_DAYS
from taxharvest.market.universe import (
    CRASH,
    GICS_SECTORS,
    REGIME_NAMES,
    MarketData,
    prices_from_returns,
    sector_proxies,
)

_MAX_LOSS = -0.95  # a day's total return is floored here so prices stay positive


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Targets(_Strict):
    """Statistics of the real crash-free sample the calm/stressed chain must reproduce."""

    index_vol: float = Field(gt=0)
    stock_vol: float = Field(gt=0)
    avg_corr: float = Field(gt=0, lt=1)
    sector_corr: float = Field(gt=0, lt=1)
    drawdowns_per_year: float = Field(ge=0)
    index_kurtosis: float
    stock_kurtosis: float
    index_return: float


class Regimes(_Strict):
    """Calm, stressed, crash: persistence, transitions, variance multipliers and drifts."""

    duration_days: tuple[float, float, float]
    exit_to: tuple[tuple[float, float, float], ...]
    market_var: tuple[float, float, float]
    sector_var: tuple[float, float, float]
    idio_var: tuple[float, float, float]
    drift: tuple[float, float]

    @model_validator(mode="after")
    def _check(self) -> Regimes:
        exits = np.asarray(self.exit_to)
        if exits.shape != (3, 3) or np.any(np.diag(exits) != 0) or np.any(exits < 0):
            raise ValueError("exit_to must be 3x3, non-negative, zero diagonal")
        if not np.allclose(exits.sum(1), 1.0) or exits[1, 0] <= 0:
            raise ValueError("exit_to rows must sum to 1 and stress must lead back to calm")
        if min(self.duration_days) < 1 or min(self.market_var + self.sector_var + self.idio_var) <= 0:
            raise ValueError("durations must be >= 1 day and variance multipliers positive")
        return self


class SyntheticConfig(_Strict):
    """Contents of ``data/synthetic.yaml``; every key can be overridden in the constructor."""

    targets: Targets
    drift: float
    regimes: Regimes
    sector_counts: tuple[int, ...]
    cap_sigma: float = Field(gt=0)
    beta_sd: float = Field(ge=0)
    idio_dispersion: float = Field(ge=0)
    idio_dof: float = Field(gt=2)
    price_median: float = Field(gt=0)
    price_sigma: float = Field(ge=0)
    dividend_yield: float = Field(ge=0)
    dividend_payers: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        if len(self.sector_counts) != len(GICS_SECTORS) or min(self.sector_counts) < 1:
            raise ValueError(f"sector_counts needs {len(GICS_SECTORS)} positive counts")
        return self


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        is_dict = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merge(base[key], value) if is_dict else value
    return merged


def load_config(**overrides: Any) -> SyntheticConfig:
    """The calibrated defaults with ``overrides`` merged in (nested dicts merge by key)."""
    text = resources.files("taxharvest.market").joinpath("data/synthetic.yaml").read_text()
    return SyntheticConfig.model_validate(_merge(yaml.safe_load(text), overrides))


def transition_matrix(regimes: Regimes, crashes: bool = True) -> np.ndarray:
    """Daily transition matrix; without crashes the crash state is never entered."""
    exits = np.array(regimes.exit_to, float)
    if not crashes:
        exits[:, CRASH] = 0.0
        exits[:CRASH] /= exits[:CRASH].sum(1, keepdims=True)
    leave = 1.0 / np.asarray(regimes.duration_days)
    return np.diag(1.0 - leave) + leave[:, None] * exits


def stationary(transition: np.ndarray) -> np.ndarray:
    """Stationary distribution of a regime chain (zero on states it never enters)."""
    states = len(transition)
    system = np.vstack([transition.T - np.eye(states), np.ones(states)])
    rhs = np.concatenate([np.zeros(states), [1.0]])
    return np.clip(np.linalg.lstsq(system, rhs, rcond=None)[0], 0.0, 1.0)


@dataclass(frozen=True)
class Calibration:
    """Daily calm factor variances, tail index, per-regime drifts and stationary mix."""

    market_var: float
    sector_var: float
    idio_var: float
    factor_dof: float
    drift: np.ndarray
    stationary: np.ndarray


def _pair_sum(x: np.ndarray, groups: np.ndarray) -> float:
    """Sum of ``x_i x_j`` over ordered pairs ``i != j`` in the same group."""
    totals = np.bincount(groups, x)
    return float(totals @ totals - x @ x)


def _mixture_moments(beta: np.ndarray, scale: np.ndarray, sectors: np.ndarray,
                     market: float, sector: float, idio: float) -> tuple[float, float, float]:
    """Mean stock vol (daily) and mean pairwise / within-sector correlation of the model."""
    sd = np.sqrt(beta**2 * market + sector + scale**2 * idio)
    everyone = np.zeros(len(beta), np.int64)
    sector_part = sector * _pair_sum(1.0 / sd, sectors)
    ones = np.ones(len(beta))
    avg = (market * _pair_sum(beta / sd, everyone) + sector_part) / _pair_sum(ones, everyone)
    pairs = _pair_sum(ones, sectors)  # none when every sector has a single member
    within = (market * _pair_sum(beta / sd, sectors) + sector_part) / pairs if pairs else np.nan
    return float(sd.mean()), avg, within


def calibrate(config: SyntheticConfig, beta: np.ndarray, idio_scale: np.ndarray,
              sectors: np.ndarray, crashes: bool = True) -> Calibration:
    """Solve the calm variances and factor tail index from ``config.targets``.

    Over the crash-free chain (the real sample has no crash) and this universe's betas,
    idiosyncratic scales and sector sizes: the time-averaged market, sector and
    idiosyncratic variances follow from the correlation targets by a triangular linear
    solve, refined a few times for cross-sectional dispersion (the mean of correlations is
    not the correlation of means), then scaled to the mean stock volatility. The factor tail
    index makes the equal-weighted index's kurtosis, a scale mixture over regimes, match.
    The calm drift makes the long-run mean index return of the generated chain ``drift``.
    """
    t, g = config.targets, config.regimes
    a, b, c = (np.asarray(v) for v in (g.market_var, g.sector_var, g.idio_var))
    pi = stationary(transition_matrix(g, crashes=False))
    n = len(beta)
    counts = np.bincount(sectors, minlength=len(config.sector_counts))
    same = float((counts * (counts - 1)).sum() / (n * (n - 1)))
    beta_pair = (beta.sum() ** 2 - (beta**2).sum()) / (n * (n - 1))
    target = np.array([t.avg_corr, t.sector_corr])
    aim = target.copy()
    for _ in range(6):
        sector = (aim[1] - aim[0]) / (1.0 - same)
        market = (aim[0] - same * sector) / beta_pair
        idio = 1.0 - np.mean(beta**2) * market - sector
        if min(market, sector, idio) <= 0:
            raise ValueError("correlation targets cannot be met: need sector_corr > avg_corr")
        vol, *achieved = _mixture_moments(beta, idio_scale, sectors, market, sector, idio)
        aim += np.nan_to_num(target - np.asarray(achieved))  # no pairs: nothing to refine
    level = t.stock_vol**2 / TRADING_DAYS / vol**2
    m2, s2, e2 = level * market / (pi @ a), level * sector / (pi @ b), level * idio / (pi @ c)
    weights = counts / n  # equal-weighted index: sector weights by member count
    index_var = (a * beta.mean() ** 2 * m2 + b * (weights**2).sum() * s2
                 + c * np.mean(idio_scale**2) * e2 / n)
    mixing = (pi @ index_var**2) / (pi @ index_var) ** 2
    kappa = (t.index_kurtosis + 3.0) / mixing
    dof = float(np.clip((4 * kappa - 6) / (kappa - 3), 4.5, 200.0)) if kappa > 3.02 else 200.0
    chain = stationary(transition_matrix(g, crashes))
    drift = np.array([0.0, *g.drift])
    drift[0] = (config.drift - chain[1:] @ drift[1:]) / chain[0]
    return Calibration(m2, s2, e2, dof, drift, chain)


def _easter(year: int) -> np.datetime64:
    """Gregorian Easter Sunday (Anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return np.datetime64(f"{year:04d}-{month:02d}-{day + 1:02d}")


def nyse_holidays(first_year: int, last_year: int) -> np.ndarray:
    """NYSE full-day holidays (NYSE Rule 7.2), observed dates, for a span of years.

    New Year's Day, Martin Luther King Jr. Day, Washington's Birthday, Good Friday, Memorial
    Day, Juneteenth (from 2022), Independence Day, Labor Day, Thanksgiving, Christmas; a
    Saturday holiday is observed on Friday (except New Year's Day), a Sunday one on Monday.
    """
    days = []
    for year in range(first_year, last_year + 1):

        def nth(month: int, weekday: int, n: int, year: int = year) -> np.datetime64:
            first = np.datetime64(f"{year:04d}-{month:02d}-01")
            offset = (weekday - (first.astype(np.int64) + 3) % 7) % 7  # 1970-01-01: Thursday
            return first + offset + 7 * (n - 1)

        def last_monday(month: int, year: int = year) -> np.datetime64:
            end = (np.datetime64(f"{year:04d}-{month:02d}") + 1).astype("datetime64[D]") - 1
            return end - (end.astype(np.int64) + 3) % 7

        fixed = [(1, 1), (7, 4), (12, 25)] + ([(6, 19)] if year >= 2022 else [])
        for month, day in fixed:
            date = np.datetime64(f"{year:04d}-{month:02d}-{day:02d}")
            weekday = (date.astype(np.int64) + 3) % 7  # Monday = 0
            if weekday == 5 and (month, day) != (1, 1):
                date -= 1
            elif weekday == 6:
                date += 1
            days.append(date)
        days += [nth(1, 0, 3), nth(2, 0, 3), _easter(year) - 2, last_monday(5), nth(9, 0, 1),
                 nth(11, 3, 4)]
    return np.array(sorted(days), dtype="datetime64[D]")


def business_days(start, count: int) -> np.ndarray:
    """``count`` NYSE trading days from ``start`` (rolled forward): weekdays less holidays,
    so that a calendar year holds about 252 of them, as real data does."""
    first_year = int(str(np.datetime64(start, "Y")))
    calendar = np.busdaycalendar(
        holidays=nyse_holidays(first_year, first_year + count // 240 + 2))
    first = np.busday_offset(np.datetime64(start, "D"), 0, roll="forward", busdaycal=calendar)
    return np.busday_offset(first, np.arange(count), roll="forward", busdaycal=calendar)


def allocate(counts, n: int) -> np.ndarray:
    """Split ``n`` into parts proportional to ``counts`` (largest remainder), each >= 1."""
    share = np.asarray(counts, float) / np.sum(counts) * (n - len(counts))
    parts = np.floor(share).astype(int) + 1
    parts[np.argsort(share - np.floor(share))[::-1][: n - parts.sum()]] += 1
    return parts


def student_t(rng: np.random.Generator, dof: float, size) -> np.ndarray:
    """Unit-variance Student-t draws."""
    return rng.standard_t(dof, size) * np.sqrt((dof - 2.0) / dof)


def regime_path(transition: np.ndarray, n_days: int, rng: np.random.Generator) -> np.ndarray:
    """Markov chain of regimes started from its stationary distribution."""
    cumulative = np.cumsum(transition, axis=1)
    uniforms = rng.random(n_days)
    start = np.cumsum(stationary(transition))
    state = min(int(np.searchsorted(start, uniforms[0], side="right")), 2)
    path = np.full(n_days, state, np.int8)
    for day in range(1, n_days):
        state = min(int(np.searchsorted(cumulative[state], uniforms[day], side="right")), 2)
        path[day] = state
    return path


class SyntheticMarket:
    """Deterministic synthetic market of ``n_assets`` stocks over ``years`` of business days.

    Args:
        n_assets: number of stocks (at least one per GICS sector).
        years: horizon; ``round(252 * years)`` trading days.
        start: first date (rolled forward to a weekday).
        seed: seed of the numpy Generator; same seed, same market.
        dividends: pay quarterly dividends (prices drop ex-dividend; total returns unchanged).
        crashes: allow the crash regime (off: the calm/stressed chain the targets describe).
        **overrides: any key of ``data/synthetic.yaml`` (nested dicts merge by key).

    Attributes:
        config: the validated configuration.
        calibration_: the solved :class:`Calibration`, set by :meth:`generate`.
    """

    def __init__(self, n_assets: int = 500, years: float = 10, start: str = "2025-01-02",
                 seed: int | None = 0, dividends: bool = False, crashes: bool = True,
                 **overrides: Any) -> None:
        if n_assets < len(GICS_SECTORS) or years <= 0:
            raise ValueError(f"need n_assets >= {len(GICS_SECTORS)} and years > 0")
        self.n_assets, self.years, self.start, self.seed = n_assets, years, start, seed
        self.dividends, self.crashes = dividends, crashes
        self.config = load_config(**overrides)

    def generate(self) -> MarketData:
        """Draw the market: universe, regimes, factor and idiosyncratic returns, prices."""
        cfg, n = self.config, self.n_assets
        n_days = max(2, round(TRADING_DAYS * self.years))
        rng = np.random.default_rng(self.seed)
        sectors = rng.permutation(np.repeat(np.arange(len(GICS_SECTORS)),
                                            allocate(cfg.sector_counts, n)))
        caps = rng.lognormal(0.0, cfg.cap_sigma, n)
        weights = caps / caps.sum()
        # betas average 1 both equally and cap weighted (the benchmark earns the market factor)
        both = np.column_stack([np.ones(n), weights])
        shock = rng.standard_normal(n)
        shock -= both @ np.linalg.lstsq(both, shock, rcond=None)[0]
        beta = np.clip(1.0 + cfg.beta_sd * shock, 0.2, 3.0)
        beta /= weights @ beta
        scale = rng.lognormal(0.0, cfg.idio_dispersion, n)
        scale /= np.sqrt(np.mean(scale**2))
        cal = calibrate(cfg, beta, scale, sectors, self.crashes)
        self.calibration_ = cal

        g = cfg.regimes
        regime = regime_path(transition_matrix(g, self.crashes), n_days, rng)
        market = (cal.drift[regime] / TRADING_DAYS
                  + np.sqrt(cal.market_var * np.asarray(g.market_var)[regime])
                  * student_t(rng, cal.factor_dof, n_days))
        sector = (np.sqrt(cal.sector_var * np.asarray(g.sector_var)[regime])[:, None]
                  * student_t(rng, cal.factor_dof, (n_days, len(GICS_SECTORS))))
        returns = student_t(rng, cfg.idio_dof, (n_days, n))  # built in place from here
        returns *= np.sqrt(cal.idio_var * np.asarray(g.idio_var)[regime])[:, None] * scale
        returns += beta * market[:, None]
        returns += sector[:, sectors]
        np.maximum(returns, _MAX_LOSS, out=returns)
        returns[0] = 0.0
        start_prices = rng.lognormal(np.log(cfg.price_median), cfg.price_sigma, n)
        dates = business_days(self.start, n_days)
        yields = self._dividend_yields(dates, rng) if self.dividends else None
        prices, dividends = prices_from_returns(start_prices, returns, yields)
        proxy_prices, proxy_names = sector_proxies(returns, sectors, weights, GICS_SECTORS)
        return MarketData(
            dates=dates,
            tickers=tuple(f"SYN{i:03d}" for i in range(n)),
            sectors=sectors,
            sector_names=GICS_SECTORS,
            prices=prices,
            dividends=dividends,
            splits=np.ones((n_days, n)),
            total_returns=returns,
            benchmark_weights=weights,
            proxy_prices=proxy_prices,
            proxy_names=proxy_names,
            regime=regime,
            source=(f"synthetic(n_assets={n}, years={self.years}, seed={self.seed}, "
                    f"dividends={self.dividends}, crashes={self.crashes})"),
        )

    def _dividend_yields(self, dates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Quarterly ex-dates (first weekday on or after the 15th, each payer's cycle month)."""
        cfg, n = self.config, self.n_assets
        payers = rng.random(n) < cfg.dividend_payers
        annual = payers * rng.lognormal(0.0, 0.5, n)
        annual *= cfg.dividend_yield * n / max(annual.sum(), 1e-12)
        cycle = rng.integers(0, 3, n)
        months = dates.astype("datetime64[M]")
        ex_day = np.busday_offset(months + np.timedelta64(14, "D"), 0, roll="forward")
        is_ex = dates == ex_day
        month_of_cycle = months.astype(int) % 3
        pays = is_ex[:, None] & (month_of_cycle[:, None] == cycle[None, :])
        pays[0] = False
        return pays * annual / 4.0


def market_statistics(market: MarketData) -> dict[str, float]:
    """The calibration statistics of a market, from its total returns after day 0.

    Index = equal-weighted mean of the day's returns over trading names (rebalanced daily).
    Correlations use the names that trade every day. A drawdown episode is a fall of 10% or
    more from a running peak of the index, counted once until a new peak.
    """
    returns = market.total_returns[1:]
    index = np.nanmean(returns, axis=1)
    full = returns[:, np.isfinite(returns).all(axis=0)]
    corr = np.corrcoef(full.T)
    sectors = market.sectors[np.isfinite(returns).all(axis=0)]
    off = ~np.eye(len(sectors), dtype=bool)
    same = (sectors[:, None] == sectors[None, :]) & off
    level = np.cumprod(1.0 + index)
    peak = np.maximum.accumulate(level)
    episodes = np.cumsum(level >= peak)[level / peak - 1.0 <= -0.10]
    years = len(index) / TRADING_DAYS
    centered = index - index.mean()
    stock_dev = returns - np.nanmean(returns, axis=0)
    stock_kurt = np.nanmean(stock_dev**4, axis=0) / np.nanmean(stock_dev**2, axis=0) ** 2 - 3
    return {
        "index_vol": float(index.std() * np.sqrt(TRADING_DAYS)),
        "stock_vol": float(np.mean(np.nanstd(returns, axis=0)) * np.sqrt(TRADING_DAYS)),
        "avg_corr": float(corr[off].mean()),
        "sector_corr": float(corr[same].mean()),
        "drawdowns_per_year": len(np.unique(episodes)) / years,
        "index_kurtosis": float(np.mean(centered**4) / np.mean(centered**2) ** 2 - 3.0),
        "stock_kurtosis": float(np.median(stock_kurt[np.isfinite(stock_kurt)])),
        "index_return": float(index.mean() * TRADING_DAYS),
    }


def regime_statistics(market: MarketData) -> dict[str, dict[str, float]]:
    """Per-regime index volatility, mean stock volatility and average pairwise correlation."""
    out = {}
    returns = market.total_returns
    for code, name in enumerate(REGIME_NAMES):
        days = np.flatnonzero(market.regime == code)
        days = days[days > 0]
        if len(days) < 20:
            continue
        block = returns[days][:, np.isfinite(returns[days]).all(axis=0)]
        corr = np.corrcoef(block.T)
        out[name] = {
            "days": float(len(days)),
            "index_vol": float(block.mean(axis=1).std() * np.sqrt(TRADING_DAYS)),
            "stock_vol": float(block.std(axis=0).mean() * np.sqrt(TRADING_DAYS)),
            "avg_corr": float(corr[~np.eye(len(corr), dtype=bool)].mean()),
        }
    return out

