"""EWMA factor risk model over stocks and proxies: shapes, accuracy, NaNs, crash reaction, speed,
style factors."""

from __future__ import annotations

import numpy as np
import pytest

from taxharvest.market import (
    EwmaRiskModel,
    FactorRisk,
    estimate_risk,
    inject_scenario,
    market_risk_model,
)
from taxharvest.market.risk import TRADING_DAYS
from taxharvest.market.riskmodel import DEFAULT_STYLES, STYLES


@pytest.fixture(scope="module")
def market(generated):  # the risk model needs more names than the workflow market
    return generated(n_assets=60, years=2, seed=5, crashes=False)


def fitted(market, rows=slice(None), **args) -> EwmaRiskModel:
    model = market_risk_model(market, **args)
    for row in market.returns_all()[rows]:
        model.update(row)
    return model


def bench(market, day: int) -> np.ndarray:
    """Benchmark weights (stocks, then zero on proxies) drifted to ``day``."""
    value = market.benchmark_weights * np.prod(1 + market.total_returns[: day + 1], axis=0)
    return np.concatenate([value / value.sum(), np.zeros(len(market.sector_names))])


def test_factor_risk_shapes_and_positive_definite(market):
    risk = fitted(market).risk()
    m, k = market.n_assets + 11, 12 + len(DEFAULT_STYLES)
    assert isinstance(risk, FactorRisk)
    assert risk.exposures.shape == (m, k) and risk.factor_cov.shape == (k, k)
    assert np.all(risk.exposures[:, 0] == 1) and np.all(risk.exposures[:, 1:12].sum(1) == 1)
    assert np.all(np.linalg.eigvalsh(risk.covariance()) > 0)
    assert np.all(np.isfinite(risk.specific_var)) and np.all(risk.specific_var > 0)


def test_volatility_and_factor_covariance_agree_with_their_dense_forms(market):
    model = fitted(market)
    risk = model.risk()
    assert risk.volatility() == pytest.approx(np.sqrt(np.diag(risk.covariance())), rel=1e-12)
    cov, var = model._cov / model._mass_corr, model._var / model._mass_vol
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert risk.factor_cov == pytest.approx(corr * np.sqrt(np.outer(var, var)) * 252, rel=1e-12)
    rng = np.random.default_rng(0)  # dense loadings, negative and zero ones
    dense = FactorRisk(rng.normal(size=(7, 4)) * (rng.random((7, 4)) < 0.7),
                       np.cov(rng.normal(size=(4, 30))), rng.random(7))
    assert dense.volatility() == pytest.approx(np.sqrt(np.diag(dense.covariance())), rel=1e-12)


def test_batch_estimate_is_the_same_fold(market):
    returns = market.returns_all()[-120:]
    args = {"half_life_vol": 15, "proxy_mask": np.arange(len(returns[0])) >= market.n_assets,
            "weights": np.concatenate([market.benchmark_weights, np.zeros(11)])}
    batch = estimate_risk(returns, market.sectors_all(), **args)
    model = EwmaRiskModel(market.sectors_all(), **args)
    for row in returns:
        model.update(row)
    online = model.risk()
    np.testing.assert_array_equal(batch.factor_cov, online.factor_cov)
    np.testing.assert_array_equal(batch.specific_var, online.specific_var)


def test_predictions_match_realized_volatility(market):
    """Averaged over the cross-section, predicted vol tracks the next quarter's realized vol
    (a little high: with few names per sector, cap-weighted sector factors carry some of
    their largest members' own noise)."""
    returns = market.returns_all()
    errors = []
    for day in range(150, len(returns) - 63, 63):
        risk = fitted(market, slice(0, day + 1), half_life_vol=42).risk()
        predicted = np.sqrt(np.diag(risk.covariance())[: market.n_assets])
        realized = returns[day + 1: day + 64, : market.n_assets].std(0) * np.sqrt(252)
        errors.append(predicted.mean() / realized.mean() - 1)
        index = bench(market, day)
        realized_index = market.index_returns()[day + 1: day + 64].std() * np.sqrt(252)
        assert risk.tracking_error(index) == pytest.approx(realized_index, rel=0.5)
    assert abs(np.mean(errors)) < 0.3


def test_proxies_have_small_specific_risk_and_hedge_their_sector(market):
    risk = fitted(market).risk()
    n = market.n_assets
    assert risk.specific_var[n:].max() < 0.25 * np.median(risk.specific_var[:n])
    swap = np.zeros(n + 11)
    stock = int(np.argmax(market.benchmark_weights))
    swap[stock], swap[n + market.sectors[stock]] = -0.05, 0.05
    cash = np.zeros(n + 11)
    cash[stock] = -0.05
    assert risk.tracking_error(swap) < 0.6 * risk.tracking_error(cash)


def test_missing_returns_and_shrinkage():
    sectors = np.array([0, 0, 0, 1, 1, 0, 1])
    rng = np.random.default_rng(0)
    returns = rng.normal(0, 0.01, (80, 7)) * np.array([1, 2, 3, 1, 1, 1, 1])
    returns[:, 2] = np.nan  # never trades
    returns[40:, 1] = np.nan  # stops
    proxies = np.array([False] * 5 + [True, True])
    risk = estimate_risk(returns, sectors, proxy_mask=proxies)
    assert np.all(np.isfinite(risk.specific_var)) and np.all(np.isfinite(risk.factor_cov))
    stocks0 = risk.specific_var[[0, 1]]
    assert risk.specific_var[2] == pytest.approx(stocks0.mean())  # pooled sector value
    full = estimate_risk(returns, sectors, proxy_mask=proxies, shrinkage=1.0)
    assert full.specific_var[0] == pytest.approx(full.specific_var[1])
    assert full.specific_var[3] == pytest.approx(full.specific_var[4])
    with pytest.raises(RuntimeError):
        EwmaRiskModel(sectors).risk()
    with pytest.raises(ValueError):
        EwmaRiskModel(sectors, n_sectors=1)


def test_reacts_to_a_crash_within_ten_days(market):
    """A model fed calm days underestimates risk when a crash starts; the 10-day volatility
    half-life lifts the predicted index vol above twice its calm value within 10 days."""
    crashed = inject_scenario(market, "covid-2020", start_date="2026-01-05", seed=0)
    start = crashed.date_index("2026-01-05")
    model = market_risk_model(crashed)
    returns = crashed.returns_all()
    for row in returns[:start]:
        model.update(row)
    calm = model.risk().tracking_error(bench(crashed, start - 1))
    predicted = []
    for day in range(start, start + 10):
        model.update(returns[day])
        predicted.append(model.risk().tracking_error(bench(crashed, day)))
    assert max(predicted) > 2 * calm
    assert predicted[-1] > 2 * calm


def test_a_one_day_jump_enters_the_specific_variance_clipped():
    """A six-fold day of one stock (a rebound, a takeover) lifts its own specific variance
    (the regime multiplier apart) by at most the weight of one day's ``jump_sigmas^2`` times
    what it was, not by the square of the jump; unclipped (``jump_sigmas=inf``) the same
    day multiplies it by thousands. The clip waits for a month of days, and ordinary days
    pass unclipped."""
    sectors = np.repeat(np.arange(2), 10)
    rng = np.random.default_rng(3)
    calm = rng.normal(0, 0.01, (250, 20))  # a year: the EWMA has its full mass
    jump = calm[-1].copy()
    jump[4] = 5.0  # +500% in a day
    model = EwmaRiskModel(sectors, shrinkage=0.0)  # its own estimate, not its sector's
    raw = EwmaRiskModel(sectors, shrinkage=0.0, jump_sigmas=np.inf)
    for row in calm:
        model.update(row)
        raw.update(row)
    np.testing.assert_array_equal(model.risk().specific_var, raw.risk().specific_var)
    before = model.risk().specific_var[4] / model.regime_multiplier
    model.update(jump)
    raw.update(jump)
    decay = 0.5 ** (1 / model.half_life_specific)
    held = decay * (1 - decay ** len(calm))  # the estimate's mass before the day, decayed
    bound = before * (held + (1 - decay) * model.jump_sigmas**2) / (held + 1 - decay)
    assert before < model.risk().specific_var[4] / model.regime_multiplier <= bound * (1 + 1e-9)
    assert raw.risk().specific_var[4] > 1000 * before
    early = EwmaRiskModel(sectors, shrinkage=0.0)  # a week of history: no estimate to clip against yet
    for row in calm[:5]:
        early.update(row)
    early.update(jump)
    assert early.risk().specific_var[4] > 1000 * before
    with pytest.raises(ValueError):
        EwmaRiskModel(sectors, jump_sigmas=0.0)


def test_a_jump_in_dispersion_lifts_every_specific_variance_within_days():
    """The slow per-stock estimates answer a crash's dispersion through the regime
    multiplier, at the factor variances' speed: a week of every stock's residuals at three
    times their calm volatility lifts each specific variance above 2.5 times (the per-stock
    EWMAs alone: about 1.5); through a calm year the multiplier stays near 1."""
    sectors = np.repeat(np.arange(4), 50)
    rng = np.random.default_rng(5)
    model = EwmaRiskModel(sectors, shrinkage=0.0)
    for row in rng.normal(0, 0.01, (250, 200)):
        model.update(row)
    assert 0.9 < model.regime_multiplier < 1.1
    before = model.risk().specific_var
    for row in rng.normal(0, 0.03, (5, 200)):
        model.update(row)
    assert np.median(model.risk().specific_var / before) > 2.5
    assert model.regime_multiplier > 2.0


N_STOCKS, N_SECTORS = 400, 4


def planted_momentum(seed: int, days: int = 250, premium_vol: float = 0.004):
    """Models with and without the momentum factor fed a cross-section whose stocks earn,
    beyond market, sector and 2% daily noise, a momentum premium on the exposure the model
    gives them each morning; the planted premia."""
    rng = np.random.default_rng(seed)
    sectors = np.arange(N_STOCKS) % N_SECTORS
    history = rng.normal(0.0, 0.02, (300, N_STOCKS))
    with_style = EwmaRiskModel(sectors, styles=("momentum",), lookback_returns=history)
    without = EwmaRiskModel(sectors)
    premia = rng.normal(0.001, premium_vol, days)
    for premium in premia:
        exposure = with_style.risk().exposures[:, -1] if with_style.n_updates_ else \
            np.zeros(N_STOCKS)
        common = rng.normal(0.0, 0.01) + rng.normal(0.0, 0.005, N_SECTORS)[sectors]
        returns = common + premium * exposure + rng.normal(0.0, 0.02, N_STOCKS)
        with_style.update(returns)
        without.update(returns)
        yield with_style, without, premium


def test_a_planted_momentum_premium_is_recovered():
    recovered, planted = [], []
    for model, _, premium in planted_momentum(seed=1):
        if model.n_updates_ > 1:  # the first morning has no exposure yet in this test
            recovered.append(model.factor_returns_[-1])
            planted.append(premium)
    recovered, planted = np.array(recovered), np.array(planted)
    # one day's standard error: 2% noise over 400 stocks of unit exposure, 0.1%
    assert np.abs(recovered - planted).mean() < 0.0015
    assert np.corrcoef(recovered, planted)[0, 1] > 0.95
    exposures = model.risk().exposures[:, -1]
    for s in range(N_SECTORS):  # sector-neutral
        assert exposures[np.arange(N_STOCKS) % N_SECTORS == s].mean() == pytest.approx(0, abs=1e-9)
    assert 0.85 < exposures.std() <= 1.0  # unit spread, then clipped
    with pytest.raises(ValueError, match="unknown styles"):
        EwmaRiskModel(np.zeros(3, int), styles=("value",))


def test_a_momentum_tilted_book_carries_more_risk_with_the_factor():
    """Underweight the 100 worst recent performers, their weight in the benchmark (equal
    weights here): without the factor the risk diversifies away as specific risk."""
    *_, (with_style, without, _) = planted_momentum(seed=2)
    exposures = with_style.risk().exposures[:, -1]
    losers = np.argsort(exposures)[:100]
    active = np.full(N_STOCKS, 0.0025 * 100 / (N_STOCKS - 100))  # moved to the others
    active[losers] = -0.0025
    assert with_style.risk().tracking_error(active) > 1.5 * without.risk().tracking_error(active)


def test_proxy_exposures_are_their_baskets_members_weighted_mean(market):
    """The first proxy set holds its sector like the benchmark, the second equally weighted
    from row 0; both drift buy-and-hold."""
    day = 300
    returns = market.returns_all()[: day + 1]
    k = len(market.sector_names)
    model = market_risk_model(market, proxy_sets=2, styles=STYLES)
    for row in np.hstack([returns, returns[:, market.n_assets:]]):
        model.update(row)
    exposures = model.risk().exposures
    assert exposures.shape == (market.n_assets + 2 * k, 1 + k + len(STYLES))
    styles = exposures[:, 1 + k:]
    growth = np.prod(1 + market.total_returns[: day + 1], axis=0)
    for basket, weights in enumerate((bench(market, day)[: market.n_assets], growth)):
        for s in range(k):
            members = market.sectors == s
            mean = weights[members] @ styles[: market.n_assets][members] / weights[members].sum()
            np.testing.assert_allclose(styles[market.n_assets + basket * k + s], mean, atol=1e-12)


def test_a_book_that_sold_its_names_under_water_is_forecast_unbiased_with_size():
    """A market whose stocks earn a premium on their size exposure (the growth since the
    start under an equal-weighted benchmark); the book underweights the names below their
    price at the start, as a harvest of lots bought then does. Without the size factor its
    risk diversifies away as specific risk and realized TE runs far above the forecast."""
    rng = np.random.default_rng(0)
    sectors = np.arange(N_STOCKS) % N_SECTORS
    args = {"weights": np.ones(N_STOCKS), "buy_and_hold": True,
            "lookback_returns": rng.normal(0.0, 0.02, (300, N_STOCKS))}
    models = {styles: EwmaRiskModel(sectors, styles=styles, **args)
              for styles in (DEFAULT_STYLES, ("momentum",))}
    size = 1 + N_SECTORS + DEFAULT_STYLES.index("size")
    growth, z = np.ones(N_STOCKS), {styles: [] for styles in models}
    for day, premium in enumerate(rng.normal(0.0, 0.004, 300)):
        exposure = models[DEFAULT_STYLES].risk().exposures[:, size] if day else 0.0
        common = rng.normal(0.0, 0.01) + rng.normal(0.0, 0.005, N_SECTORS)[sectors]
        returns = common + premium * exposure + rng.normal(0.0, 0.02, N_STOCKS)
        under = growth < 1.0
        active = np.where(under, -1.0 / N_STOCKS, under.sum() / N_STOCKS / (~under).sum())
        for styles, model in models.items():
            if day >= 100:  # z: the day's active return over the forecast made before it
                forecast = model.risk().tracking_error(active) / np.sqrt(TRADING_DAYS)
                z[styles].append(active @ returns / forecast)
            model.update(returns)
        growth *= 1.0 + returns
    bias = {styles: np.std(values, ddof=1) for styles, values in z.items()}
    assert 0.85 < bias[DEFAULT_STYLES] < 1.15  # 200 days: the 95% band of an unbiased model is 0.1
    assert bias[("momentum",)] > 1.3


def test_a_style_return_without_a_premium_is_its_sampling_noise():
    """Stocks that earn no style premium: each day's style return is the regression's noise
    alone, so its mean square matches the sampling variance the model reports; with a
    planted momentum premium the return's variance exceeds the noise."""
    rng = np.random.default_rng(0)
    sectors = np.arange(N_STOCKS) % N_SECTORS
    model = EwmaRiskModel(sectors, styles=DEFAULT_STYLES, weights=np.ones(N_STOCKS),
                          buy_and_hold=True, lookback_returns=rng.normal(0.0, 0.02, (300, N_STOCKS)))
    squares, noise = [], []
    for _ in range(300):
        common = rng.normal(0.0, 0.01) + rng.normal(0.0, 0.005, N_SECTORS)[sectors]
        model.update(common + rng.normal(0.0, 0.02, N_STOCKS))
        squares.append(model.factor_returns_[1 + N_SECTORS:] ** 2)
        noise.append(model.style_noise_)
    np.testing.assert_allclose(np.mean(squares, axis=0) / np.mean(noise, axis=0), 1.0, atol=0.2)
    squares, noise = [], []
    for model, _, _ in planted_momentum(seed=3):
        squares.append(model.factor_returns_[-1] ** 2)
        noise.append(model.style_noise_[-1])
    assert np.mean(squares[1:]) > 3 * np.mean(noise[1:])


def test_a_high_beta_book_is_forecast_unbiased_with_the_beta_style():
    """Stocks whose market betas differ within their sector (sd 0.3, as the synthetic
    market draws them); the book overweights each sector's high-beta half and underweights
    the rest, dollar-neutral, as a harvest of a fall's losers leaves it. Without the beta
    style that risk reads as diversifiable specific risk; with it the estimated exposures
    rank the true betas and the forecast is close to unbiased."""
    rng = np.random.default_rng(4)
    sectors = np.arange(N_STOCKS) % N_SECTORS
    beta = np.clip(rng.normal(1.0, 0.3, N_STOCKS), 0.2, 3.0)

    def day() -> np.ndarray:
        market = rng.normal(0.0, 0.01)
        return beta * market + rng.normal(0.0, 0.005, N_SECTORS)[sectors] \
            + rng.normal(0.0, 0.015, N_STOCKS)

    history = np.array([day() for _ in range(300)])
    models = {styles: EwmaRiskModel(sectors, styles=styles, lookback_returns=history)
              for styles in (DEFAULT_STYLES, ("momentum", "size"))}
    high = np.zeros(N_STOCKS, bool)
    for s in range(N_SECTORS):
        members = np.flatnonzero(sectors == s)
        high[members[beta[members] > np.median(beta[members])]] = True
    active = np.where(high, 1.0, -1.0) * 0.2 / N_STOCKS
    z = {styles: [] for styles in models}
    for t in range(400):
        returns = day()
        for styles, model in models.items():
            if t >= 100:
                forecast = model.risk().tracking_error(active) / np.sqrt(TRADING_DAYS)
                z[styles].append(active @ returns / forecast)
            model.update(returns)
    column = 1 + N_SECTORS + DEFAULT_STYLES.index("beta")
    exposure = models[DEFAULT_STYLES].risk().exposures[:, column]
    within = beta - np.array([beta[sectors == s].mean() for s in range(N_SECTORS)])[sectors]
    assert np.corrcoef(exposure, within)[0, 1] > 0.8
    bias = {styles: np.std(values, ddof=1) for styles, values in z.items()}
    # 300 days: an unbiased model's 95% band is about 0.08; the book is formed on the true
    # betas, which the estimates see with noise (1.13-1.15 over seeds): the share of the
    # book's beta their correlation misses reads as risk the forecast lacks
    assert 0.9 < bias[DEFAULT_STYLES] < 1.25
    assert bias[("momentum", "size")] > 2.5
