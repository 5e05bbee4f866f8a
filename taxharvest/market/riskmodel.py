"""Exponentially weighted factor risk model over stocks and sector proxies.

Factors: the market and one factor per sector. Each day the market factor return is the
weighted mean return of the trading stocks and sector ``k``'s factor return is the weighted
mean return of its trading stocks minus the market's (weights: equal, or those given, e.g.
benchmark weights drifting buy-and-hold: then the market factor is the benchmark and a sector
factor is its basket proxy's excess return, so a proxy carries almost no specific risk).
Every security has exposure 1 to the market and 1 to its sector (a proxy to its own
sector), so a stock's residual is its return minus its sector's mean. Averages rather than
a cross-sectional regression keep the update O(n) and avoid the market/sector collinearity.

Factor covariance follows the usual split of speeds: variances from an EWMA with
``half_life_vol`` (fast, so a crash shows within days: a model estimated on calm data
underestimates tracking error exactly when correlations and volatility jump), correlations
from an EWMA with ``half_life_corr``. Specific variances: EWMA of squared residuals with
``half_life_specific``, shrunk toward the mean of the same sector's stocks (proxies are not
shrunk), floored. All EWMAs are zero-mean and bias-corrected for their start.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from taxharvest.market.risk import TRADING_DAYS, FactorRisk


def _decay(half_life: float) -> float:
    if half_life <= 0:
        raise ValueError("half-lives must be positive")
    return 0.5 ** (1.0 / half_life)


class EwmaRiskModel:
    """Online factor risk model; feed it one day at a time with :meth:`update`.

    Args:
        sectors_all: ``(m,)`` sector index of every security (stocks, then proxies).
        half_life_vol: days; half-life of factor variances.
        half_life_corr: days; half-life of factor correlations.
        half_life_specific: days; half-life of specific variances (default: ``half_life_vol``).
        shrinkage: weight of the sector mean in each stock's specific variance.
        specific_floor: annualized floor of specific variance.
        proxy_mask: ``(m,)`` True for proxies: not used to form factor returns, not shrunk.
        weights: ``(m,)`` non-negative weights forming factor returns (default: equal over
            stocks); a security's weight counts only on days it trades.
        buy_and_hold: let the weights drift with each day's returns.
        n_sectors: number of sectors (default: ``max(sectors_all) + 1``).

    Attributes:
        n_updates_: days seen.
        factor_returns_: the last day's factor returns ``(1 + n_sectors,)``.
    """

    def __init__(self, sectors_all: np.ndarray, half_life_vol: float = 10.0,
                 half_life_corr: float = 42.0, half_life_specific: float | None = None,
                 shrinkage: float = 0.2, specific_floor: float = 1e-4,
                 proxy_mask: np.ndarray | None = None, weights: np.ndarray | None = None,
                 buy_and_hold: bool = False, n_sectors: int | None = None) -> None:
        self.sectors_all = np.asarray(sectors_all, dtype=np.int64)
        m = len(self.sectors_all)
        self.n_sectors = int(self.sectors_all.max()) + 1 if n_sectors is None else n_sectors
        self.proxy_mask = np.zeros(m, bool) if proxy_mask is None else np.asarray(proxy_mask, bool)
        base = np.ones(m) if weights is None else np.asarray(weights, float)
        if self.proxy_mask.shape != (m,) or base.shape != (m,) or np.any(base < 0):
            raise ValueError("proxy_mask and weights must be (m,), weights non-negative")
        if self.sectors_all.min() < 0 or self.sectors_all.max() >= self.n_sectors:
            raise ValueError(f"sectors_all must lie in 0..{self.n_sectors - 1}")
        if not 0.0 <= shrinkage <= 1.0:
            raise ValueError("shrinkage must lie between 0 and 1")
        self.half_life_vol, self.half_life_corr = half_life_vol, half_life_corr
        self.half_life_specific = half_life_vol if half_life_specific is None else half_life_specific
        self.shrinkage, self.specific_floor = shrinkage, specific_floor
        self.buy_and_hold = buy_and_hold
        self._weights = np.where(self.proxy_mask, 0.0, base)
        self._a_vol, self._a_corr = _decay(half_life_vol), _decay(half_life_corr)
        self._a_spec = _decay(self.half_life_specific)
        k = 1 + self.n_sectors
        self._exposures = np.zeros((m, k))
        self._exposures[:, 0] = 1.0
        self._exposures[np.arange(m), 1 + self.sectors_all] = 1.0
        self._exposures.flags.writeable = False  # shared by every FactorRisk returned
        self._var = np.zeros(k)
        self._cov = np.zeros((k, k))
        self._mass_vol = self._mass_corr = 0.0
        self._spec = np.zeros(m)
        self._spec_mass = np.zeros(m)
        self.n_updates_ = 0
        self.factor_returns_ = np.zeros(k)

    def update(self, returns_t: np.ndarray) -> None:
        """Fold in one day's returns ``(m,)`` (NaN for securities not trading)."""
        sector_mean = np.empty(self.n_sectors)
        market = _fold_day(np.asarray(returns_t, dtype=float), self._weights, self.sectors_all,
                           self._spec, self._spec_mass, self._a_spec, self.buy_and_hold,
                           sector_mean)
        f = self.factor_returns_ = np.concatenate(([market], sector_mean - market))
        a, b = self._a_vol, self._a_corr
        self._var = a * self._var + (1.0 - a) * f * f
        self._cov = b * self._cov + (1.0 - b) * f[:, None] * f
        self._mass_vol = a * self._mass_vol + 1.0 - a
        self._mass_corr = b * self._mass_corr + 1.0 - b
        self.n_updates_ += 1

    def risk(self) -> FactorRisk:
        """The current annualized :class:`FactorRisk`."""
        if self.n_updates_ == 0:
            raise RuntimeError("no returns seen yet: call update() first")
        var = self._var / self._mass_vol
        cov = self._cov / self._mass_corr
        scale = np.sqrt(np.diag(cov))
        safe = np.where(scale > 0, scale, 1.0)
        corr = cov / np.outer(safe, safe)
        np.fill_diagonal(corr, 1.0)
        vol = np.sqrt(var)
        factor_cov = corr * np.outer(vol, vol) * TRADING_DAYS
        specific = np.empty(len(self._spec))
        _specific_variance(self._spec, self._spec_mass, self.proxy_mask, self.sectors_all,
                           self.n_sectors, self.shrinkage, self.specific_floor / TRADING_DAYS,
                           specific)
        return FactorRisk(self._exposures, factor_cov, specific * TRADING_DAYS)


@njit(cache=True)
def _fold_day(r, weights, sectors, spec, spec_mass, a_spec, buy_and_hold, sector_mean):
    """One day: weighted sector means (into ``sector_mean``), the market return (returned),
    the specific EWMAs of the trading securities, and buy-and-hold weight drift."""
    k = sector_mean.shape[0]
    weight = np.zeros(k)
    total = np.zeros(k)
    for i in range(r.shape[0]):
        if r[i] == r[i]:
            weight[sectors[i]] += weights[i]
            total[sectors[i]] += weights[i] * r[i]
    all_weight = weight.sum()
    market = total.sum() / all_weight if all_weight > 0 else 0.0
    for s in range(k):
        sector_mean[s] = total[s] / weight[s] if weight[s] > 0 else market
    for i in range(r.shape[0]):
        if r[i] == r[i]:  # non-trading days leave the EWMA as is
            residual = r[i] - sector_mean[sectors[i]]
            spec[i] = a_spec * spec[i] + (1.0 - a_spec) * residual * residual
            spec_mass[i] = a_spec * spec_mass[i] + (1.0 - a_spec)
            if buy_and_hold:
                weights[i] *= 1.0 + r[i]
    return market


@njit(cache=True)
def _specific_variance(spec, spec_mass, proxy_mask, sectors, n_sectors, shrinkage, floor, out):
    """Daily specific variance: each stock's EWMA shrunk toward its sector's mean over the
    stocks seen (proxies are not shrunk); unseen securities take the pooled value; floored."""
    totals = np.zeros(n_sectors)
    counts = np.zeros(n_sectors)
    for i in range(spec.shape[0]):
        if spec_mass[i] > 0 and not proxy_mask[i]:
            totals[sectors[i]] += spec[i] / spec_mass[i]
            counts[sectors[i]] += 1
    overall = totals.sum() / counts.sum() if counts.sum() > 0 else 0.0
    for i in range(spec.shape[0]):
        s = sectors[i]
        pooled = totals[s] / counts[s] if counts[s] > 0 else overall
        if spec_mass[i] > 0:
            own = spec[i] / spec_mass[i]
            value = own if proxy_mask[i] else (1.0 - shrinkage) * own + shrinkage * pooled
        else:
            value = pooled
        out[i] = max(value, floor)


def estimate_risk(returns_window: np.ndarray, sectors_all: np.ndarray,
                  **model_args) -> FactorRisk:
    """Batch estimate: :class:`EwmaRiskModel` folded over the rows of ``(W, m)`` returns."""
    model = EwmaRiskModel(sectors_all, **model_args)
    for row in np.asarray(returns_window, dtype=float):
        model.update(row)
    return model.risk()


def market_risk_model(market, first_row: int = 0, proxy_sets: int = 1,
                      **model_args) -> EwmaRiskModel:
    """An :class:`EwmaRiskModel` over ``market``'s stocks then ``proxy_sets`` sets of one
    proxy per sector, to be updated from row ``first_row`` on. Factors are weighted like
    the benchmark and the basket proxies: benchmark weights drifted to ``first_row - 1``,
    then buy-and-hold."""
    k = len(market.sector_names)
    growth = np.prod(1.0 + np.nan_to_num(market.total_returns[:first_row]), axis=0)
    weights = np.concatenate([market.benchmark_weights * growth, np.zeros(k * proxy_sets)])
    sectors = np.concatenate([market.sectors, np.tile(np.arange(k), proxy_sets)])
    proxies = np.arange(len(sectors)) >= market.n_assets
    return EwmaRiskModel(sectors, proxy_mask=proxies, weights=weights, buy_and_hold=True,
                         n_sectors=k, **model_args)
