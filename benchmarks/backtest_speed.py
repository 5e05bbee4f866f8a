"""Backtest wall time: 500 stocks, 10 years of daily prices, weekly decisions, guardrail on.

The runs a user makes: the default decision core (``decision="optimizer"``, the tax-aware
program at every weekly decision) under the ``optimizer`` policy (every harvestable stock
preferred at every decision) and under ``monthly-all`` (every loss, once a month); the
baseline, measured in the same run on the same market: the heuristic core
(``decision="rules"``, the guardrail's projection) under ``monthly-all``. Target: each
optimizer-core run under 10 s.

Each run's wall time (``runtime_s``: reset, policy, steps and the run's measures) is split
into the decisions (the environment's ``_decide``: account state, program or rules, tickets;
of which the program's ``decide`` or the guardrail's ``project``) and the rest (the market
steps between decisions, the broker, the risk model, observations, the measures).

    python benchmarks/backtest_speed.py [--assets 500] [--years 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

from taxharvest.agents.rules import MonthlyAllPolicy, OptimizerPolicy
from taxharvest.envs.direct_index import DirectIndexEnv
from taxharvest.sim.backtest import run_backtest
from taxharvest.workflows.markets import synthetic_market

TARGET_S = 10.0


class Clock:
    """Wall seconds spent in wrapped calls."""

    def __init__(self) -> None:
        self.seconds, self.calls = 0.0, 0

    def wrap(self, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1
        return timed


def run(market, decision: str, policy, years: float, seed: int) -> dict:
    env = DirectIndexEnv(market=market, profile="mfj-800k", cadence="weekly", decision=decision,
                         episode_years=years, random_start=False)
    decide, inner = Clock(), Clock()
    env._decide = decide.wrap(env._decide)  # instance attributes: the environment is unchanged
    if decision == "optimizer":
        env.rules.optimizer.decide = inner.wrap(env.rules.optimizer.decide)
    else:
        env.guardrail.project = inner.wrap(env.guardrail.project)
    result = run_backtest(policy, env, seed=seed)
    m = result.metrics
    return {"label": f"{decision} core, {policy.name}", "wall": m["runtime_s"],
            "decide": decide.seconds, "inner": inner.seconds, "decisions": decide.calls,
            "inner_calls": inner.calls, "inner_name": "program" if decision == "optimizer"
            else "guardrail", "tax_alpha": m["tax_alpha"], "te": m["max_ex_ante_te"],
            "statuses": sorted({str(s) for s in result.series["guardrail_status"]})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("taxharvest.guardrails", "taxharvest.optimize"):
        logging.getLogger(name).setLevel(logging.ERROR)
    start = time.perf_counter()
    market = synthetic_market(args.assets, args.years, args.seed)
    print(f"market: {args.assets} stocks, {market.n_days} days, "
          f"{time.perf_counter() - start:.1f}s to generate")
    # compile (numba cache load) and warm every path outside the timing: a short run of each
    for decision in ("optimizer", "rules"):
        run(market, decision, MonthlyAllPolicy(), min(args.years, 0.25), args.seed)
    runs = [run(market, "optimizer", OptimizerPolicy(), args.years, args.seed),
            run(market, "optimizer", MonthlyAllPolicy(), args.years, args.seed),
            run(market, "rules", MonthlyAllPolicy(), args.years, args.seed)]
    baseline = runs[-1]
    for r in runs:
        rest = r["wall"] - r["decide"]
        print(f"{r['label']:30s} {r['wall']:6.1f}s wall ({r['wall'] / baseline['wall']:4.2f}x "
              f"the rules core): decisions {r['decide']:5.1f}s ({r['decisions']} decisions, "
              f"{1e3 * r['decide'] / max(r['decisions'], 1):5.1f} ms each; {r['inner_name']} "
              f"{r['inner']:5.1f}s in {r['inner_calls']} calls), rest {rest:5.1f}s; tax alpha "
              f"{r['tax_alpha']:.2%}, max ex-ante TE {r['te']:.2%}, statuses {r['statuses']}")
    for r in runs[:-1]:
        verdict = "meets" if r["wall"] <= TARGET_S else "MISSES"
        print(f"verdict: {r['label']} {r['wall']:.1f}s {verdict} the {TARGET_S:g} s target"
              + ("" if r["wall"] <= TARGET_S else
                 f" by {r['wall'] - TARGET_S:.1f}s ({r['wall'] / TARGET_S:.2f}x); decisions "
                 f"{r['decide'] / r['wall']:.0%} of it"))


if __name__ == "__main__":
    main()
