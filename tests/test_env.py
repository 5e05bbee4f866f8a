"""The Gymnasium environment: API conformance, determinism, no look-ahead, tax faithfulness."""

from __future__ import annotations

import dataclasses
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from synthetic_account import synthetic_account

import taxharvest.envs  # noqa: F401  (registers the environment)
from taxharvest.envs import ENV_ID, DirectIndexEnv
from taxharvest.envs.decision import OptimizerRules
from taxharvest.envs.features import loss_lots
from taxharvest.market.synthetic import SyntheticMarket
from taxharvest.optimize import Intent, Settings, TaxAwareOptimizer, TaxPosition
from taxharvest.tax import kernel
from taxharvest.tax.calendar import WASH_WINDOW_DAYS
from taxharvest.tax.law import get_profile, tax_saving
from taxharvest.tax.ledger import Ledger

SMALL = {"n_assets": 40, "episode_years": 1.0, "cadence": "weekly"}


@pytest.fixture(scope="module")
def market():
    return SyntheticMarket(n_assets=40, years=2.0, seed=3).generate()


def rollout(env: DirectIndexEnv, seed: int, policy_seed: int = 0, steps: int | None = None):
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(policy_seed)
    infos, rewards = [info], []
    done = False
    while not done and (steps is None or len(rewards) < steps):
        action = (rng.random(env.n_assets) < 0.5).astype(np.int8)
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        infos.append(info)
        done = terminated or truncated
    return obs, rewards, infos


def test_gymnasium_and_sb3_checks():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for action in ("binary", "preference"):
            check_env(DirectIndexEnv(**SMALL, action=action), skip_render_check=True)
            sb3_check_env(DirectIndexEnv(**SMALL, action=action), warn=False)


def test_make_spaces_and_render():
    env = gym.make(ENV_ID, render_mode="ansi", **SMALL)
    obs, info = env.reset(seed=0)
    assert obs["assets"].shape == (40, 13) and obs["assets"].dtype == np.float32
    assert obs["portfolio"].shape == (21,) and obs["portfolio"].dtype == np.float32
    assert env.observation_space.contains(obs)
    for key in ("tax_savings", "harvested_loss", "wash_sale_disallowed", "ex_ante_te",
                "active_return", "n_trades"):
        assert key in info
    assert "ex-ante TE" in env.render()


def test_vector_env():
    vec = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync", **SMALL)
    obs, _ = vec.reset(seed=1)
    assert obs["assets"].shape == (2, 40, 13)
    obs, reward, terminated, truncated, _ = vec.step(vec.action_space.sample())
    assert reward.shape == (2,)
    vec.close()


def test_same_seed_same_numbers():
    _, rewards_a, infos_a = rollout(DirectIndexEnv(**SMALL), seed=5, steps=30)
    _, rewards_b, infos_b = rollout(DirectIndexEnv(**SMALL), seed=5, steps=30)
    _, rewards_c, _ = rollout(DirectIndexEnv(**SMALL), seed=6, steps=30)
    assert rewards_a == rewards_b
    assert [i["portfolio_value"] for i in infos_a] == [i["portfolio_value"] for i in infos_b]
    assert rewards_a != rewards_c


def test_no_look_ahead(market):
    """Changing prices after day t leaves the observation and decision at t unchanged."""
    env = DirectIndexEnv(market=market, random_start=False, **SMALL)
    obs, _, _ = rollout(env, seed=0, steps=10)
    t = env.t
    shocked = market.total_returns.copy()
    shocked[t + 1:] *= -3.0
    prices = market.prices.copy()
    prices[t + 1:] *= 0.5
    altered = dataclasses.replace(market, prices=prices, total_returns=shocked)
    env2 = DirectIndexEnv(market=altered, random_start=False, **SMALL)
    obs2, _, _ = rollout(env2, seed=0, steps=10)
    assert env2.t == t
    for key in obs:
        np.testing.assert_array_equal(obs[key], obs2[key])


def test_taxes_equal_the_ledger_replay_of_the_trade_log():
    env = DirectIndexEnv(**SMALL)
    rollout(env, seed=2)
    replay = Ledger(env.ledger.tickers, relief="hifo")
    for trades in env.trade_log:
        replay.apply(trades)
    ours, theirs = env.ledger.sales(), replay.sales()
    assert len(ours["shares"]) > 0
    for key in ("shares", "proceeds", "cost_basis", "wash_sale_disallowed", "gain"):
        np.testing.assert_allclose(ours[key], theirs[key])
    np.testing.assert_allclose(env.ledger.realized_by_year, replay.realized_by_year)
    np.testing.assert_allclose(env.ledger.shares.sum(1), replay.shares.sum(1))


@pytest.mark.parametrize("guardrail", [True, False])
def test_no_wash_sale_created_by_the_environment(guardrail):
    env = DirectIndexEnv(guardrail=guardrail, **SMALL)
    _, _, infos = rollout(env, seed=4)
    sales = env.ledger.sales()
    assert sales["wash_sale_disallowed"].sum() == 0.0
    assert sum(i["wash_sale_disallowed"] for i in infos) == 0.0
    # and independently: no purchase within 30 days of a loss sale of the same security
    buys = [(t.ticker[j], t.day[j]) for t in env.trade_log for j in range(len(t))
            if t.side[j] == kernel.BUY]
    losses = [(env.ledger.ticker_index[str(sales["ticker"][j])], sales["sold"][j])
              for j in range(len(sales["shares"])) if sales["gain"][j] < 0]
    for row, sold in losses:
        assert not any(r == row and abs(day - sold) <= WASH_WINDOW_DAYS and day != sold
                       for r, day in buys)


def test_the_rules_core_harvest_sells_only_loss_lots_and_parks_in_the_proxy(market):
    env = DirectIndexEnv(market=market, random_start=False, guardrail=False, decision="rules",
                         **SMALL)
    env.reset(seed=0)
    for _ in range(8):  # past the 30-day window of the initial purchase
        env.step(np.zeros(40, np.int8))
    mask = env.action_mask.copy()
    assert mask.any()
    loss_shares = env.features[:40, 5].copy()
    held = env.ledger.shares[:40].sum(1)
    first_sale = env.ledger.n_sales
    _, _, _, _, info = env.step(mask.astype(np.int8))
    sales = env.ledger.sales(start=first_sale)
    harvested = np.unique(sales["row"][sales["row"] < 40])
    assert harvested.size and set(harvested) <= set(np.flatnonzero(mask))
    assert np.all(sales["gain"][sales["row"] < 40] < 0)  # only lots at a loss were sold
    assert info["harvested_loss"] == pytest.approx(-sales["gain"][sales["row"] < 40].sum())
    sold = np.bincount(sales["row"], sales["shares"], minlength=40)[:40]
    assert np.all(sold <= loss_shares + 1e-9)  # never more than the loss lots at decision
    assert np.all(env.ledger.shares[:40].sum(1)[harvested] == pytest.approx(
        held[harvested] - sold[harvested]))
    assert env._weights()[0][40:].sum() > 0  # proceeds sit in sector proxies


def test_guardrail_keeps_ex_ante_te_near_the_limit_and_reports_relaxations():
    # the rules core's projection: a tight limit and no lock budget, so that the random
    # harvests make the guardrail bind (the program's TE price keeps its books well inside)
    env = DirectIndexEnv(te_limit=0.003, lock_budget=1.0, decision="rules", **SMALL)
    _, _, infos = rollout(env, seed=7)
    target = env.guardrail.te_limit  # the env aims inside the limit, leaving room for drift
    assert target < env.te_limit
    for info in infos[1:]:
        if info["guardrail_status"] in ("unchanged", "projected"):
            assert info["ex_ante_te"] <= target * (1 + 1e-4)
        else:
            assert info["guardrail_status"] in ("relaxed", "fallback")
            assert info["guardrail_reason"]  # every relaxation says why
    assert {i["guardrail_status"] for i in infos[1:]} & {"projected"}
    unguarded = DirectIndexEnv(te_limit=0.003, guardrail=False, decision="rules", **SMALL)
    _, _, raw = rollout(unguarded, seed=7)
    assert max(i["ex_ante_te"] for i in raw) > max(i["ex_ante_te"] for i in infos)


def test_exclusions_are_never_held(market):
    excluded = [market.tickers[0], f"sector:{market.sector_names[market.sectors[5]]}"]
    env = DirectIndexEnv(market=market, exclusions=excluded, random_start=False, **SMALL)
    rollout(env, seed=1)
    mask = env.excluded
    assert mask[0] and mask.sum() > 1
    assert env.ledger.shares[:40][mask].sum() == 0.0
    with pytest.raises(ValueError, match="unknown ticker"):
        DirectIndexEnv(market=market, exclusions=["NOPE"], **SMALL).reset(seed=0)


def test_initial_lots_start_from_a_legacy_portfolio(market):
    lots = [{"ticker": market.tickers[i], "shares": 100.0, "date_acquired": "2020-06-01",
             "cost_basis": 100.0 * 80.0} for i in range(10)]
    env = DirectIndexEnv(market=market, initial_lots=lots, random_start=False, **SMALL)
    env.reset(seed=0)
    assert env.ledger.shares[:10].sum() == pytest.approx(1000.0)
    assert env.ledger.shares[10:].sum() == 0.0
    assert str(np.datetime64(int(env.ledger.acq[0][env.ledger.shares[0] > 0][0]), "D")) == "2020-06-01"
    assert env.start_basis == pytest.approx(10 * 100.0 * 80.0)  # the benchmark's basis too


def test_volatility_feature_matches_the_full_covariance():
    env = DirectIndexEnv(**SMALL)
    env.reset(seed=0)
    np.testing.assert_allclose(env.volatility, np.sqrt(np.diag(env.risk.covariance())))


@pytest.mark.parametrize("decision", ["optimizer", "rules"])
def test_audit_trail_gives_each_trade_a_reason_and_its_lots(market, decision):
    env = DirectIndexEnv(market=market, random_start=False, record_trades=True,
                         decision=decision, **SMALL)
    env.reset(seed=0)
    for _ in range(8):
        env.step(np.zeros(40, np.int8))
    trades = []
    for _ in range(6):
        _, _, _, _, info = env.step(env.action_mask.astype(np.int8))
        trades += info["trades"]
    harvests = [t for t in trades if t["reason"].startswith("harvest")]
    assert harvests and all(t["side"] == "sell" for t in harvests)
    for trade in harvests:  # the program's loss lots may have risen by the execution day
        assert trade["lots"]
        assert decision == "optimizer" or all(lot["gain"] < 0 for lot in trade["lots"])
        assert trade["realized_gain"] == pytest.approx(sum(lot["gain"] for lot in trade["lots"]))
    assert all(t["reason"] for t in trades)
    assert decision == "optimizer" or any(t["reason"].startswith("proxy") and t["side"] == "buy"
                                          for t in trades)


@pytest.mark.parametrize("scenario", ["covid-2020", "gfc-2008"])
def test_guardrail_holds_the_limit_through_a_crash_under_a_random_harvester(scenario):
    from taxharvest.market.scenarios import inject_scenario

    base = SyntheticMarket(n_assets=200, years=2.6, seed=11).generate()
    crash = inject_scenario(base, scenario, start_date=base.dates[150], seed=1)
    guarded = DirectIndexEnv(market=crash, random_start=False, episode_years=2.0,
                             cadence="weekly")
    _, _, infos = rollout(guarded, seed=0)
    worst = max(i["ex_ante_te"] for i in infos)
    # covid-2020 stays inside the limit; through gfc-2008 volatility quadruples with names
    # frozen in wash windows, and the limit may be left (README): never silently, never far
    assert worst <= guarded.te_limit * (1 + 1e-6) or (
        scenario == "gfc-2008" and worst <= 1.5 * guarded.te_limit)
    # the program aims at 90% of the limit and its tickets may use the rest; a decision
    # above the limit is relaxed and says why
    assert all(i["ex_ante_te"] <= guarded.te_limit * (1 + 1e-6)
               or (i["guardrail_status"] == "relaxed" and i["guardrail_reason"])
               for i in infos[1:])
    unguarded = DirectIndexEnv(market=crash, random_start=False, episode_years=2.0,
                               cadence="weekly", guardrail=False)
    _, _, raw = rollout(unguarded, seed=0)
    assert max(i["ex_ante_te"] for i in raw) > 2 * guarded.te_limit


def test_late_listing_joins_the_benchmark_and_the_book_at_reconstitution(market):
    prices, returns = market.prices.copy(), market.total_returns.copy()
    prices[:200, 3] = np.nan
    returns[:200, 3] = np.nan
    returns[200, 3] = 0.0
    weights = np.where(np.arange(40) == 3, 0.0, 1.0 / 39)  # equal-weighted, as real data loads
    late = dataclasses.replace(market, prices=prices, total_returns=returns,
                               benchmark_weights=weights)
    env = DirectIndexEnv(market=late, random_start=False, benchmark_rebalance="quarterly",
                         **SMALL)
    env.reset(seed=0)
    assert env._bench_weights()[3] == 0.0 and env.ledger.shares[3].sum() == 0.0
    assert env.observation_space.contains(env._observation())
    while env.t < 270:
        env.step(np.zeros(40, np.int8))
    assert env._bench_weights()[3] > 0.0
    assert env.ledger.shares[3].sum() > 0.0
    assert np.isfinite(env.bench_path[: env.t + 1]).all()


@pytest.mark.parametrize("guardrail", [True, False])
def test_a_stock_outside_the_index_is_never_bought(market, guardrail):
    # a late listing stays out of a buy-and-hold benchmark; the program must not take it as a
    # replacement or a hedge (its risk estimate rests on a short history)
    prices, returns = market.prices.copy(), market.total_returns.copy()
    prices[:200, 3] = np.nan
    returns[:200, 3] = np.nan
    returns[200, 3] = 0.0
    weights = np.where(np.arange(40) == 3, 0.0, 1.0 / 39)
    late = dataclasses.replace(market, prices=prices, total_returns=returns,
                               benchmark_weights=weights)
    env = DirectIndexEnv(market=late, random_start=False, guardrail=guardrail, **SMALL)
    env.reset(seed=0)
    bought, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_mask.astype(np.int8))
        bought += int(env.ledger.shares[3].sum() > 0)
        done = terminated or truncated
    assert env._bench_weights()[3] == 0.0 and bought == 0
    if guardrail:  # unguarded, TE priced at a tenth, a harvested name may stay in its proxy
        # guarded, every benchmark name is held but one sold at a loss inside its wash window
        missing = (weights > 0) & (env.ledger.shares[:40].sum(axis=1) <= 0)
        assert not (missing & ~env.broker.blocks(env.broker.day).buy_blocked[:40]).any()


def test_stable_baselines3_subprocess_vector_env():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    # "module:id" makes each subprocess import the package that registers the environment
    vec = make_vec_env(f"taxharvest.envs:{ENV_ID}", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
                       env_kwargs=SMALL)
    obs = vec.reset()
    assert obs["assets"].shape == (2, 40, 13)
    obs, rewards, dones, infos = vec.step(np.zeros((2, 40), np.int8))
    assert rewards.shape == (2,) and len(infos) == 2
    vec.close()


def test_random_crash_windows_that_do_not_fit_are_drawn_again():
    env = DirectIndexEnv(n_assets=20, episode_years=1.0, scenario_probability=1.0)
    env.reset(seed=0)
    for _ in range(12):  # long templates (dotcom-2000: 633 days) cannot fit a 1-year market
        obs, _ = env.reset()
        assert env.observation_space.contains(obs)
    with pytest.raises(ValueError, match="needs"):
        env.reset(options={"scenario": "dotcom-2000", "scenario_date": env.market.dates[200]})


@pytest.mark.parametrize("guardrail", [True, False])
def test_a_book_that_never_harvests_tracks_its_benchmark_with_dividends(guardrail):
    """Payers beside non-payers: the benchmark reinvests distributions across the index and
    the account invests its dividend cash toward the benchmark, so `hold` tracks it."""
    env = DirectIndexEnv(n_assets=60, episode_years=3.0, cadence="weekly", guardrail=guardrail,
                         synthetic={"dividends": True}, record_trades=True)
    _, info = env.reset(seed=11)
    assert env.market.dividends.sum() > 0 and (env.market.dividends.sum(axis=0) == 0).any()
    gaps, sides = [], set()
    done = False
    while not done:
        _, _, done, _, info = env.step(np.zeros(env.n_assets, bool))
        gaps.append(info["portfolio_value"] / info["benchmark_value"] - 1.0)
        sides |= {trade["side"] for trade in info["trades"]}
    assert sides == {"buy"}  # only its own cash reinvested, never a sale
    assert max(abs(g) for g in gaps) < 1e-3
    assert info["te_held"] < (2e-4 if guardrail else 5e-4)  # unguarded: TE priced at a tenth


def test_a_start_on_the_first_date_holds_until_the_risk_model_is_warm(market):
    env = DirectIndexEnv(market=market, episode_years=1.0, cadence="weekly")
    _, info = env.reset(seed=0, options={"start": str(market.dates[0])})
    assert info["date"] == str(market.dates[0]) and info["warming_up"]
    infos = []
    while True:
        _, _, done, _, info = env.step(np.ones(env.n_assets, bool))  # asks to harvest all
        infos.append(info)
        if not info["warming_up"] or done:
            break
    warm = [i for i in infos if i["warming_up"]]
    assert warm and not info["warming_up"]
    assert all(i["harvested_loss"] == 0 and not i["action_mask"].any() for i in warm)
    assert env.t >= env.warmup_days - 1


def test_cash_flows_deposit_and_a_tax_aware_withdrawal(hand_market):
    """Known lots: a $12,000 withdrawal sells each stock pro rata to its value, loss lots
    first (short-term before long-term), never the short-term gain; a deposit is invested;
    the benchmark account pays and receives the same dollars."""
    from taxharvest.envs.cashflows import CashFlow

    prices = np.column_stack([np.where(np.arange(80) < 30, 100.0, 90.0), np.full(80, 130.0)])
    market = hand_market(prices)
    lots = [
        {"ticker": "S0", "shares": 100, "date_acquired": "2025-01-02", "cost_basis": 10_000},
        {"ticker": "S0", "shares": 100, "date_acquired": "2023-01-03", "cost_basis": 8_000},
        {"ticker": "S1", "shares": 100, "date_acquired": "2023-01-03", "cost_basis": 15_000},
        {"ticker": "S1", "shares": 50, "date_acquired": "2025-03-03", "cost_basis": 5_000},
    ]
    withdraw, deposit = str(market.dates[40]), str(market.dates[50])
    env = DirectIndexEnv(market=market, initial_lots=lots, guardrail=False, cadence="daily",
                         warmup_days=5, episode_years=0.3, record_trades=True, decision="rules",
                         cash_flows=[CashFlow(amount=-12_000, date=withdraw),
                                     CashFlow(amount=10_000, date=deposit)])
    _, info = env.reset(options={"start": str(market.dates[0])})
    flows, trades = {}, []
    done = False
    while not done:
        bench_before = info["benchmark_value"]
        _, _, done, _, info = env.step(np.zeros(2, bool))
        trades += info["trades"]
        if info["cash_flow"]:
            flows[info["date"]] = info["cash_flow"]
            assert info["benchmark_value"] - bench_before == pytest.approx(info["cash_flow"])
    assert flows == {withdraw: pytest.approx(-12_000), deposit: pytest.approx(10_000)}
    sold = [t for t in trades if t["side"] == "sell"]
    assert {t["ticker"]: t["shares"] for t in sold} == {"S0": pytest.approx(64),
                                                        "S1": pytest.approx(48)}
    assert all(t["reason"].startswith("withdrawal") for t in sold)
    sales = env.ledger.sales()
    assert sales["gain"][~sales["long_term"]].sum() == pytest.approx(-640)  # S0's ST loss lot
    assert sales["gain"][sales["long_term"]].sum() == pytest.approx(-960)  # S1's LT loss lot
    assert any(t["side"] == "buy" and t["date"] > deposit for t in trades)  # deposit invested
    assert info["portfolio_value"] > 0


def test_a_spin_off_day_is_no_phantom_loss_and_no_tracking_error(hand_market):
    """S0 pays out 30 of its 100 in a spin-off: the benchmark reinvests it, the account gets
    the property's value in cash with 30% of the basis (IRC §358), so nothing looks harvestable
    and the book keeps tracking."""
    from taxharvest.market.universe import sector_proxies

    prices = np.column_stack([np.where(np.arange(60) < 20, 100.0, 70.0), np.full(60, 100.0)])
    base = hand_market(prices)
    returns = np.zeros_like(prices)  # value preserved through the distribution
    proxy, names = sector_proxies(returns, base.sectors, base.benchmark_weights, base.sector_names)
    spin_day = str(base.dates[20])
    market = dataclasses.replace(base, total_returns=returns, proxy_prices=proxy,
                                 proxy_names=names,
                                 corporate_actions=(("S0", spin_day, "distribution", 30.0, ""),))
    env = DirectIndexEnv(market=market, cadence="daily", warmup_days=5, episode_years=0.2,
                         random_start=False)
    _, info = env.reset(options={"start": str(market.dates[6])})
    gaps = []
    done = False
    while not done:
        _, _, done, _, info = env.step(np.ones(2, bool))  # harvest anything at a loss
        gaps.append(abs(info["portfolio_value"] / info["benchmark_value"] - 1))
        assert info["harvested_loss"] == 0.0
    assert max(gaps) < 1e-4
    sales = env.ledger.sales()
    assert len(sales["gain"]) == 1 and sales["gain"][0] == pytest.approx(0.0, abs=1e-6)
    lots = [lot for lot in env.ledger.open_lots() if lot["ticker"] == "S0"]
    assert sum(lot["cost_basis"] for lot in lots) / sum(lot["shares"] for lot in lots) \
        == pytest.approx(70.0, rel=1e-3)


def test_the_optimizer_core_harvests_inside_the_te_bound_without_wash_sales():
    env = DirectIndexEnv(n_assets=24, episode_years=0.6, cadence="weekly", decision="optimizer",
                         scenario_probability=1.0)
    _, infos = rollout(env, seed=5)[1:]
    target = env.guardrail.te_limit
    assert all(i["ex_ante_te"] <= target * (1 + 1e-3) or i["guardrail_status"] == "relaxed"
               for i in infos[1:])
    assert sum(i["harvested_loss"] for i in infos) > 0
    assert env.ledger.total_disallowed == 0.0


def test_a_concentrated_legacy_book_moves_in_within_its_yearly_gain_budget():
    """Three names bought at a third of today's price: the transition realizes about the
    yearly net gain budget each year, no more, and lowers the TE as it goes, every decision
    above the limit reported as relaxed with its cause."""
    market = SyntheticMarket(n_assets=40, years=4.0, seed=3).generate()
    start = 126
    lots = [{"ticker": market.tickers[i], "shares": 2_000.0, "date_acquired": "2019-01-02",
             "cost_basis": 2_000.0 * market.prices[start, i] / 3} for i in range(3)]
    budget = 150_000.0
    env = DirectIndexEnv(market=market, initial_lots=lots, random_start=False, episode_years=3.0,
                         max_gain=budget, te_glide_years=2.0, cadence="monthly")
    _, _, infos = rollout(env, seed=0)
    years = {}
    for sale in zip(*(env.ledger.sales()[key] for key in ("sold", "proceeds", "cost_basis")),
                    strict=True):
        year = str(np.datetime64(int(sale[0]), "D"))[:4]
        years[year] = years.get(year, 0.0) + sale[1] - sale[2]
    # held at the decisions' prices; orders execute at the next day's (harvested losses
    # that offset gains shrink, gains grow): a few percent either way
    assert max(years.values()) <= budget * 1.1
    assert sum(gain > budget / 2 for gain in years.values()) >= 2
    held = [i["te_held"] for i in infos]
    assert held[-1] < held[0] / 2
    relaxed = [i["guardrail_reason"] for i in infos if i["guardrail_status"] == "relaxed"]
    assert relaxed and all("glide path" in r or "gain budget" in r for r in relaxed)
    # the mandate's limit; the program's own bound lies below it (te_buffer): tickets may
    # round past that bound, not past the limit
    assert all(i["ex_ante_te"] <= env.te_limit * (1 + 1e-6) for i in infos[1:]
               if i["guardrail_status"] not in ("relaxed", "off"))


def test_each_reward_sums_to_its_wealth_at_the_end_and_they_differ_by_the_active_return(market):
    """Without the TE penalty the rewards telescope: the tax reward to the settled saving over
    the benchmark (the last year counted once), the wealth reward to the after-tax wealth
    over the benchmark less its start; per step they differ by the portfolio's ratio."""
    runs = {}
    for reward in ("wealth", "tax"):
        env = DirectIndexEnv(market=market, **SMALL, action="preference", reward=reward,
                             te_penalty=0.0)
        _, start = env.reset(seed=1)
        rewards, infos, done = [], [start], False
        while not done:
            _, r, done, _, info = env.step(np.ones(env.n_assets + 1))
            rewards.append(r)
            infos.append(info)
        runs[reward] = np.array(rewards), infos
    (wealth, infos), (tax, _) = runs["wealth"], runs["tax"]
    end = infos[-1]
    assert end["savings_account"] > 0
    assert tax.sum() == pytest.approx(100 * end["savings_account"] / end["benchmark_value"],
                                      rel=1e-9)
    ratio = np.array([i["portfolio_value"] / i["benchmark_value"] for i in infos])
    np.testing.assert_allclose(wealth - tax, 100 * np.diff(ratio), atol=1e-12)
    assert wealth.sum() == pytest.approx(100 * (ratio[-1] - ratio[0]) + tax.sum(), rel=1e-9)


@pytest.mark.parametrize("n_stocks, seed", [(150, 2), (40, 0)])  # the bound binds; relaxed
def test_tickets_keep_the_te_bound_the_program_kept(n_stocks, seed):
    """Small gain sales dropped and crumbs pooled into tickets move the book past the bound
    the program kept; the orders then go as the program chose them, and say their TE."""
    rules = OptimizerRules(TaxAwareOptimizer(Settings(), method="fast"))
    state = synthetic_account(n_stocks, 8, n_sectors=5, n_excluded=3, n_buy_blocked=5,
                              n_sell_blocked=8, crash=False, seed=seed,
                              tax=TaxPosition(0.408, 0.408, 0.306, 103_000.0, 0.0))
    decision = rules.optimizer.decide(state, Intent.harvest_all(state.n_securities),
                                      min_buy=rules.min_trade)
    held = state.shares.sum(axis=1)
    given = (decision, state.price, loss_lots(state.shares, state.basis, state.price),
             state.excluded, state.value, state.cash, state.shares)
    sells, buys = rules._tickets(*given, state.benchmark - decision.weights)
    weights = (held - sells.sum(axis=1) + buys) * state.price / state.value
    assert state.risk.tracking_error(weights - state.benchmark) > decision.te_cap
    sells, buys, te = rules.orders(*given, state.benchmark, state.risk)
    weights = (held - sells.sum(axis=1) + buys) * state.price / state.value
    assert te == state.risk.tracking_error(weights - state.benchmark) <= decision.te_cap


def test_a_lot_sold_down_to_dust_is_sold_out():
    """An interior point's sale of all but a millionth of a lot sells the lot: the residue
    would stay a lot of cents, offered to every program after; a half sale stays half."""
    rules = OptimizerRules(TaxAwareOptimizer(Settings(), method="fast"))
    state = synthetic_account(40, 4, n_sectors=4, n_excluded=0, n_buy_blocked=0,
                              n_sell_blocked=0, crash=False)
    decision = rules.optimizer.decide(state, Intent.harvest_all(state.n_securities),
                                      min_buy=rules.min_trade)
    value = decision.sell_shares * state.price[:, None]
    i, j = np.unravel_index(np.argmax(value), value.shape)
    loss = loss_lots(state.shares, state.basis, state.price)
    for share, sold in ((1 - 1e-6, state.shares[i, j]), (0.5, 0.5 * state.shares[i, j])):
        asked = decision.sell_shares.copy()
        asked[i, j] = share * state.shares[i, j]
        sells, _ = rules._tickets(dataclasses.replace(decision, sell_shares=asked), state.price,
                                  loss, state.excluded, state.value, state.cash, state.shares,
                                  state.benchmark - decision.weights)
        assert sells[i, j] == sold


def _stopping_market(hand_market, stop_row: int):
    """Four stocks on random walks; S3's last price is on ``stop_row``."""
    rng = np.random.default_rng(5)
    prices = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (160, 4)), axis=0))
    prices[stop_row + 1:, 3] = np.nan
    return hand_market(prices)


def test_a_decision_on_a_names_last_day_tracks_the_rest_of_the_index(hand_market):
    """The account sells S3 at its last close; the index spreads its value over the rest the
    next day: that day's decision tracks the rest, not an index still holding S3."""
    market = _stopping_market(hand_market, 100)
    env = DirectIndexEnv(market=market, cadence="daily", warmup_days=30, episode_years=0.4,
                         random_start=False, decision="optimizer")
    env.reset(options={"start": str(market.dates[40])})
    te, done = [], False
    while not done:
        _, _, done, _, info = env.step(np.zeros(4))
        te.append(info["ex_ante_te"])
    assert env.ledger.shares[3].sum() == 0.0
    assert max(te) < 1e-3


def test_an_order_executes_after_the_ledger_grew_its_lot_slots(hand_market):
    """A forced sale on the execution day may widen the ledger's lot table (a wash sale's
    pieces): the order, sized when decided, still sells its lots by purchase."""
    from taxharvest.envs.broker import Order

    market = _stopping_market(hand_market, 150)
    env = DirectIndexEnv(market=market, cadence="daily", warmup_days=30, episode_years=0.3,
                         random_start=False)
    env.reset(options={"start": str(market.dates[40])})
    lots, broker = env.ledger, env.broker
    held = lots.shares[0].sum()
    sells = np.zeros_like(lots.shares)
    slot = int(np.flatnonzero(lots.shares[0] > 0)[0])
    sells[0, slot] = lots.shares[0, slot] / 2
    m = lots.shares.shape[0]
    order = Order(execute_at=broker.t, shares=-sells.sum(axis=1), harvest=np.zeros(4, bool),
                  swap_back=np.zeros(4, bool), adjustment=np.zeros(m), lot_sells=sells,
                  lot_ids=lots.purchase.copy())
    lots._grow_slots()
    broker._execute_order(order)
    assert lots.shares[0].sum() == pytest.approx(held - sells[0, slot])


def test_an_optimal_decision_is_projected_where_its_program_te_reaches_the_bound():
    """The bound is on the program's TE (frozen positions stressed), not the plain one."""
    from types import SimpleNamespace

    from taxharvest.envs.decision import _Status

    def status(program_te):
        return _Status(SimpleNamespace(status="optimal", reason="", turnover=0.0, te=0.004,
                                       te_cap=0.01, program_te=program_te)).status

    assert status(0.00999999) == "projected" and status(0.005) == "unchanged"



def test_the_accrued_saving_is_the_years_tax_saving_as_it_stands(market):
    """Each step's accrued saving (the tax reward's year so far) is the law's tax saving of
    the realized gains to date, both carryforward chains in, across the years' turns."""
    profile = get_profile("mfj-800k").model_copy(
        update={"carryforward_short": 20_000.0, "carryforward_long": 5_000.0})
    env = DirectIndexEnv(market=market, **SMALL, action="preference", profile=profile)
    env.reset(seed=1)
    done, seen = False, set()
    while not done:
        _, _, done, _, _ = env.step(np.ones(env.n_assets + 1))
        if done:
            break
        short, long = env.ledger.realized(env.year)
        expected = tax_saving(profile, env.year, short, long, env.tracker.carry_base,
                              env.tracker.carry_with).saving
        assert env._accrued_saving() == pytest.approx(expected, rel=1e-12, abs=1e-9)
        seen.add((env.year, expected != 0.0))
    assert len({year for year, _ in seen}) >= 2 and any(moved for _, moved in seen)
