"""Where a harvester's pre-tax active return comes from: market beta, sectors, single names.

A guarded book's decoupling is its cumulative active return. Its variance is what the risk
model prices; a drift in it is something else. This script backtests a policy, keeps the
book after every step, and splits each step's active return over the securities it held
(stocks and both proxy sets) into

- market: the book's active beta (full-sample betas on the benchmark's daily return) times
  the benchmark's return over the step (a beta held while the market trends: timing);
- sector: each security's sector's mean residual return (benchmark-weighted), times its
  active weight;
- specific: what is left of each security's own return, times its active weight;
- unattributed: the step's measured active return less the three (cash, costs, and the
  day a trade executes on: the step's weights are its closing ones taken back over its
  returns).

Per path it prints each part in %/yr with its t statistic (mean over standard error of the
steps), the mean active beta, the decoupling (DOMAIN's and relative) and the tax alpha.
On the synthetic market every stock has the same expected return, so no part has a
premium to earn: a part beyond two standard errors on every path would be a bias of the
harvester or of the market's generator. All measured in this run, from seeded paths.

    .venv/bin/python benchmarks/active_attribution.py [--policy optimizer] [--paths 4]
        [--assets 200] [--years 5] [--te-limit 0.01] [--prices F --sectors F]
"""

from __future__ import annotations

import argparse

import numpy as np

from taxharvest.agents.registry import make_policy
from taxharvest.market.risk import TRADING_DAYS, WARMUP_DAYS
from taxharvest.sim.backtest import run_backtest
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.tax.law import get_profile
from taxharvest.workflows.evaluate import real_paths, synthetic_paths
from taxharvest.workflows.markets import real_market

PARTS = ("market", "sector", "specific", "unattributed")


class Recorder:
    """A policy wrapper that keeps, before each decision, the row and the benchmark's
    weights: the book after the step is the broker's when the next decision comes."""

    def __init__(self, policy, env) -> None:
        self.policy, self.raw, self.rows, self.books, self.bench = policy, env.unwrapped, [], [], []
        self.name = policy.name

    def reset(self) -> None:
        self.policy.reset()

    def act(self, observation, info):
        raw = self.raw
        self.rows.append(raw.t)
        self.books.append(raw.broker.weights.copy())
        self.bench.append(raw.benchmark.weights(raw.t).copy())
        return self.policy.act(observation, info)


def attribute(recorder: Recorder, trajectory) -> dict[str, np.ndarray]:
    """Per step (after the first): each part of the active return."""
    world = recorder.raw.world
    rows = np.array([*recorder.rows, recorder.raw.t])
    books = np.array([*recorder.books, recorder.raw.broker.weights])
    bench = np.array(recorder.bench)
    daily = np.nan_to_num(world.returns)
    index_daily = np.array([recorder.raw.benchmark.weights(t - 1) @ daily[t]
                            for t in range(rows[0] + 1, rows[-1] + 1)])
    span = daily[rows[0] + 1:rows[-1] + 1]
    centred = index_daily - index_daily.mean()
    beta = (span - span.mean(axis=0)).T @ centred / (centred @ centred)
    steps = np.array([np.prod(1.0 + daily[a + 1:b + 1], axis=0) - 1.0
                      for a, b in zip(rows[:-1], rows[1:], strict=True)])
    index = np.einsum("km,km->k", bench, steps)
    # the step's closing book taken back over its returns: its weights at the step's start
    start = books[1:] / (1.0 + steps)
    start *= (books[1:].sum(axis=1) / start.sum(axis=1))[:, None]
    active_weight = start - bench * start.sum(axis=1, keepdims=True)
    residual = steps - np.outer(index, beta)
    sector = np.zeros_like(residual)
    for k in np.unique(world.sector_of):
        members = world.sector_of == k
        weight = bench[:, members]
        total = weight.sum(axis=1, keepdims=True)
        mean = (residual[:, members] * weight).sum(axis=1, keepdims=True) / np.where(
            total > 0, total, 1.0)
        sector[:, members] = mean
    parts = {"market": (active_weight @ beta) * index,
             "sector": np.einsum("km,km->k", active_weight, sector),
             "specific": np.einsum("km,km->k", active_weight, residual - sector)}
    measured = trajectory.active_returns()
    parts["unattributed"] = measured - sum(parts.values())
    parts["active beta"] = active_weight @ beta
    parts["measured"] = measured
    return parts


def cell(steps: np.ndarray, per_year: float) -> str:
    """A part's mean per step in %/yr and its t statistic."""
    tstat = steps.mean() / (steps.std(ddof=1) / np.sqrt(len(steps)))
    return f"{steps.mean() * per_year:+8.2%} ({tstat:+.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="optimizer")
    parser.add_argument("--profile", default="mfj-800k")
    parser.add_argument("--paths", type=int, default=4)
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument("--years", type=float, default=5.0)
    parser.add_argument("--te-limit", type=float, default=0.01)
    parser.add_argument("--prices")
    parser.add_argument("--sectors")
    args = parser.parse_args()
    profile = get_profile(args.profile)
    if args.prices:
        market = real_market(args.prices, args.sectors)
        paths = real_paths(market, str(market.dates[WARMUP_DAYS]), args.paths)
    else:
        paths = synthetic_paths(args.paths, args.assets, args.years)
    print(f"{args.policy}, {args.profile}, TE limit {args.te_limit:.2%}, weekly: %/yr (t)")
    print(f"{'path':14s} {'active':>14s} " + " ".join(f"{p:>14s}" for p in PARTS)
          + f" {'act. beta':>9s} {'decoupl.':>8s} {'relative':>8s} {'tax α':>7s}")
    for path in paths:
        env, options = path.environment(profile, "weekly", args.te_limit)
        recorder = Recorder(make_policy(args.policy, profile, env), env)
        with quiet_guardrail():
            result = run_backtest(recorder, env, seed=path.seed, options=options)
        t = result.trajectory
        parts = attribute(recorder, t)
        m = result.metrics
        print(f"{path.label:14s} {cell(parts['measured'], t.steps_per_year):>14s} "
              + " ".join(f"{cell(parts[p], t.steps_per_year):>14s}" for p in PARTS)
              + f" {parts['active beta'].mean():+9.4f} {m['decoupling']:8.2%} "
                f"{m['relative_decoupling']:8.2%} {m['tax_alpha']:7.2%}")
    print(f"(betas from the whole episode's daily returns, {TRADING_DAYS} days a year)")


if __name__ == "__main__":
    main()
