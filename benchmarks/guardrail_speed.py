"""Guardrail speed: binding projections by the fast path and by the cvxpy reference, the
admissibility check, and a rebuild-every-call baseline, all in one run.

Universe: 500 stocks + 11 sector proxies, 16 factors (market, 11 sectors, 4 styles), stock vol
about 28%, specific vol about 20%, cap-weighted benchmark. The held portfolio has 10 excluded
names and 30 recent harvests (wash-sale blocked) already in their proxies. Each binding call
harvests 100 more names, drawn in proportion to weight, into their proxies: a fresh proposal
every call with TE about 1.5% against a 1% limit. The fast path and the reference solve the
same proposals, call by call in turn (both see the same machine load).

Run: ``.venv/bin/python benchmarks/guardrail_speed.py [--solves 200]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cvxpy as cp
import numpy as np

from taxharvest.guardrails import FactorRisk, TrackingErrorGuardrail
from taxharvest.guardrails.program import factor_loadings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the shared fixtures
from synthetic_universe import SyntheticUniverse, synthetic_universe  # noqa: E402

TE_LIMIT = 0.01
BINDING_TARGET_MS = 10.0
UNCHANGED_TARGET_US = 100.0


def held_portfolio(
    universe: SyntheticUniverse, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Held weights, excluded mask, no_buy mask: 10 exclusions and 30 harvests in proxies."""
    n, stocks = len(universe.benchmark), universe.n_stocks
    weight = universe.benchmark[:stocks]
    excluded = np.zeros(n, dtype=bool)
    excluded[rng.choice(stocks, 10, replace=False, p=weight)] = True
    harvested = rng.choice(np.flatnonzero(~excluded[:stocks]), 30, replace=False)
    no_buy = np.zeros(n, dtype=bool)
    no_buy[harvested] = True
    held = universe.swap_to_proxies(universe.benchmark, np.flatnonzero(excluded | no_buy))
    return held, excluded, no_buy


def harvest(
    universe: SyntheticUniverse, held: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``held`` with ``count`` more held stocks, drawn in proportion to weight, in proxies."""
    weight = held[: universe.n_stocks]
    names = rng.choice(universe.n_stocks, count, replace=False, p=weight / weight.sum())
    return universe.swap_to_proxies(held, names)


def naive_projection(
    proposed: np.ndarray,
    benchmark: np.ndarray,
    risk: FactorRisk,
    upper: np.ndarray,
    current: np.ndarray,
    gain_cost: np.ndarray,
) -> np.ndarray:
    """The same projection, rebuilt from constants on every call (no parameters, no cache)."""
    loadings, specific_vol = factor_loadings(risk), np.sqrt(risk.specific_var)
    w = cp.Variable(len(proposed))
    sells = cp.Variable(len(proposed), nonneg=True)
    active = w - benchmark
    tracking_error = cp.norm2(cp.hstack([loadings @ active, cp.multiply(specific_vol, active)]))
    problem = cp.Problem(
        cp.Minimize(0.5 * cp.sum_squares(w - proposed) + gain_cost @ sells),
        [
            cp.sum(w) == 1,
            w >= 0,
            w <= upper,
            sells >= np.minimum(proposed, current) - w,
            tracking_error <= TE_LIMIT,
        ],
    )
    problem.solve(solver="CLARABEL")
    return w.value


def percentiles(samples: list[float]) -> tuple[float, float]:
    return float(np.median(samples)), float(np.percentile(samples, 90))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solves", type=int, default=200, help="binding solves per case")
    parser.add_argument(
        "--fast-calls", type=int, default=2000, help="admissible proposals (no solve)"
    )
    parser.add_argument("--naive-calls", type=int, default=20, help="rebuild-every-call solves")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    universe = synthetic_universe(seed=args.seed)
    risk, benchmark = universe.risk, universe.benchmark
    held, excluded, no_buy = held_portfolio(universe, rng)
    gain_cost = rng.uniform(0.0, 0.05, len(benchmark)) * (held > 0)
    common = {"current": held, "no_buy": no_buy, "excluded": excluded}
    print(
        f"universe: {universe.n_stocks} stocks + {len(universe.proxy)} proxies, "
        f"{risk.n_factors} factors; held TE {risk.tracking_error(held - benchmark):.3%}, "
        f"limit {TE_LIMIT:.1%}"
    )

    fast_guardrail = TrackingErrorGuardrail(TE_LIMIT)
    reference_guardrail = TrackingErrorGuardrail(TE_LIMIT, method="reference")
    fast_median: dict[str, float] = {}
    reference_median: dict[str, float] = {}
    for case, extra in (
        ("binding, gain costs", {"gain_cost": gain_cost}),
        ("binding, L2 only", {}),
    ):
        proposals = [harvest(universe, held, 100, rng) for _ in range(args.solves + 1)]
        times: dict[str, list[float]] = {"fast": [], "reference": []}
        iterations, te_before, statuses, solvers, gap = [], [], set(), set(), 0.0
        for i, proposed in enumerate(proposals):  # the first call of each is a warm-up
            fast = fast_guardrail.project(proposed, benchmark, risk, **common, **extra)
            reference = reference_guardrail.project(proposed, benchmark, risk, **common, **extra)
            if i == 0:
                continue
            times["fast"].append(fast.solve_ms)
            times["reference"].append(reference.solve_ms)
            te_before.append(fast.te_before)
            statuses |= {fast.status, reference.status}
            solvers.add(fast.solver)
            gap = max(gap, float(np.abs(fast.weights - reference.weights).max()))
            program = reference_guardrail.program(
                len(benchmark), risk.n_factors, gain_term="gain_cost" in extra
            )
            iterations.append(program.projection.solver_stats.num_iters)
        for method, samples in times.items():
            median, p90 = percentiles(samples)
            (fast_median if method == "fast" else reference_median)[case] = median
            print(f"{case:20s} {method:9s} median {median:6.2f} ms  p90 {p90:6.2f} ms")
        print(
            f"{'':20s} {reference_median[case] / fast_median[case]:.1f}x faster; fast solvers "
            f"{sorted(solvers)}; max |fast - reference| {gap:.1e}; Clarabel iterations median "
            f"{np.median(iterations):.0f}; proposal TE median {np.median(te_before):.2%}; "
            f"statuses {sorted(statuses)}; {args.solves} solves"
        )

    admissible = [harvest(universe, held, 3, rng) for _ in range(50)]
    admissible = [p for p in admissible if risk.tracking_error(p - benchmark) < TE_LIMIT]
    unchanged = []
    for i in range(args.fast_calls):
        result = fast_guardrail.project(
            admissible[i % len(admissible)], benchmark, risk, **common, gain_cost=gain_cost
        )
        assert result.status == "unchanged", result.reason
        unchanged.append(1e3 * result.solve_ms)
    unchanged_median, unchanged_p90 = percentiles(unchanged)
    print(
        f"admissible check     median {unchanged_median:6.1f} us  p90 {unchanged_p90:6.1f} us  "
        f"({args.fast_calls} calls, no solve)"
    )

    upper = np.where(excluded, 0.0, np.where(no_buy, held, 1.0))
    naive = []
    for _ in range(args.naive_calls):
        proposed = harvest(universe, held, 100, rng)
        start = time.perf_counter()
        naive_projection(proposed, benchmark, risk, upper, held, gain_cost)
        naive.append(1e3 * (time.perf_counter() - start))
    naive_median, _ = percentiles(naive)
    fast_gains = fast_median["binding, gain costs"]
    reference_gains = reference_median["binding, gain costs"]
    print(
        f"naive rebuild        median {naive_median:6.2f} ms  ({args.naive_calls} calls); with "
        f"gain costs the reference is {naive_median / reference_gains:.1f}x and the fast path "
        f"{naive_median / fast_gains:.1f}x faster than it"
    )

    slowest = max(fast_median.values())
    print(
        f"verdict binding: fast median {slowest:.2f} ms (slower case), reference "
        f"{max(reference_median.values()):.2f} ms, rebuild {naive_median:.2f} ms: "
        f"{'meets' if slowest <= BINDING_TARGET_MS else 'MISSES'} target <= "
        f"{BINDING_TARGET_MS:g} ms"
    )
    print(
        f"verdict admissible check: median {unchanged_median:.1f} us "
        f"{'meets' if unchanged_median <= UNCHANGED_TARGET_US else 'MISSES'} target <= "
        f"{UNCHANGED_TARGET_US:g} us"
    )


if __name__ == "__main__":
    main()
