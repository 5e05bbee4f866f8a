"""Backtest wall time: 500 stocks, 10 years of daily prices, weekly decisions, `monthly-all`.

Runs the same backtest with the guardrail on (the target: under 30 s) and off (the
baseline), on one synthetic market generated once, and prints both and their ratio.

    python benchmarks/backtest_speed.py [--assets 500] [--years 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import time

from taxharvest.agents.rules import MonthlyAllPolicy
from taxharvest.envs.direct_index import DirectIndexEnv
from taxharvest.sim.backtest import run_backtest
from taxharvest.workflows.markets import synthetic_market


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("taxharvest.guardrails").setLevel(logging.ERROR)
    start = time.perf_counter()
    market = synthetic_market(args.assets, args.years, args.seed)
    print(f"market: {args.assets} stocks, {market.n_days} days, "
          f"{time.perf_counter() - start:.1f}s to generate")
    wall = {}
    for guardrail in (True, False):
        env = DirectIndexEnv(market=market, profile="mfj-800k", cadence="weekly",
                             guardrail=guardrail, episode_years=args.years, random_start=False)
        result = run_backtest(MonthlyAllPolicy(), env, seed=args.seed)
        m = result.metrics
        wall[guardrail] = m["runtime_s"]
        print(f"guardrail {'on ' if guardrail else 'off'}: {m['runtime_s']:6.1f}s wall, "
              f"{len(result.trajectory.dates) - 1} decisions, tax alpha {m['tax_alpha']:.2%}, "
              f"max ex-ante TE {m['max_ex_ante_te']:.2%}, "
              f"{m['guardrail_interventions']} interventions")
    verdict = "meets" if wall[True] < 30 else "misses"
    print(f"guardrail on / off: {wall[True] / wall[False]:.1f}x; "
          f"{verdict} the 30 s target ({wall[True]:.1f}s)")


if __name__ == "__main__":
    main()
