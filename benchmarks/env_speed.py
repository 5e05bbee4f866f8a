"""Environment throughput over whole episodes: 500 assets, daily cadence, guardrail off.

What training meets: whole ten-year daily episodes (2,520 steps), each reset counted (a new
synthetic market, the risk model's warm-up, the funded book), under seeded random daily
harvest actions (``action_space.sample()``: every step asks to harvest about half the names)
and under a no-harvest policy (all zeros). Both decision cores with the guardrail off:
``decision="rules"`` (the raw environment: the heuristic pipeline without the projection)
and ``decision="optimizer"`` (the tax-aware program at every step, without a TE bound).

Baselines, measured in the same run over the same episode length, resets counted too:

(a) FinRL's `StockTradingEnv.step`, re-implemented: a pandas `df.loc[day, :]` lookup,
    sells then buys as Python loops over assets with per-asset cost and checks, the state
    rebuilt by list concatenation (the real FinRL env: about 1,100 steps/s at 500 assets);
(b) the same trade as whole-array numpy operations: the floor of work for a 500-asset step.

Timed: ``reset`` and ``step`` calls (``time.perf_counter``); action sampling is not (the
policy's cost). Before timing, one short episode of each environment loads the numba cache.
Each environment's time is split into resets, decisions (``_decide``: the program or the
rules), the market's days (the broker's ``advance``), the risk model's daily update and its
estimate (``risk()``, the factor covariance the TE and the observation read), the observation
and the rest of the step (reward, info, the tax year), so the figure says what caps it.

    python benchmarks/env_speed.py [--assets 500] [--years 10] [--episodes 1] [--seed 0]
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
        if self.day >= self.n_days - 1:  # FinRL's terminal call: the episode's end, no trade
            return self.state, 0.0, True, False, {}
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
        return self.state, reward * REWARD_SCALING, False, False, {}


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


class Split:
    """Wall seconds of the wrapped calls of one environment, by part (instance attributes: the
    environment itself is unchanged)."""

    PARTS = ("reset", "decide", "market days", "risk update", "risk estimate", "observation")

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.PARTS, 0.0)

    def timed(self, part: str, function: Callable) -> Callable:
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - start
        return call

    def watch(self, raw) -> None:
        """Wrap what a reset made anew (the broker, the risk model) and the decision."""
        raw._decide = self.timed("decide", type(raw)._decide.__get__(raw))
        raw.broker.advance = self.timed("market days", type(raw.broker).advance.__get__(raw.broker))
        model = raw.risk_model
        model.update = self.timed("risk update", type(model).update.__get__(model))
        model.risk = self.timed("risk estimate", type(model).risk.__get__(model))
        raw._observation = self.timed("observation", type(raw)._observation.__get__(raw))


def episodes(reset: Callable, step: Callable, action: Callable, count: int) -> tuple[int, float]:
    """Steps and wall seconds of ``count`` whole episodes, resets included (actions not)."""
    steps, elapsed = 0, 0.0
    for _ in range(count):
        start = time.perf_counter()
        reset()
        elapsed += time.perf_counter() - start
        done = False
        while not done:
            a = action()
            start = time.perf_counter()
            done = step(a)[2]
            elapsed += time.perf_counter() - start
            steps += 1
    return steps, elapsed


def measure_env(decision: str, policy: str, n_assets: int, years: float, count: int,
                seed: int) -> dict:
    env = gym.make("taxharvest/DirectIndex-v0", n_assets=n_assets, cadence="daily",
                   guardrail=False, episode_years=years, decision=decision)
    raw = env.unwrapped
    env.action_space.seed(seed)
    zeros = np.zeros(n_assets, dtype=np.int8)
    action = env.action_space.sample if policy == "random" else (lambda: zeros)
    split = Split()
    seeds = iter(range(seed, seed + count))

    def reset():
        start = time.perf_counter()
        env.reset(seed=next(seeds))
        split.seconds["reset"] += time.perf_counter() - start
        split.watch(raw)

    steps, elapsed = episodes(reset, env.step, action, count)
    env.close()
    return {"steps": steps, "seconds": elapsed, "split": split.seconds}


def warm_up(n_assets: int, seed: int) -> None:
    """Load the numba cache (and compile what is not cached) outside the timing."""
    for decision in ("rules", "optimizer"):
        env = gym.make("taxharvest/DirectIndex-v0", n_assets=n_assets, cadence="daily",
                       guardrail=False, episode_years=0.1, decision=decision)
        env.action_space.seed(seed)
        env.reset(seed=seed)
        for _ in range(WARMUP):
            if env.step(env.action_space.sample())[2]:
                env.reset(seed=seed)
        env.close()


def measure(n_assets: int, years: float, count: int, seed: int) -> dict[str, dict]:
    n_days = int(round(years * 252)) + 1
    close, tech = synthetic_prices(n_days, n_assets, seed)
    rng = np.random.default_rng(seed)

    def uniform_action() -> np.ndarray:
        return rng.uniform(-1.0, 1.0, n_assets).astype(np.float32)

    finrl, floor = FinRLStep(finrl_frame(close, tech), n_assets), NumpyStep(close, tech)
    warm_up(n_assets, seed)
    results = {}
    for name, step, reset in (("(a) FinRL step (Python loops)", finrl.step, finrl.reset),
                              ("(b) vectorized numpy step", floor.step, floor.reset)):
        steps, seconds = episodes(reset, step, uniform_action, count)
        results[name] = {"steps": steps, "seconds": seconds, "split": None}
    for decision in ("rules", "optimizer"):
        for policy in ("no harvest", "random"):
            label = f"env {decision} core, {policy}"
            results[label] = measure_env(decision, policy, n_assets, years, count, seed)
            print(f"  measured {label}: {results[label]['steps'] / results[label]['seconds']:,.0f}"
                  f" steps/s", flush=True)
    return results


def report(results: dict[str, dict], n_assets: int, years: float, count: int) -> None:
    print(f"\n{n_assets} assets, daily cadence, guardrail off, {count} whole {years:g}-year "
          f"episode(s) each, resets counted\n")
    rate = {name: r["steps"] / r["seconds"] for name, r in results.items()}
    finrl, floor = rate["(a) FinRL step (Python loops)"], rate["(b) vectorized numpy step"]
    print(f"{'':36s}{'steps/s':>10s}{'env/(a)':>9s}{'env/(b)':>9s}   "
          f"time split: " + " / ".join((*Split.PARTS, "rest of step")))
    for name, r in results.items():
        line = f"{name:36s}{rate[name]:>10,.0f}"
        if r["split"] is None:
            note = f"   (real FinRL: ~{FINRL_REFERENCE:,})" if name.startswith("(a)") else ""
            print(line + note)
            continue
        parts = [r["split"][p] / r["seconds"] for p in Split.PARTS]
        rest = 1.0 - sum(parts)
        print(line + f"{rate[name] / finrl:>9.2f}{rate[name] / floor:>9.3f}   "
              + " / ".join(f"{share:.0%}" for share in (*parts, rest))
              + f"  ({1e3 * r['seconds'] / r['steps']:.2f} ms/step)")
    print()
    for decision in ("rules", "optimizer"):
        worst = min(rate[f"env {decision} core, {p}"] for p in ("no harvest", "random"))
        verdict = "MET" if worst >= TARGET * finrl else "NOT MET"
        gap = "" if worst >= TARGET * finrl else (
            f": {worst / finrl:.2f}x, {TARGET * finrl / worst:.1f}x short (needs "
            f"{1e3 / (TARGET * finrl):.2f} ms per step, takes {1e3 / worst:.2f})")
        print(f"verdict: {decision} core, target env >= {TARGET:g}x baseline (a) {verdict} "
              f"(worst policy {worst / finrl:.2f}x){gap}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report(measure(args.assets, args.years, args.episodes, args.seed), args.assets, args.years,
           args.episodes)


if __name__ == "__main__":
    main()
