"""Environment step throughput: 500 assets, daily cadence, guardrail off.

Prints steps per second of `taxharvest/DirectIndex-v0` under a no-harvest policy (action
all zeros) and under seeded random actions, and, measured in the same run at the same size,
two tax-free baselines:

(a) FinRL's `StockTradingEnv.step`, re-implemented: a pandas `df.loc[day, :]` lookup,
    sells then buys as Python loops over assets with per-asset cost and checks, the state
    rebuilt by list concatenation (the real FinRL env: about 1,100 steps/s at 500 assets);
(b) the same trade as whole-array numpy operations: the floor of work for a 500-asset step.

Only step calls are timed (`time.perf_counter`); reset, warm-up (numba compilation or
cache load) and action sampling are excluded.

    python benchmarks/env_speed.py [--assets 500] [--steps 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pandas as pd

import taxharvest.envs  # noqa: F401  (registers taxharvest/DirectIndex-v0)

INDICATORS = ("macd", "boll_ub", "boll_lb", "rsi_30", "cci_30", "dx_30",
              "close_30_sma", "close_60_sma")  # FinRL's default INDICATORS
FINRL_REFERENCE = 1_100  # steps/s of the real FinRL StockTradingEnv, 500 assets
TARGET = 5.0  # env at least this many times baseline (a)
WARMUP = 20
HMAX, COST, INITIAL_CASH, REWARD_SCALING = 100, 0.001, 1_000_000.0, 1e-4


def synthetic_prices(n_days: int, n_assets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Close prices (days, n) and technical indicators (days, n, 8)."""
    rng = np.random.default_rng(seed)
    start = np.exp(rng.normal(4.0, 0.6, n_assets))
    close = start * np.exp(np.cumsum(rng.normal(0.0003, 0.015, (n_days, n_assets)), axis=0))
    tech = rng.normal(size=(n_days, n_assets, len(INDICATORS)))
    return close, tech


def finrl_frame(close: np.ndarray, tech: np.ndarray) -> pd.DataFrame:
    """FinRL's long data frame: one row per (day, tic), indexed by day."""
    n_days, n_assets = close.shape
    dates = pd.bdate_range("2010-01-04", periods=n_days).strftime("%Y-%m-%d")
    columns = {"date": np.repeat(dates, n_assets),
               "tic": np.tile([f"T{i:03d}" for i in range(n_assets)], n_days),
               "close": close.ravel()}
    columns |= {name: tech[:, :, k].ravel() for k, name in enumerate(INDICATORS)}
    return pd.DataFrame(columns, index=np.repeat(np.arange(n_days), n_assets))


class FinRLStep:
    """FinRL's `StockTradingEnv.step` without a turbulence threshold.

    Same per-step work as FinRL: Python-list state, `sum()` over numpy arrays for the
    total asset value, `argsort` of the integer actions, per-asset `_sell_stock` /
    `_buy_stock`, `df.loc[day, :]`, the state rebuilt by list concatenation, memories
    appended. FinRL's per-step `len(df.index.unique())` and `len(df.tic.unique())` are
    computed once here instead, which favours the baseline.
    """

    def __init__(self, df: pd.DataFrame, n_assets: int) -> None:
        self.df, self.stock_dim = df, n_assets
        self.n_days = len(df.index.unique())
        self.buy_cost_pct = [COST] * n_assets
        self.sell_cost_pct = [COST] * n_assets

    def reset(self) -> None:
        self.day, self.cost, self.trades = 0, 0.0, 0
        self.data = self.df.loc[self.day, :]
        self.state = self._state(INITIAL_CASH, [0] * self.stock_dim)
        self.asset_memory = [self._total_asset()]
        self.rewards_memory, self.actions_memory, self.state_memory = [], [], []
        self.date_memory = [self.data.date.unique()[0]]

    def _state(self, cash: float, holdings: list) -> list:
        return ([cash] + self.data.close.values.tolist() + list(holdings)
                + sum((self.data[tech].values.tolist() for tech in INDICATORS), []))

    def _total_asset(self) -> float:
        n = self.stock_dim
        return self.state[0] + sum(np.array(self.state[1:n + 1])
                                   * np.array(self.state[n + 1:2 * n + 1]))

    def _sell_stock(self, index: int, action) -> float:
        n, state = self.stock_dim, self.state
        if state[index + 2 * n + 1] == True or state[index + n + 1] <= 0:  # noqa: E712 (FinRL)
            return 0
        sell_num_shares = min(abs(action), state[index + n + 1])
        state[0] += state[index + 1] * sell_num_shares * (1 - self.sell_cost_pct[index])
        state[index + n + 1] -= sell_num_shares
        self.cost += state[index + 1] * sell_num_shares * self.sell_cost_pct[index]
        self.trades += 1
        return sell_num_shares

    def _buy_stock(self, index: int, action) -> float:
        n, state = self.stock_dim, self.state
        if state[index + 2 * n + 1] == True:  # noqa: E712 (FinRL)
            return 0
        available_amount = state[0] // (state[index + 1] * (1 + self.buy_cost_pct[index]))
        buy_num_shares = min(available_amount, action)
        state[0] -= state[index + 1] * buy_num_shares * (1 + self.buy_cost_pct[index])
        state[index + n + 1] += buy_num_shares
        self.cost += state[index + 1] * buy_num_shares * self.buy_cost_pct[index]
        self.trades += 1
        return buy_num_shares

    def step(self, actions: np.ndarray):
        terminal = self.day >= self.n_days - 1
        actions = (actions * HMAX).astype(int)
        begin_total_asset = self._total_asset()
        argsort_actions = np.argsort(actions)
        sell_index = argsort_actions[: np.where(actions < 0)[0].shape[0]]
        buy_index = argsort_actions[::-1][: np.where(actions > 0)[0].shape[0]]
        for index in sell_index:
            actions[index] = self._sell_stock(index, actions[index]) * (-1)
        for index in buy_index:
            actions[index] = self._buy_stock(index, actions[index])
        self.actions_memory.append(actions)
        self.day += 1
        self.data = self.df.loc[self.day, :]
        n = self.stock_dim
        self.state = self._state(self.state[0], self.state[n + 1:2 * n + 1])
        end_total_asset = self._total_asset()
        self.asset_memory.append(end_total_asset)
        self.date_memory.append(self.data.date.unique()[0])
        reward = end_total_asset - begin_total_asset
        self.rewards_memory.append(reward)
        self.state_memory.append(self.state)
        return self.state, reward * REWARD_SCALING, terminal, False, {}


class NumpyStep:
    """The same trade with whole-array numpy operations: no taxes, no loop over assets."""

    def __init__(self, close: np.ndarray, tech: np.ndarray) -> None:
        self.close, self.tech = close, tech.reshape(close.shape[0], -1)

    def reset(self) -> None:
        self.day, self.cash = 0, INITIAL_CASH
        self.holdings = np.zeros(self.close.shape[1])

    def step(self, actions: np.ndarray):
        price = self.close[self.day]
        shares = (actions * HMAX).astype(np.int64)
        begin = self.cash + price @ self.holdings
        tradable = price > 0
        sell = np.where(tradable & (shares < 0), np.minimum(-shares, self.holdings), 0.0)
        self.cash += price @ sell * (1 - COST)
        self.holdings -= sell
        buy = np.where(tradable & (shares > 0), shares, 0.0)
        bill = price @ buy * (1 + COST)
        if bill > self.cash:
            buy = np.floor(buy * (self.cash / bill))
        self.cash -= price @ buy * (1 + COST)
        self.holdings += buy
        self.day += 1
        price = self.close[self.day]
        obs = np.concatenate(([self.cash], price, self.holdings, self.tech[self.day]))
        reward = (self.cash + price @ self.holdings - begin) * REWARD_SCALING
        return obs.astype(np.float32), reward, self.day >= len(self.close) - 1, False, {}


def steps_per_second(step: Callable, reset: Callable, action: Callable, n_steps: int) -> float:
    """Rate of `n_steps` timed step calls after WARMUP untimed ones; resets are untimed."""
    reset()
    for _ in range(WARMUP):
        step(action())
    elapsed = 0.0
    for _ in range(n_steps):
        a = action()
        start = time.perf_counter()
        terminated = step(a)[2]
        elapsed += time.perf_counter() - start
        if terminated:
            reset()
    return n_steps / elapsed


def measure(n_assets: int, n_steps: int, seed: int) -> dict[str, float]:
    close, tech = synthetic_prices(n_steps + WARMUP + 2, n_assets, seed)
    rng = np.random.default_rng(seed)

    def uniform_action() -> np.ndarray:
        return rng.uniform(-1.0, 1.0, n_assets).astype(np.float32)

    finrl, floor = FinRLStep(finrl_frame(close, tech), n_assets), NumpyStep(close, tech)
    env = gym.make("taxharvest/DirectIndex-v0", n_assets=n_assets, cadence="daily",
                   guardrail=False, episode_years=10)
    env.action_space.seed(seed)
    zeros = np.zeros(n_assets, dtype=np.int8)
    rates = {
        "env, no harvest": steps_per_second(env.step, lambda: env.reset(seed=seed),
                                            lambda: zeros, n_steps),
        "env, random actions": steps_per_second(env.step, lambda: env.reset(seed=seed),
                                                env.action_space.sample, n_steps),
        "(a) FinRL step (Python loops)": steps_per_second(finrl.step, finrl.reset,
                                                          uniform_action, n_steps),
        "(b) vectorized numpy step": steps_per_second(floor.step, floor.reset,
                                                      uniform_action, n_steps),
    }
    env.close()
    return rates


def report(rates: dict[str, float], n_assets: int, n_steps: int) -> None:
    print(f"{n_assets} assets, daily cadence, guardrail off, {n_steps} timed steps each\n")
    print(f"{'':34s}{'steps/s':>10s}")
    for name, rate in rates.items():
        note = f"   (real FinRL: ~{FINRL_REFERENCE:,})" if name.startswith("(a)") else ""
        print(f"{name:34s}{rate:>10,.0f}{note}")
    finrl, floor = rates["(a) FinRL step (Python loops)"], rates["(b) vectorized numpy step"]
    env_rates = {k: v for k, v in rates.items() if k.startswith("env")}
    print(f"\n{'':34s}{'env/(a)':>10s}{'env/(b)':>10s}")
    for name, rate in env_rates.items():
        print(f"{name:34s}{rate / finrl:>10.2f}{rate / floor:>10.3f}")
    worst = min(env_rates.values()) / finrl
    verdict = "MET" if worst >= TARGET else "NOT MET"
    print(f"\nverdict: target env >= {TARGET:g}x baseline (a) {verdict} "
          f"(worst policy {worst:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report(measure(args.assets, args.steps, args.seed), args.assets, args.steps)


if __name__ == "__main__":
    main()
