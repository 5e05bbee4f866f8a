"""The risk model on the histories real data produce: flat days, repeated prices, halts,
listings mid-window, large distributions; its estimate stays a covariance, scales with the
returns, and its regime multiplier reads dispersion, not units."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from taxharvest.market import EwmaRiskModel
from taxharvest.market.riskmodel import DEFAULT_STYLES

N_SECTORS, PER_SECTOR, DAYS = 3, 6, 90


@st.composite
def histories(draw) -> np.ndarray:
    """``(DAYS, m)`` daily returns: noise of a drawn scale, then flat market days (every
    return 0), repeated prices of one name (its returns 0), halts (NaN), a late listing,
    and one-day moves from -60% to +200% (a distribution, a takeover)."""
    m = N_SECTORS * PER_SECTOR
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    returns = rng.normal(0.0, draw(st.sampled_from([0.002, 0.01, 0.04])), (DAYS, m))
    for day in draw(st.lists(st.integers(0, DAYS - 1), max_size=20)):
        returns[day] = 0.0
    for name, start, length in draw(st.lists(st.tuples(st.integers(0, m - 1),
                                                       st.integers(0, DAYS - 1),
                                                       st.integers(1, 40)), max_size=4)):
        returns[start:start + length, name] = 0.0
    for name, start, length in draw(st.lists(st.tuples(st.integers(0, m - 1),
                                                       st.integers(0, DAYS - 1),
                                                       st.integers(1, 15)), max_size=3)):
        returns[start:start + length, name] = np.nan
    late = draw(st.integers(0, m - 1))
    returns[:draw(st.integers(0, DAYS // 2)), late] = np.nan
    for day, name, move in draw(st.lists(st.tuples(st.integers(0, DAYS - 1),
                                                   st.integers(0, m - 1),
                                                   st.sampled_from([-0.6, -0.3, 0.5, 2.0])),
                                         max_size=5)):
        returns[day, name] = move
    return returns


def fitted(returns: np.ndarray, **args) -> EwmaRiskModel:
    sectors = np.repeat(np.arange(N_SECTORS), PER_SECTOR)
    model = EwmaRiskModel(sectors, **args)
    for row in returns:
        model.update(row)
    return model


@settings(max_examples=40, deadline=None)
@given(returns=histories(), styles=st.sampled_from([(), DEFAULT_STYLES]))
def test_the_estimate_is_a_covariance_on_any_history(returns, styles):
    model = fitted(returns, styles=styles)
    risk = model.risk()
    assert np.isfinite(model.regime_multiplier) and model.regime_multiplier >= 0.0
    assert np.isfinite(risk.specific_var).all()
    assert (risk.specific_var >= model.specific_floor * (1 - 1e-12)).all()
    cov = risk.factor_cov
    assert np.isfinite(cov).all() and np.allclose(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() >= -1e-10 * max(np.abs(cov).max(), 1e-12)
    active = np.random.default_rng(0).normal(0.0, 0.01, returns.shape[1])
    te = risk.tracking_error(active)
    assert np.isfinite(te) and te >= 0.0


@settings(max_examples=30, deadline=None)
@given(returns=histories(), scale=st.sampled_from([0.25, 3.0]))
def test_variances_scale_with_the_square_of_the_returns(returns, scale):
    """Without a floor, every variance of returns ``c r`` is ``c^2`` times that of ``r`` (the
    jump clip and the regime multiplier are ratios of the returns' own scale). A move of
    -60% scaled by 3 would be a loss past -100%: only noise scales here."""
    returns = np.clip(returns, -0.2, 0.2)
    base, scaled = fitted(returns, specific_floor=0.0), fitted(scale * returns, specific_floor=0.0)
    np.testing.assert_allclose(scaled.regime_multiplier, base.regime_multiplier, rtol=1e-9)
    np.testing.assert_allclose(scaled.risk().specific_var, scale**2 * base.risk().specific_var,
                               rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(scaled.risk().factor_cov, scale**2 * base.risk().factor_cov,
                               rtol=1e-9, atol=1e-18)
