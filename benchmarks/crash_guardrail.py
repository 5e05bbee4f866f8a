"""Crash behaviour of the guardrail: covid-2020 and gfc-2008 templates, guardrail on and off.

A random harvester (each harvestable name with probability 1/2 each week) runs through a
synthetic 500-stock market with the crash injected; prints per scenario and mode the
maximum ex-ante TE of the decided portfolios, how many decisions were above the limit, the guardrail's
statuses, the maximum 13-week rolling realized TE, decoupling and the weight in proxies.

    python benchmarks/crash_guardrail.py [--assets 500] [--seed 11]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from taxharvest.envs.direct_index import DirectIndexEnv
from taxharvest.market.scenarios import inject_scenario
from taxharvest.market.synthetic import SyntheticMarket


def run(market, guardrail: bool, n: int, seed: int) -> dict:
    env = DirectIndexEnv(market=market, guardrail=guardrail, random_start=False,
                         episode_years=2.4, cadence="weekly")
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    te, status, value, bench = [], [], [], []
    start = time.perf_counter()
    terminated = False
    while not terminated:
        _, _, terminated, _, info = env.step((rng.random(n) < 0.5).astype(np.int8))
        te.append(info["ex_ante_te"])
        status.append(info["guardrail_status"])
        value.append(info["portfolio_value"])
        bench.append(info["benchmark_value"])
    active = np.diff(np.log(value)) - np.diff(np.log(bench))
    rolling = [active[i - 13:i].std() * np.sqrt(52) for i in range(13, len(active) + 1)]
    gap = np.log(np.array(value) / value[0]) - np.log(np.array(bench) / bench[0])
    return {
        "max_ex_ante_te": max(te), "steps_above": sum(x > env.te_limit for x in te),
        "steps": len(te), "statuses": {s: status.count(s) for s in sorted(set(status))},
        "max_rolling_te": max(rolling), "decoupling": float(np.abs(gap).max()),
        "proxy_weight_end": float(env._weights()[0][n:].sum()),
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    base = SyntheticMarket(n_assets=args.assets, years=3.0, seed=args.seed).generate()
    for name in ("covid-2020", "gfc-2008"):
        market = inject_scenario(base, name, start_date=base.dates[300], seed=1)
        for guardrail in (True, False):
            r = run(market, guardrail, args.assets, seed=0)
            print(f"{name:11s} guardrail {'on ' if guardrail else 'off'}  max ex-ante TE "
                  f"{r['max_ex_ante_te']:.2%} ({r['steps_above']}/{r['steps']} steps above 1%)"
                  f"  max rolling TE {r['max_rolling_te']:.2%}  decoupling {r['decoupling']:.2%}"
                  f"  proxies {r['proxy_weight_end']:.0%}  {r['statuses']}  {r['seconds']:.1f}s")


if __name__ == "__main__":
    main()
