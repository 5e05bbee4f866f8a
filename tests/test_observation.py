"""What timing needs in the observation: days to long-term, the client's rates this year and
next, the losses the year can still use, the TE frozen by wash windows, the volatility regime;
and randomized clients."""

from __future__ import annotations

import numpy as np
import pytest

from taxharvest.envs import ASSET_FEATURES, PORTFOLIO_FEATURES, DirectIndexEnv
from taxharvest.envs.features import LOT_FEATURE_INDEX, N_LOT_FEATURES, lot_features
from taxharvest.tax.calendar import ANNIVERSARY, DAY_BASE
from taxharvest.tax.clients import RANDOM_PROFILE, draw_profile
from taxharvest.tax.law import (
    IncomeOverride,
    TaxProfile,
    default_tables,
    marginal_rates,
    tax_saving,
)

P = {name: i for i, name in enumerate(PORTFOLIO_FEATURES)}
SMALL = {"n_assets": 30, "episode_years": 1.0}


def test_days_to_long_term_count_to_the_first_long_term_day_of_the_worst_loss_lot():
    day = int(np.datetime64("2024-03-01", "D").astype(np.int64))
    acquired = np.array([[day - 100, day - 400], [day - 100, day - 10], [day - 20, 0]])
    basis = np.array([[110.0, 130.0], [90.0, 120.0], [100.0, 0.0]])  # at a price of 100 a share
    shares = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    out = np.zeros((3, N_LOT_FEATURES))
    lot_features(shares, basis, acquired, np.array([2, 2, 1]), np.full(3, 100.0), day,
                 ANNIVERSARY, DAY_BASE, out)
    days = out[:, LOT_FEATURE_INDEX.days_to_long_term]
    # the worst lot is long-term (0); the worst is a short-term loss; a lone lot at its basis
    assert days[0] == 0.0
    assert days[1] == ANNIVERSARY[day - 10 - DAY_BASE] + 1 - day == 357  # 2025-02-21
    assert days[2] == 0.0  # not a loss


def test_the_observation_reads_the_client_and_the_frozen_book():
    base = TaxProfile(name="path", filing="mfj", ordinary_income=800_000,
                      outside_short_gain=50_000)
    env = DirectIndexEnv(**SMALL, profile=base)
    obs, _ = env.reset(seed=3)
    year = env.year
    profile = base.model_copy(update={"schedule": {year + 1: IncomeOverride(
        ordinary_income=30_000, outside_short_gain=0)}})
    env = DirectIndexEnv(**SMALL, profile=profile, action="preference")
    obs, info = env.reset(seed=3)
    portfolio = obs["portfolio"]
    value = env.holdings()["value"]
    loss_limit = default_tables().law("mfj", year, profile.indexing, profile.inflation).loss_limit
    assert portfolio[P["next_short_rate"]] == pytest.approx(marginal_rates(profile, year + 1)[0])
    assert portfolio[P["next_short_rate"]] < portfolio[P["short_rate"]] - 0.1
    assert portfolio[P["usable_short"]] == pytest.approx((50_000 + loss_limit) / value, rel=1e-5)
    assert portfolio[P["usable_long"]] == 0.0
    assert portfolio[P["frozen_te"]] == 0.0 and portfolio[P["vol_regime"]] > 0
    for _ in range(60):  # harvest whatever may be harvested until a harvest freezes a name
        obs, _, _, _, info = env.step(np.ones(env.n_assets + 1, np.float32))
        if info["harvested_loss"] > 0:
            break
    assert info["harvested_loss"] > 0
    assert obs["portfolio"][P["frozen_te"]] > 0
    short, long = env.ledger.realized(env.year)
    assert env.year == year and short + long < 0
    usable = np.array(env.usable_losses())
    np.testing.assert_allclose(usable, [50_000 + loss_limit + short, long])
    np.testing.assert_allclose(obs["portfolio"][[P["usable_short"], P["usable_long"]]],
                               usable / env.holdings()["value"], rtol=1e-5)
    assert obs["assets"][:, ASSET_FEATURES.index("days_to_long_term")].max() <= 1.0


def test_a_clients_own_carryforward_uses_up_the_outside_gains_it_offsets():
    """$100k of short-term carryforward against $100k of outside short-term gains: only the
    ordinary offset is left, worth the ordinary rate, and the program is told so."""
    client = TaxProfile(name="carry", filing="mfj", ordinary_income=800_000,
                        outside_short_gain=100_000, carryforward_short=100_000)
    env = DirectIndexEnv(**SMALL, profile=client)
    env.reset(seed=1)
    year = env.year
    loss_limit = default_tables().law("mfj", year, client.indexing, client.inflation).loss_limit
    assert env.usable_losses() == pytest.approx((loss_limit, 0.0))
    saving = tax_saving(client, year, -loss_limit, 0.0, client.carryforward, client.carryforward)
    position = env._tax_position(int(env.world.days[env.t]))
    assert position.capacity_short == pytest.approx(loss_limit)
    assert position.short_rate == pytest.approx(saving.saving / loss_limit, rel=1e-6)
    fresh = marginal_rates(client.model_copy(update={"carryforward_short": 0.0}), year + 1)
    assert position.short_rate < fresh[0] - 0.03
    # orders executing next year: the carryforward is used up this year, the gains recur
    january = int(np.datetime64(f"{year + 1}-01-05", "D").astype(np.int64))
    position = env._tax_position(january)
    assert position.capacity_short == pytest.approx(100_000 + default_tables().law(
        "mfj", year + 1, client.indexing, client.inflation).loss_limit)
    assert position.short_rate == pytest.approx(fresh[0])


def test_random_clients_are_drawn_from_the_seed_and_span_the_brackets():
    draws = [draw_profile(np.random.default_rng(seed), 2025, 4) for seed in range(200)]
    assert draw_profile(np.random.default_rng(7), 2025, 4) == draws[7]
    assert {p.filing for p in draws} == {"mfj", "single"}
    incomes = np.array([p.ordinary_income for p in draws])
    assert 40_000 <= incomes.min() < 80_000 and 700_000 < incomes.max() <= 1_500_000
    assert {0.0} < {p.state_rate for p in draws}
    assert all(sorted(p.schedule) == [2026, 2027, 2028, 2029] for p in draws)
    rates = {round(marginal_rates(p, 2025)[0], 2) for p in draws}
    assert len(rates) > 10  # the client is not one bracket
    env = DirectIndexEnv(**SMALL, profile=RANDOM_PROFILE)
    first, _ = env.reset(seed=1)
    client = env.profile
    again, _ = env.reset(seed=1)
    assert env.profile == client
    np.testing.assert_array_equal(first["portfolio"], again["portfolio"])
    env.reset(seed=2)
    assert env.profile != client
