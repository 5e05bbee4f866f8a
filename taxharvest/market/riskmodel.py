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
            raise ValueError("shrinkage must lie in [0, 1]")
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
        r = np.asarray(returns_t, dtype=float)
        trading = r == r  # not NaN; cheaper than np.isfinite at this size
        r = np.where(trading, r, 0.0)
        w = self._weights * trading
        sector_weight = np.bincount(self.sectors_all, w, self.n_sectors)
        sector_sum = np.bincount(self.sectors_all, w * r, self.n_sectors)
        total = sector_weight.sum()
        market = sector_sum.sum() / total if total > 0 else 0.0
        sector_mean = np.divide(sector_sum, sector_weight, out=np.full(self.n_sectors, market),
                                where=sector_weight > 0)
        f = self.factor_returns_ = np.concatenate(([market], sector_mean - market))
        a, b = self._a_vol, self._a_corr
        self._var = a * self._var + (1.0 - a) * f * f
        self._cov = b * self._cov + (1.0 - b) * f[:, None] * f
        self._mass_vol = a * self._mass_vol + 1.0 - a
        self._mass_corr = b * self._mass_corr + 1.0 - b
        residual = r - sector_mean[self.sectors_all]
        keep = np.where(trading, self._a_spec, 1.0)  # non-trading days leave the EWMA as is
        self._spec = keep * self._spec + (1.0 - keep) * residual * residual
        self._spec_mass = keep * self._spec_mass + (1.0 - keep)
        if self.buy_and_hold:
            self._weights = self._weights * (1.0 + r)
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

        seen = self._spec_mass > 0
        spec = np.where(seen, self._spec / np.where(seen, self._spec_mass, 1.0), np.nan)
        stocks = seen & ~self.proxy_mask
        totals = np.bincount(self.sectors_all[stocks], spec[stocks], self.n_sectors)
        counts = np.bincount(self.sectors_all[stocks], minlength=self.n_sectors)
        overall = totals.sum() / counts.sum() if counts.sum() else 0.0
        pooled = np.where(counts > 0, totals / np.maximum(counts, 1), overall)[self.sectors_all]
        shrunk = np.where(self.proxy_mask, spec,
                          (1.0 - self.shrinkage) * spec + self.shrinkage * pooled)
        specific = np.where(np.isnan(shrunk), pooled, shrunk) * TRADING_DAYS
        specific = np.maximum(specific, self.specific_floor)
        return FactorRisk(self._exposures, factor_cov, specific)


def estimate_risk(returns_window: np.ndarray, sectors_all: np.ndarray,
                  **model_args) -> FactorRisk:
    """Batch estimate: :class:`EwmaRiskModel` folded over the rows of ``(W, m)`` returns."""
    model = EwmaRiskModel(sectors_all, **model_args)
    for row in np.asarray(returns_window, dtype=float):
        model.update(row)
    return model.risk()


def market_risk_model(market, first_row: int = 0, **model_args) -> EwmaRiskModel:
    """An :class:`EwmaRiskModel` over ``market``'s stocks then proxies, to be updated from
    row ``first_row`` on. Factors are weighted like the benchmark and the basket proxies:
    benchmark weights drifted to ``first_row - 1``, then buy-and-hold."""
    k = len(market.sector_names)
    growth = np.prod(1.0 + np.nan_to_num(market.total_returns[:first_row]), axis=0)
    weights = np.concatenate([market.benchmark_weights * growth, np.zeros(k)])
    proxies = np.arange(market.n_assets + k) >= market.n_assets
    return EwmaRiskModel(market.sectors_all(), proxy_mask=proxies, weights=weights,
                         buy_and_hold=True, n_sectors=k, **model_args)
