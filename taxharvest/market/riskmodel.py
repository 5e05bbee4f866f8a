"""Exponentially weighted factor risk model over stocks and sector proxies.

Factors: the market and one factor per sector. Each day the market factor return is the
weighted mean return of the trading stocks and sector ``k``'s factor return is the weighted
mean return of its trading stocks minus the market's (weights: equal, or those given, e.g.
benchmark weights drifting buy-and-hold: then the market factor is the benchmark and a sector
factor is its basket proxy's excess return, so a proxy carries almost no specific risk).
Every security has exposure 1 to the market and 1 to its sector (a proxy to its own
sector), so a stock's residual is its return minus its sector's mean. Averages rather than
a cross-sectional regression keep the update O(n) and avoid the market/sector collinearity.

Style factors (:data:`STYLES`; :func:`market_risk_model` takes :data:`DEFAULT_STYLES`,
the bare class none): ``momentum`` (trailing 12-1 month return),
``reversal`` (the last month's), ``size`` (log factor weight: log market value under a
cap-weighted benchmark; under an equal-weighted one, the growth since its start) and ``beta``
(each stock's EWMA regression slope on the market factor, :data:`BETA_HALF_LIFE`: within a
sector the stocks' betas differ, and a harvest in a fall sells the high-beta names). Each day a
stock's raw signal is demeaned within its sector by the factor weights, scaled to unit
equal-weighted cross-sectional deviation, clipped at :data:`EXPOSURE_CLIP` and demeaned
again, and a proxy's exposure is the mean of its sector's members' weighted like the basket
it holds. The style factors' returns are the weighted least-squares regression of the
stocks' sector residuals on the exposures they had at the day's start (O(n p)); exposures
that are weighted-zero within every sector make this the full regression on market, sector
and style factors at once (Frisch-Waugh), so the averages above stay the sector factors.
Specific risk is what the style factors leave. A harvester's book underweights its recent
losers inside each sector, a tilt market and sector factors cannot see.

Factor covariance follows the usual split of speeds: variances from an EWMA with
``half_life_vol`` (fast, so a crash shows within days: a model estimated on calm data
underestimates tracking error exactly when correlations and volatility jump), correlations
from an EWMA with ``half_life_corr``. Specific variances split the same way: each
security's EWMA of squared residuals with the slower ``half_life_specific`` (a per-stock
estimate is noisy, and an optimizer underweights where its noise reads low), shrunk toward
the mean of the same sector's stocks (proxies are not shrunk), times a common regime
multiplier at ``half_life_vol``: the EWMA of the stocks' cross-sectional mean squared
standardized residual (each day's squared residual over its stock's estimate before it), so
that a crash's jump in dispersion shows within days (the specific volatility regime
adjustment of commercial risk models); floored. All EWMAs are zero-mean and bias-corrected
for their start.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from taxharvest.market.risk import TRADING_DAYS, FactorRisk

MONTH = 21  # trading days
TRAILING = {  # style -> (days of returns looked back over, most recent days skipped)
    "momentum": (12 * MONTH, MONTH),
    "reversal": (MONTH, 0),
}
STYLES = (*TRAILING, "size", "beta")
# market_risk_model's (benchmarks/risk_bias.py): on real harvested books momentum brings the
# bias statistic from 1.5-1.7 to 1.2, size (a loss lot is a name below its price at purchase,
# so harvests sell the small) to 1.1, part of it the noise of its daily regression, which a
# book aligned with its exposures counts twice (README, "Results"); reversal adds nothing
DEFAULT_STYLES = ("momentum", "size", "beta")
LONGEST_LOOKBACK = max(lookback for lookback, _ in TRAILING.values())
SIZE_LOOKBACK = 0  # the size style's lookback: it reads the weights, not returns
BETA_LOOKBACK = -1  # the beta style's: it reads its own EWMAs of returns against the market
# Barra USE4's beta: a 252-day window weighted at a 63-day half-life (the lookback above
# warms it to 94% of its mass before the first decision)
BETA_HALF_LIFE = 63.0
MIN_SIGNAL_DAYS = MONTH  # a trailing signal needs this many days of returns (or its window)
EXPOSURE_CLIP = 3.0  # standardized exposures are clipped to +-3
RIDGE = 1e-10  # relative ridge of the style regression: a style without signal returns 0
JUMP_SIGMAS = 6.0  # a specific residual beyond this many of its own sigmas enters clipped
# Specific variances at the correlations' speed: a per-stock EWMA at the factor variances'
# 10 days rests on ~29 effective days, a quarter of sampling error, which the optimizer
# seeks out (it underweights where risk reads low): realized/ex-ante TE of its own real
# book 1.11 at 10 days, 1.00 at 42, 0.97-0.99 at 63-126; 1.04 at 42 with the regime
# multiplier, which holds the crash templates' 63-day TE below 0.95% (README, "Results")
HALF_LIFE_SPECIFIC = 42.0
JUMP_MASS = 1.0 - 0.5 ** (MONTH / HALF_LIFE_SPECIFIC)  # a month's mass at the default


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
        half_life_specific: days; half-life of specific variances.
        shrinkage: weight of the sector mean in each stock's specific variance.
        specific_floor: annualized floor of specific variance.
        jump_sigmas: a day's specific residual enters the specific EWMA clipped at this many
            of the security's estimate before it (once the estimate's mass reaches
            :data:`JUMP_MASS`); ``inf`` keeps every residual as it is.
        specific_regime: scale the specific variances by the regime multiplier (off: each
            stock's EWMA alone, for comparison).
        proxy_mask: ``(m,)`` True for proxies: not used to form factor returns, not shrunk.
        weights: ``(m,)`` non-negative weights forming factor returns (default: equal over
            stocks); a security's weight counts only on days it trades.
        buy_and_hold: let the weights drift with each day's returns.
        n_sectors: number of sectors (default: ``max(sectors_all) + 1``).
        styles: style factors of :data:`STYLES`, in factor order after the sectors.
        basket_weights: ``(b, m)`` weights of the baskets the proxies hold (drifting like
            ``weights``); default: ``weights``. Used for the proxies' style exposures.
        proxy_basket: ``(m,)`` the row of ``basket_weights`` a proxy holds of its sector's
            stocks (default 0; ignored for stocks).
        lookback_returns: ``(h, m)`` returns of the days before the first update, for the
            trailing styles' signals.

    Attributes:
        n_updates_: days seen.
        factor_returns_: the last day's factor returns ``(1 + n_sectors + len(styles),)``.
        style_noise_: the last day's sampling variance of each style return ``(len(styles),)``
            (the regression's, heteroskedasticity-robust): the share of the specific returns
            a style return carries, which a book aligned with its exposures also holds as
            specific risk.
    """

    def __init__(self, sectors_all: np.ndarray, half_life_vol: float = 10.0,
                 half_life_corr: float = 42.0, half_life_specific: float = HALF_LIFE_SPECIFIC,
                 shrinkage: float = 0.2, specific_floor: float = 1e-4,
                 jump_sigmas: float = JUMP_SIGMAS, specific_regime: bool = True,
                 proxy_mask: np.ndarray | None = None, weights: np.ndarray | None = None,
                 buy_and_hold: bool = False, n_sectors: int | None = None,
                 styles: tuple[str, ...] = (), basket_weights: np.ndarray | None = None,
                 proxy_basket: np.ndarray | None = None,
                 lookback_returns: np.ndarray | None = None) -> None:
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
        if not jump_sigmas > 0:
            raise ValueError("jump_sigmas must be positive")
        self.jump_sigmas = float(jump_sigmas)
        self.specific_regime = bool(specific_regime)
        self.half_life_vol, self.half_life_corr = half_life_vol, half_life_corr
        self.half_life_specific = half_life_specific
        self.shrinkage, self.specific_floor = shrinkage, specific_floor
        self.buy_and_hold = buy_and_hold
        self._weights = np.where(self.proxy_mask, 0.0, base)
        self._a_vol, self._a_corr = _decay(half_life_vol), _decay(half_life_corr)
        self._a_spec = _decay(self.half_life_specific)
        unknown = set(styles) - set(STYLES)
        if unknown:
            raise ValueError(f"unknown styles {sorted(unknown)}: choose from {STYLES}")
        self.styles = tuple(styles)
        baskets = self._weights[None] if basket_weights is None else np.atleast_2d(
            np.where(self.proxy_mask, 0.0, np.asarray(basket_weights, float)))
        self.proxy_basket = np.zeros(m, np.int64) if proxy_basket is None else np.asarray(
            proxy_basket, np.int64)
        if baskets.shape[1] != m or np.any(baskets < 0) or self.proxy_basket.shape != (m,) \
                or np.any(self.proxy_basket[self.proxy_mask] >= len(baskets)):
            raise ValueError("basket_weights must be (b, m) non-negative, proxy_basket (m,) "
                             "rows of it")
        self._baskets = baskets.copy() if self.styles else np.zeros((0, m))
        windows = [TRAILING.get(style, (BETA_LOOKBACK if style == "beta" else SIZE_LOOKBACK, 0))
                   for style in self.styles]
        self._lookback = np.array([lookback for lookback, _ in windows], np.int64)
        self._skip = np.array([skip for _, skip in windows], np.int64)
        self._cumulative = np.ones((1 + int(self._lookback.max(initial=0)), m))
        self._days_seen = 0
        self._a_beta = _decay(BETA_HALF_LIFE)
        self._beta_moments = np.zeros((3, m))  # EWMAs of r_i r_market, r_market^2, mass
        self._style_exposures = np.zeros((m, len(styles)))  # as of the last day folded in
        k = 1 + self.n_sectors
        self._exposures = np.zeros((m, k))
        self._exposures[:, 0] = 1.0
        self._exposures[np.arange(m), 1 + self.sectors_all] = 1.0
        self._exposures.flags.writeable = False  # shared by every FactorRisk returned
        k += len(styles)
        self._var = np.zeros(k)
        self._cov = np.zeros((k, k))
        self._mass_vol = self._mass_corr = 0.0
        self._spec = np.zeros(m)
        self._spec_mass = np.zeros(m)
        self._regime = np.zeros(2)  # EWMA of the mean squared standardized residual, its mass
        self.n_updates_ = 0
        self.factor_returns_ = np.zeros(k)
        self.style_noise_ = np.zeros(len(styles))
        if self.styles and lookback_returns is not None:
            for row in np.asarray(lookback_returns, dtype=float):
                trading = (row == row) & (self._weights > 0)
                weight = self._weights[trading].sum()
                self._fold_signals(row, row[trading] @ self._weights[trading] / weight
                                   if weight > 0 else 0.0)

    def _fold_signals(self, returns_t: np.ndarray, market: float) -> None:
        _style_exposures(returns_t, market, self._cumulative, self._days_seen, self._lookback,
                         self._skip, self._beta_moments, self._a_beta, self._weights,
                         self.sectors_all, self.n_sectors, self.proxy_mask, self._baskets,
                         self.proxy_basket, self._style_exposures)
        self._days_seen += 1

    def update(self, returns_t: np.ndarray) -> None:
        """Fold in one day's returns ``(m,)`` (NaN for securities not trading)."""
        returns_t = np.asarray(returns_t, dtype=float)
        self.factor_returns_ = np.empty(len(self._var))
        self.style_noise_ = np.empty(len(self.styles))
        _fold_day(returns_t, self._weights, self._baskets, self.sectors_all, self.n_sectors,
                  self._style_exposures, self.buy_and_hold, self._spec, self._spec_mass,
                  self._a_spec, self.jump_sigmas**2, self._regime, self._var, self._cov,
                  self._a_vol, self._a_corr, self.factor_returns_, self.style_noise_)
        if self.styles:
            self._fold_signals(returns_t, self.factor_returns_[0])
        a, b = self._a_vol, self._a_corr
        self._mass_vol = a * self._mass_vol + 1.0 - a
        self._mass_corr = b * self._mass_corr + 1.0 - b
        self.n_updates_ += 1

    @property
    def regime_multiplier(self) -> float:
        """The factor every specific variance is scaled by today: the recent mean squared
        standardized residual of the stocks (1 until one has been measured, or without
        ``specific_regime``)."""
        ewma, mass = self._regime
        return ewma / mass if mass > 0 and self.specific_regime else 1.0

    def risk(self) -> FactorRisk:
        """The current annualized :class:`FactorRisk`."""
        if self.n_updates_ == 0:
            raise RuntimeError("no returns seen yet: call update() first")
        factor_cov = np.empty_like(self._cov)
        _factor_covariance(self._var, self._cov, self._mass_vol, self._mass_corr, factor_cov)
        specific = np.empty(len(self._spec))
        _specific_variance(self._spec, self._spec_mass, self.proxy_mask, self.sectors_all,
                           self.n_sectors, self.shrinkage, self.regime_multiplier,
                           self.specific_floor / TRADING_DAYS, specific)
        exposures = self._exposures
        if self.styles:
            exposures = np.hstack([exposures, self._style_exposures])
            exposures.flags.writeable = False
        return FactorRisk(exposures, factor_cov, specific * TRADING_DAYS)


@njit(cache=True)
def _factor_covariance(var, cov, mass_vol, mass_corr, out):
    """Annualized factor covariance into ``out``: the correlations of the ``cov`` EWMA
    scaled by the volatilities of the ``var`` EWMA (each EWMA over its mass)."""
    k = var.shape[0]
    for a in range(k):
        scale_a = np.sqrt(cov[a, a] / mass_corr)
        vol_a = np.sqrt(var[a] / mass_vol)
        for b in range(k):
            if a == b:
                out[a, b] = vol_a * vol_a * TRADING_DAYS
                continue
            scale_b = np.sqrt(cov[b, b] / mass_corr)
            corr = (cov[a, b] / mass_corr) / ((scale_a if scale_a > 0 else 1.0)
                                              * (scale_b if scale_b > 0 else 1.0))
            out[a, b] = corr * (vol_a * np.sqrt(var[b] / mass_vol)) * TRADING_DAYS


@njit(cache=True)
def _fold_day(r, weights, baskets, sectors, n_sectors, exposures, buy_and_hold, spec,
              spec_mass, a_spec, jump_square, regime, var, cov, a_vol, a_corr, f, noise):
    """One day: the factor returns into ``f`` (the market's: weighted mean; a sector's:
    its weighted mean less the market's; the styles': regression of the sector residuals
    on the style ``exposures``), folded into the factor EWMAs ``var`` and ``cov``; the
    specific EWMAs of the trading securities (a squared residual clipped at ``jump_square``
    times the estimate before it, once that has :data:`JUMP_MASS`) and the ``regime`` EWMA
    (``[value, mass]``, at the factor variances' speed) of the mean over those stocks of the
    squared residual over that estimate; the style returns'
    sampling variances into ``noise``; buy-and-hold drift of the factor and basket
    weights."""
    weight = np.zeros(n_sectors)
    total = np.zeros(n_sectors)
    for i in range(r.shape[0]):
        if r[i] == r[i]:
            weight[sectors[i]] += weights[i]
            total[sectors[i]] += weights[i] * r[i]
    all_weight = weight.sum()
    market = total.sum() / all_weight if all_weight > 0 else 0.0
    sector_mean = np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), market)
    f[0] = market
    f[1:1 + n_sectors] = sector_mean - market
    style_returns = f[1 + n_sectors:]
    p = exposures.shape[1]
    style_returns[:] = 0.0
    normal = np.eye(p)
    spread = np.zeros((p, p))  # sum of w^2 x x' e^2: the regression's sandwich
    standardized, measured = 0.0, 0  # the squared standardized residuals of the day
    if p > 0 and all_weight > 0:
        normal = RIDGE * all_weight * np.eye(p)
        moment = np.zeros(p)
        for i in range(r.shape[0]):
            if r[i] == r[i] and weights[i] > 0:
                residual = r[i] - sector_mean[sectors[i]]
                for a in range(p):
                    moment[a] += weights[i] * exposures[i, a] * residual
                    for b in range(p):
                        normal[a, b] += weights[i] * exposures[i, a] * exposures[i, b]
        style_returns[:] = np.linalg.solve(normal, moment)
    for i in range(r.shape[0]):
        if r[i] == r[i]:  # non-trading days leave the EWMA as is
            residual = r[i] - sector_mean[sectors[i]]
            for a in range(p):
                residual -= exposures[i, a] * style_returns[a]
            square = residual * residual
            if weights[i] > 0:
                scale = weights[i] * weights[i] * square
                for a in range(p):
                    for b in range(p):
                        spread[a, b] += scale * exposures[i, a] * exposures[i, b]
            if spec_mass[i] >= JUMP_MASS:
                before = spec[i] / spec_mass[i]
                square = min(square, jump_square * before)
                if weights[i] > 0 and before > 0:
                    standardized += square / before
                    measured += 1
            spec[i] = a_spec * spec[i] + (1.0 - a_spec) * square
            spec_mass[i] = a_spec * spec_mass[i] + (1.0 - a_spec)
            if buy_and_hold:
                weights[i] *= 1.0 + r[i]
                for b in range(baskets.shape[0]):
                    baskets[b, i] *= 1.0 + r[i]
    if measured > 0:
        regime[0] = a_vol * regime[0] + (1.0 - a_vol) * standardized / measured
        regime[1] = a_vol * regime[1] + (1.0 - a_vol)
    inverse = np.linalg.inv(normal)
    sandwich = inverse @ spread @ inverse
    for a in range(p):
        noise[a] = sandwich[a, a]
    for a in range(f.shape[0]):
        var[a] = a_vol * var[a] + (1.0 - a_vol) * f[a] * f[a]
        for b in range(f.shape[0]):
            cov[a, b] = a_corr * cov[a, b] + (1.0 - a_corr) * f[a] * f[b]


@njit(cache=True)
def _style_exposures(r, market, cumulative, days_seen, lookback, skip, beta_moments, a_beta,
                     weights, sectors, n_sectors, proxy_mask, baskets, proxy_basket, out):
    """Fold day ``days_seen``'s returns ``r`` into the ring of cumulative growth and, with
    the day's ``market`` return, into each trading security's ``beta_moments`` (EWMAs at
    ``a_beta`` of ``r_i market``, ``market^2`` and their mass), and write every security's
    standardized style exposures into ``out`` ``(m, p)``: stocks from their signals (a
    trailing return over ``lookback`` days skipping the last ``skip``, the log weight where
    ``lookback`` is :data:`SIZE_LOOKBACK`, the EWMA beta on the market where it is
    :data:`BETA_LOOKBACK`, once its mass is a month's), proxies the mean of their sector's
    stocks weighted by their basket's weights. No logarithm of returns: a daily pass of
    ``m`` of them would cost more than the rest."""
    m, p = out.shape
    rows = cumulative.shape[0]
    now, before = days_seen % rows, (days_seen - 1) % rows
    for i in range(m):
        last = cumulative[before, i] if days_seen > 0 else 1.0
        cumulative[now, i] = last * (1.0 + r[i]) if r[i] == r[i] else last
        if r[i] == r[i]:
            beta_moments[0, i] = a_beta * beta_moments[0, i] + (1.0 - a_beta) * r[i] * market
            beta_moments[1, i] = a_beta * beta_moments[1, i] + (1.0 - a_beta) * market * market
            beta_moments[2, i] = a_beta * beta_moments[2, i] + (1.0 - a_beta)
    least_mass = 1.0 - a_beta ** MIN_SIGNAL_DAYS
    raw = np.empty(m)
    for a in range(p):
        end = days_seen - skip[a]
        start = max(days_seen - lookback[a], -1)
        if lookback[a] == SIZE_LOOKBACK:
            for i in range(m):
                raw[i] = np.log(weights[i]) if weights[i] > 0 else np.nan
        elif lookback[a] == BETA_LOOKBACK:
            for i in range(m):
                enough = beta_moments[2, i] >= least_mass and beta_moments[1, i] > 0
                raw[i] = beta_moments[0, i] / beta_moments[1, i] if enough else np.nan
        elif end - start >= min(MIN_SIGNAL_DAYS, lookback[a] - skip[a]):
            for i in range(m):
                low = cumulative[start % rows, i] if start >= 0 else 1.0
                raw[i] = cumulative[end % rows, i] / low - 1.0
        else:
            out[:, a] = 0.0
            continue
        _standardize(raw, r, weights, sectors, n_sectors, proxy_mask, out[:, a])
    held = np.zeros((baskets.shape[0], n_sectors))
    exposure = np.zeros((baskets.shape[0], n_sectors, p))
    for i in range(m):
        if not proxy_mask[i]:
            for b in range(baskets.shape[0]):
                held[b, sectors[i]] += baskets[b, i]
                for a in range(p):
                    exposure[b, sectors[i], a] += baskets[b, i] * out[i, a]
    for j in range(m):
        if proxy_mask[j]:
            b, s = proxy_basket[j], sectors[j]
            for a in range(p):
                out[j, a] = exposure[b, s, a] / held[b, s] if held[b, s] > 0 else 0.0


@njit(cache=True)
def _standardize(raw, r, weights, sectors, n_sectors, proxy_mask, out):
    """Stocks' exposures from their ``raw`` signals (none where not finite: exposure 0, as
    for proxies). The stocks with a signal, trading today with a positive weight set each
    sector's ``weights``-mean and the equal-weighted deviation: demeaned, scaled, clipped
    at :data:`EXPOSURE_CLIP` and demeaned again."""
    m = raw.shape[0]
    signal = np.empty(m, np.bool_)
    universe = np.empty(m, np.bool_)
    total = np.zeros(n_sectors)
    weight = np.zeros(n_sectors)
    for i in range(m):
        signal[i] = not proxy_mask[i] and np.isfinite(raw[i])
        universe[i] = signal[i] and r[i] == r[i] and weights[i] > 0
        out[i] = raw[i] if signal[i] else 0.0
        if universe[i]:
            total[sectors[i]] += weights[i] * raw[i]
            weight[sectors[i]] += weights[i]
    safe = np.where(weight > 0, weight, 1.0)
    mean = total / safe
    count = spread = 0.0
    for i in range(m):
        if signal[i]:
            out[i] -= mean[sectors[i]]
            if universe[i]:
                count += 1.0
                spread += out[i] * out[i]
    inverse = 1.0 / np.sqrt(spread / count) if spread > 0 else 0.0
    total[:] = 0.0
    for i in range(m):
        out[i] = min(max(out[i] * inverse, -EXPOSURE_CLIP), EXPOSURE_CLIP)
        if universe[i]:
            total[sectors[i]] += weights[i] * out[i]
    mean = total / safe
    for i in range(m):
        if signal[i]:
            out[i] -= mean[sectors[i]]


@njit(cache=True)
def _specific_variance(spec, spec_mass, proxy_mask, sectors, n_sectors, shrinkage, regime,
                       floor, out):
    """Daily specific variance: each stock's EWMA shrunk toward its sector's mean over the
    stocks seen (proxies are not shrunk); unseen securities take the pooled value; times
    ``regime``; floored."""
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
        out[i] = max(value * regime, floor)


def estimate_risk(returns_window: np.ndarray, sectors_all: np.ndarray,
                  **model_args) -> FactorRisk:
    """Batch estimate: :class:`EwmaRiskModel` folded over the rows of ``(W, m)`` returns."""
    model = EwmaRiskModel(sectors_all, **model_args)
    for row in np.asarray(returns_window, dtype=float):
        model.update(row)
    return model.risk()


def market_risk_model(market, first_row: int = 0, proxy_sets: int = 1,
                      styles: tuple[str, ...] = DEFAULT_STYLES, **model_args) -> EwmaRiskModel:
    """An :class:`EwmaRiskModel` over ``market``'s stocks then ``proxy_sets`` sets of one
    proxy per sector, to be updated from row ``first_row`` on. Factors are weighted like
    the benchmark and the basket proxies: benchmark weights drifted to ``first_row - 1``,
    then buy-and-hold. For the ``styles``, the first proxy set holds its sector weighted
    like the benchmark (the market's proxy; a sector ETF in its place is read as that
    basket), every later set equally weighted from row 0 (the environment's second set),
    and the trailing signals start from the returns of the year before ``first_row``."""
    n, k = market.n_assets, len(market.sector_names)
    growth = np.prod(1.0 + np.nan_to_num(market.total_returns[:first_row]), axis=0)
    no_proxies = np.zeros(k * proxy_sets)
    weights = np.concatenate([market.benchmark_weights * growth, no_proxies])
    sectors = np.concatenate([market.sectors, np.tile(np.arange(k), proxy_sets)])
    proxies = np.arange(len(sectors)) >= n
    history = market.total_returns[max(1, first_row - LONGEST_LOOKBACK):first_row]
    return EwmaRiskModel(
        sectors, proxy_mask=proxies, weights=weights, buy_and_hold=True, n_sectors=k,
        styles=styles, basket_weights=np.vstack([weights, np.concatenate([growth, no_proxies])]),
        proxy_basket=np.concatenate([np.zeros(n, np.int64),
                                     np.repeat(np.minimum(np.arange(proxy_sets), 1), k)]),
        lookback_returns=np.hstack([history, np.full((len(history), k * proxy_sets), np.nan)]),
        **model_args)
