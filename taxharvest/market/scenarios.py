"""Crash scenarios: historical templates injected into any market, and replayed real windows.

:func:`inject_scenario` overwrites a window of a market's total returns so that its
benchmark reproduces a template of ``data/scenarios.yaml``: the index path is sampled as
Brownian bridges through the template's phase levels, conditioned (by rejection) to stay
between the peak and the trough so that drawdown and duration are exactly the stated ones.
Stocks keep their cross-sectional structure, ``r_i = beta_i (I_t + s_kt + h_i e_it)``, with
betas and idiosyncratic scales estimated on the days before the window and sector and
idiosyncratic noise scaled so that pairwise correlations average the template's (scaling
the noise with beta keeps low-beta names from diluting it; in a crash the market dominates). A daily
additive correction per group (each led sector, the rest) makes the buy-and-hold
benchmark, and each led sector's basket, follow their paths exactly. Prices, dividends and
distributions (same yields), proxies and regime labels are recomputed from the window on;
returns after the window are the market's own. User-supplied proxies (ETF prices) are
replaced by sector baskets, since their own history cannot contain the injected event.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from importlib import resources

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from taxharvest.market.risk import TRADING_DAYS
from taxharvest.market.universe import (
    CRASH,
    DISTRIBUTION_KINDS,
    GICS_SECTORS,
    STRESSED,
    CorporateAction,
    MarketData,
    prices_from_returns,
    sector_proxies,
)

_MAX_LOSS = -0.95
_BATCH, _TRIES = 512, 200  # candidate index paths per draw, draws


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorstDay(_Strict):
    day: int = Field(ge=1)
    return_: float = Field(alias="return", gt=-1, lt=0)


class Phase(_Strict):
    days: int = Field(ge=1)
    return_: float = Field(alias="return", gt=-1)
    vol: float = Field(ge=0)
    regime: str = Field(pattern="^(stressed|crash)$")
    worst_day: WorstDay | None = None

    @model_validator(mode="after")
    def _check(self) -> Phase:
        if self.worst_day is not None and not 1 <= self.worst_day.day <= self.days > 1:
            raise ValueError("worst_day.day must lie inside a phase of 2+ days")
        return self


class ScenarioTemplate(_Strict):
    """One crash template; ``drawdown`` is peak to trough of the benchmark."""

    description: str
    drawdown: float = Field(gt=-1, lt=0)
    corr: float = Field(gt=0, lt=1)
    phases: tuple[Phase, ...] = Field(min_length=1)
    sector_returns: dict[str, float] = {}

    @model_validator(mode="after")
    def _check(self) -> ScenarioTemplate:
        levels = np.cumprod([1.0 + p.return_ for p in self.phases])
        if levels.max() > 1.0 + 1e-9 or abs(levels.min() - 1.0 - self.drawdown) > 0.005:
            raise ValueError(f"phases reach {levels.min() - 1:.4f}, not drawdown "
                             f"{self.drawdown}, or rise above the starting peak")
        unknown = set(self.sector_returns) - set(GICS_SECTORS)
        if unknown:
            raise ValueError(f"unknown sectors in sector_returns: {sorted(unknown)}")
        return self

    @property
    def n_days(self) -> int:
        return sum(p.days for p in self.phases)

    @property
    def trough_day(self) -> int:
        """Window day (1-based) of the trough."""
        levels = np.cumprod([1.0 + p.return_ for p in self.phases])
        return int(np.cumsum([p.days for p in self.phases])[int(np.argmin(levels))])


class ScenarioDefaults(_Strict):
    sector_share: float = Field(gt=0, lt=1)
    idio_dof: float = Field(gt=2)
    beta_lookback: int = Field(ge=2)
    beta_shrink: float = Field(ge=0, le=1)


class ScenarioFile(_Strict):
    defaults: ScenarioDefaults
    templates: dict[str, ScenarioTemplate]


@cache
def _scenarios() -> ScenarioFile:
    text = resources.files("taxharvest.market").joinpath("data/scenarios.yaml").read_text()
    return ScenarioFile.model_validate(yaml.safe_load(text))


def list_scenarios() -> tuple[str, ...]:
    """Names of the crash templates."""
    return tuple(_scenarios().templates)


def get_scenario(name: str) -> ScenarioTemplate:
    """The validated template ``name``."""
    templates = _scenarios().templates
    if name not in templates:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(templates)}")
    return templates[name]


def _index_path(template: ScenarioTemplate, rng: np.random.Generator) -> np.ndarray:
    """Daily simple returns of the benchmark over the window (see module docstring)."""
    for _ in range(_TRIES):
        pieces, fixed = [], []
        for phase in template.phases:
            steps = phase.vol / np.sqrt(TRADING_DAYS) * rng.standard_normal((_BATCH, phase.days))
            free = np.ones(phase.days, bool)
            total = np.log1p(phase.return_)
            if phase.worst_day is not None:
                free[phase.worst_day.day - 1] = False
                total -= np.log1p(phase.worst_day.return_)
            steps += total / free.sum() - steps[:, free].mean(axis=1, keepdims=True)
            if phase.worst_day is not None:
                steps[:, ~free] = np.log1p(phase.worst_day.return_)
            pieces.append(steps)
            fixed.append(~free)
        steps, pinned = np.hstack(pieces), np.concatenate(fixed)
        level = np.cumsum(steps, axis=1)
        trough = level[0, template.trough_day - 1]
        ok = (level.max(axis=1) <= 1e-12) & (level.min(axis=1) >= trough - 1e-12)
        if pinned.any():
            ok &= steps[:, ~pinned].min(axis=1) > steps[0, pinned].min()
        if ok.any():
            return np.expm1(steps[int(np.argmax(ok))])
    raise ValueError("could not sample an index path between the template's peak and trough;"
                     " its vol is too high for its days")


def _betas(returns: np.ndarray, index: np.ndarray, shrink: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Shrunk betas and relative residual vol of each column on ``index`` (NaN-aware)."""
    ok = np.isfinite(returns)
    x = np.where(ok, index[:, None], 0.0)
    y = np.where(ok, returns, 0.0)
    count = ok.sum(axis=0)
    enough = count >= 20
    n = np.maximum(count, 1)
    mx, my = x.sum(0) / n, y.sum(0) / n
    var = (x * x).sum(0) / n - mx**2
    cov = (x * y).sum(0) / n - mx * my
    raw = np.where(enough & (var > 0), cov / np.where(var > 0, var, 1.0), 1.0)
    resid = (y * y).sum(0) / n - my**2 - raw * cov
    beta = np.where(enough, shrink * raw + (1.0 - shrink), 1.0)
    scale = np.sqrt(np.where(enough, np.maximum(resid, 0.0), np.nan))
    typical = np.nanmean(scale) if np.isfinite(scale).any() else 1.0
    scale = np.where(np.isfinite(scale) & (scale > 0), scale / typical, 1.0)
    return beta, scale / np.sqrt(np.mean(scale**2))


def _track(raw: np.ndarray, old: np.ndarray, first_index: np.ndarray, days: np.ndarray,
           value: np.ndarray, groups: np.ndarray, targets: np.ndarray,
           index: np.ndarray) -> np.ndarray:
    """Window returns: ``raw`` shifted each day, per group, so that the buy-and-hold
    benchmark (values ``value`` at the start) returns ``index`` and each led sector's
    basket its ``targets`` column. Non-trading cells stay NaN; listing days return 0."""
    out = np.empty_like(raw)
    n_groups = targets.shape[1]
    for t, day in enumerate(days):
        active = np.isfinite(old[t]) & (first_index < day)
        r = np.where(active, raw[t], 0.0)
        share = value / value.sum()
        held = np.bincount(groups, share, n_groups)
        moving = np.bincount(groups, share * active, n_groups)
        goal = targets[t].copy()
        goal[-1] = (index[t] - held[:-1] @ goal[:-1]) / held[-1] if held[-1] > 0 else 0.0
        shift = np.divide(goal * held - np.bincount(groups, share * r, n_groups), moving,
                          out=np.zeros(n_groups), where=moving > 0)
        r = np.where(active, np.maximum(r + shift[groups], _MAX_LOSS), 0.0)
        out[t] = np.where(np.isfinite(old[t]), r, np.nan)
        value = value * (1.0 + r)
    return out


def _reprice(market: MarketData, returns: np.ndarray, start: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Prices of ``market`` with new ``returns`` from row ``start`` on (same dividend and
    distribution yields and splits; a name listing later keeps its first price), and the
    factor each day's payouts per share scale by (the new over the old previous price)."""
    n = market.n_assets
    payouts = market.dividends + market.distributions
    with np.errstate(invalid="ignore", divide="ignore"):
        previous = np.vstack([np.full((1, n), np.nan), market.prices[:-1]])
        yields = np.nan_to_num(payouts * market.splits / previous)
    tail = slice(start - 1, market.n_days)
    trading = np.isfinite(returns[tail])
    first = np.where(trading.any(0), trading.argmax(0), 0) + start - 1
    prices = market.prices.copy()
    prices[tail], _ = prices_from_returns(
        market.prices[first, np.arange(n)], returns[tail], yields[tail], market.splits[tail])
    scale = np.ones_like(prices)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale[start:] = prices[start - 1:-1] / market.prices[start - 1:-1]
    return prices, np.where(np.isfinite(scale), scale, 1.0)


def _rescaled_actions(market: MarketData, scale: np.ndarray) -> tuple[CorporateAction, ...]:
    """``market.corporate_actions`` with each distribution's size times ``scale`` there."""
    column = {ticker: i for i, ticker in enumerate(market.tickers)}
    return tuple(
        action._replace(size=action.size * scale[market.date_index(action.date),
                                                  column[action.ticker]])
        if action.kind in DISTRIBUTION_KINDS else action
        for action in market.corporate_actions)


class ScenarioWindowError(ValueError):
    """The crash template does not fit in the market at the requested start."""


def inject_scenario(market: MarketData, name: str, start_date=None,
                    seed: int | None = None) -> MarketData:
    """``market`` with template ``name`` replayed from ``start_date`` (see module docstring).

    Args:
        market: any market (synthetic or real).
        name: a template of :func:`list_scenarios`.
        start_date: first day of the window (the day before it is the peak); None draws
            one uniformly among starts leaving ``beta_lookback`` days of history where
            the market allows.
        seed: seed of the index path, noise and random start.
    """
    template, defaults = get_scenario(name), _scenarios().defaults
    rng = np.random.default_rng(seed)
    n_days, horizon = template.n_days, market.n_days
    if horizon - n_days < 1:
        raise ScenarioWindowError(f"{name} needs {n_days + 1} days, the market has {horizon}")
    if start_date is None:
        start = int(rng.integers(min(defaults.beta_lookback, horizon - n_days), horizon - n_days + 1))
    else:
        start = market.date_index(start_date)
        if not 1 <= start <= horizon - n_days:
            raise ScenarioWindowError(f"{name} starting {start_date} needs {n_days} trading days "
                             f"after it and one before it, inside {market.dates[0]}.."
                             f"{market.dates[-1]}")
    index = _index_path(template, rng)
    window = slice(start, start + n_days)
    old = market.total_returns
    history = slice(max(0, start - defaults.beta_lookback), start)
    beta, scale = _betas(old[history], market.index_returns()[history], defaults.beta_shrink)

    growth = np.prod(1.0 + np.nan_to_num(old[:start]), axis=0)
    value = market.benchmark_weights * growth
    beta /= value @ beta / value.sum() if value.sum() > 0 else 1.0

    sectors, n = market.sectors, market.n_assets
    names = market.sector_names
    led = [names.index(s) for s in template.sector_returns
           if s in names and np.any(sectors == names.index(s))]
    groups = np.full(n, len(led))
    targets = np.zeros((n_days, len(led) + 1))
    log_index = np.log1p(index)
    for g, code in enumerate(led):
        groups[sectors == code] = g
        total = np.log1p(template.sector_returns[names[code]])
        targets[:, g] = np.expm1(log_index + (total - log_index.sum()) / n_days)

    phase_vol = np.repeat([p.vol for p in template.phases], [p.days for p in template.phases])
    sigma = np.where(phase_vol > 0, phase_vol / np.sqrt(TRADING_DAYS), np.abs(index))
    other = sigma * np.sqrt(1.0 / template.corr - 1.0)
    t_scale = np.sqrt((defaults.idio_dof - 2.0) / defaults.idio_dof)
    sector_noise = (other * np.sqrt(defaults.sector_share))[:, None] * rng.standard_normal(
        (n_days, len(market.sector_names)))
    idio = ((other * np.sqrt(1.0 - defaults.sector_share))[:, None] * scale * t_scale
            * rng.standard_t(defaults.idio_dof, (n_days, n)))
    raw = np.maximum(beta * (index[:, None] + sector_noise[:, sectors] + idio), _MAX_LOSS)

    new = old.copy()
    new[window] = _track(raw, old[window], market.first_trading_index,
                         np.arange(start, start + n_days), value, groups, targets, index)
    prices, payout_scale = _reprice(market, new, start)
    proxy_prices, proxy_names = sector_proxies(new, sectors, market.benchmark_weights,
                                               market.sector_names)
    regime = market.regime.copy()
    regime[window] = np.repeat([CRASH if p.regime == "crash" else STRESSED
                                for p in template.phases], [p.days for p in template.phases])
    return replace(
        market,
        prices=prices,
        dividends=market.dividends * payout_scale,
        corporate_actions=_rescaled_actions(market, payout_scale),
        total_returns=new,
        proxy_prices=proxy_prices,
        proxy_names=proxy_names,
        regime=regime,
        source=f"{market.source} + {name} from {market.dates[start]}",
    )


def historical_scenario(market: MarketData, start, end) -> MarketData:
    """A window of (real) data replayed as a scenario: ``market.slice`` after checking that
    ``start..end`` lies inside the market and spans at least two trading days."""
    lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
    if lo < market.dates[0] or hi > market.dates[-1] or hi <= lo:
        raise ValueError(f"window {lo}..{hi} is not inside {market.dates[0]}..{market.dates[-1]}")
    window = market.slice(lo, hi)
    if window.n_days < 2:
        raise ValueError(f"window {lo}..{hi} holds fewer than two trading days")
    return replace(window, source=f"historical scenario {window.source}")
