"""Rule-based harvesters: each does what its name says, reads only the env's interface."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from taxharvest.agents.base import Decision, Policy
from taxharvest.agents.registry import make_policy
from taxharvest.agents.rules import (
    HoldPolicy,
    MonthlyAllPolicy,
    ThresholdPolicy,
    TunedPolicy,
    period_of,
)
from taxharvest.envs.direct_index import ASSET_FEATURES, PORTFOLIO_FEATURES, DirectIndexEnv
from taxharvest.errors import InputError
from taxharvest.sim.backtest import run_backtest
from taxharvest.tax.law import PROFILES

WORST = ASSET_FEATURES.index("worst_lot_return")


def observation(worst, mask, date="2025-03-03", value=1e6):
    n = len(worst)
    assets = np.zeros((n, len(ASSET_FEATURES)), np.float32)
    assets[:, WORST] = worst
    assets[:, ASSET_FEATURES.index("loss_value_share")] = 1.0
    assets[:, ASSET_FEATURES.index("benchmark_weight")] = 1.0
    info = {"date": date, "portfolio_value": value, "action_mask": np.asarray(mask, bool)}
    return {"assets": assets, "portfolio": np.zeros(len(PORTFOLIO_FEATURES), np.float32)}, info


def test_threshold_harvests_past_the_threshold_and_only_what_the_mask_allows():
    obs, info = observation([-0.12, -0.08, -0.20, 0.05], [1, 1, 0, 0])
    policy = ThresholdPolicy(0.10)
    assert isinstance(policy, Policy)
    decision = policy.act(obs, info)
    assert isinstance(decision, Decision)
    assert decision.action.tolist() == [1, 0, 0, 0]  # -8% is short; -20% is not harvestable
    assert decision.reasons[0] == ("worst lot -12.0% <= -10.0% threshold "
                                   "($250,000 in loss lots, worst 0.0y old)")


def test_cadence_acts_on_the_first_decision_of_each_period():
    days = np.arange(np.datetime64("2025-01-01"), np.datetime64("2025-07-01"))
    weekdays = [str(d) for d in days if d.astype(object).weekday() < 5]
    acted = {}
    for cadence in ("daily", "weekly", "monthly", "quarterly"):
        policy = ThresholdPolicy(0.0, cadence)
        policy.reset()
        acted[cadence] = [d for d in weekdays
                          if policy.act(*observation([-0.3], [1], date=d)).action[0]]
    assert acted["daily"] == weekdays
    assert len(acted["weekly"]) == len({period_of(d, "weekly") for d in weekdays})
    assert all(d in ("2025-01-01",) or np.datetime64(d).astype(object).weekday() == 0
               for d in acted["weekly"])
    assert acted["monthly"] == ["2025-01-01", "2025-02-03", "2025-03-03", "2025-04-01",
                                "2025-05-01", "2025-06-02"]
    assert acted["quarterly"] == ["2025-01-01", "2025-04-01"]
    # reset forgets the period: a new episode acts at once
    policy = MonthlyAllPolicy()
    assert policy.act(*observation([-0.01], [1])).action[0] == 1
    assert policy.act(*observation([-0.01], [1])).action[0] == 0
    policy.reset()
    assert policy.act(*observation([-0.01], [1])).action[0] == 1


def test_threshold_on_a_controlled_path_harvests_minus_12_not_minus_8(hand_market):
    prices = np.full((60, 2), 100.0)
    prices[12:, 0] = 88.0  # -12%
    prices[12:, 1] = 92.0  # -8%
    env = DirectIndexEnv(market=hand_market(prices), profile="mfj-800k", guardrail=False,
                         warmup_days=5, random_start=False, episode_years=10)
    result = run_backtest(make_policy("threshold:0.1", "mfj-800k"), env)
    sold = {row["description"].split()[-1] for row in result.form_8949 if row["gain"] < 0}
    assert sold == {"S0"}
    assert {d["ticker"] for d in result.decisions} == {"S0"}
    assert result.metrics["harvested_losses"] == pytest.approx(0.12 * 500_000)


@pytest.fixture(scope="module")
def synthetic_env():
    return DirectIndexEnv(n_assets=30, episode_years=1.5, cadence="daily", profile="mfj-800k")


def test_hold_never_trades_after_funding(synthetic_env):
    result = run_backtest(HoldPolicy(), synthetic_env, seed=4)
    assert result.metrics["n_trades"] == 0 and result.form_8949 == []
    assert result.decisions == [] and result.metrics["tax_alpha"] == 0.0


def test_monthly_all_acts_once_a_month_on_a_daily_env(synthetic_env):
    result = run_backtest(MonthlyAllPolicy(), synthetic_env, seed=4)
    dates = sorted({d["date"] for d in result.decisions})
    months = [d[:7] for d in dates]
    assert len(dates) > 6 and len(months) == len(set(months))
    decided = [str(d) for d in result.trajectory.dates[:-1]]
    first_of_month = {m: min(d for d in decided if d[:7] == m) for m in months}
    assert all(first_of_month[d[:7]] == d for d in dates)
    assert result.metrics["harvested_losses"] > 0


def test_make_policy_specs_and_errors(tmp_path, monkeypatch):
    assert make_policy("hold", "mfj-800k").name == "hold"
    assert make_policy("monthly-all", "mfj-800k").name == "monthly-all"
    policy = make_policy("threshold:0.05@quarterly", "mfj-800k")
    assert (policy.threshold, policy.cadence) == (0.05, "quarterly")
    for bad in ("", "holdx", "hold:1", "threshold", "threshold:abc", "threshold:1.5",
                "threshold:-0.1", "threshold:0.1@yearly", "ppo:", "tuned:x"):
        with pytest.raises(InputError, match="policy"):
            make_policy(bad, "mfj-800k")
    fake = types.ModuleType("taxharvest.agents.ppo")
    fake.load_policy = lambda path, env: ("loaded", path, env)
    monkeypatch.setitem(sys.modules, "taxharvest.agents.ppo", fake)
    assert make_policy("ppo:models/x", "mfj-800k", env="E") == ("loaded", "models/x", "E")


def test_tuned_reads_the_packaged_file_for_every_preset(tmp_path):
    for name in PROFILES:
        policy = make_policy("tuned", name)
        assert policy.name.startswith("tuned[threshold:") and 0 <= policy.threshold < 1
    path = tmp_path / "tuned.yaml"
    path.write_text("profiles:\n  mfj-800k: {threshold: 0.07, cadence: monthly}\n")
    policy = TunedPolicy("mfj-800k", path)
    assert (policy.threshold, policy.cadence) == (0.07, "monthly")
    with pytest.raises(InputError, match="no tuned entry for profile 'single-60k'"):
        TunedPolicy("single-60k", path)
