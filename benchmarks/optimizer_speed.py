"""Tax-aware optimizer speed: the fast path, the cvxpy reference, and a rebuild-every-call baseline.

The hard case a user meets, a crash day: 500 stocks plus 22 replacements (a sector ETF and a
basket per sector), 16 factors, up to 8 lots per security with 85% of them 15-35% under water,
60 stocks wash-blocked from buying (harvested into their replacements in the last 30 days), 40
sell-blocked (bought in the last 30 days), 10 excluded; mfj-800k rates with $103k of short-term
capacity, a 1% TE limit, every loss preferred. Every decision is a fresh account (another
seed), everything the optimizer does for it included (both passes and the fallbacks).

Frozen positions: the specific risk of the wash-blocked and sell-blocked names (and of the
harvest candidates, for what a decision trades of them) is priced at ``frozen_stress`` (3x)
volatility (the program's specific variances and a linear term; its factor rows stay the
16). On this crash day the stressed TE bound is out of reach for the harvests, so a decision
is the stressed program found infeasible (certified), the plain risk model without new
harvests, and the second pass's stressed program: the path a user meets on such a day. The
same decisions with ``frozen_stress=1`` (the plain program) are timed alongside.

Every figure is measured in the same run: the fast path, the cvxpy reference (compiled once,
DPP), a baseline that rebuilds and compiles the cvxpy problem for each decision, and the
ratios between them.

Run: ``.venv/bin/python benchmarks/optimizer_speed.py [--decisions 40]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from taxharvest.optimize import Intent, Settings, TaxAwareOptimizer, build_problem

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the shared fixtures
from synthetic_account import synthetic_account  # noqa: E402

TARGET_MS = 10.0


def timed(optimizer: TaxAwareOptimizer, states, intent) -> tuple[list, list[float], list[float]]:
    """Decisions, wall milliseconds and CPU milliseconds of each."""
    decisions, wall, cpu = [], [], []
    for state in states:
        start_cpu = time.process_time()
        decisions.append(optimizer.decide(state, intent))
        cpu.append(1e3 * (time.process_time() - start_cpu))
        wall.append(decisions[-1].solve_ms)
    return decisions, wall, cpu


def line(label: str, wall: list[float], cpu: list[float], decisions) -> str:
    statuses = sorted({d.status for d in decisions})
    return (
        f"{label:28s} median {np.median(wall):8.2f} ms  p90 {np.percentile(wall, 90):8.2f} ms  "
        f"(CPU median {np.median(cpu):7.2f} ms; {len(wall)} decisions; {statuses})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=40, help="fast-path decisions")
    parser.add_argument("--reference-decisions", type=int, default=10)
    parser.add_argument("--baseline-decisions", type=int, default=2,
                        help="decisions that rebuild and compile the cvxpy problem")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    count = max(args.decisions, args.reference_decisions, args.baseline_decisions)
    states = [synthetic_account(500, 8, crash=True, seed=args.seed + s) for s in range(count + 1)]
    warmup, states = states[0], states[1:]
    intent = Intent.harvest_all(warmup.n_securities)
    settings = Settings(te_limit=0.01)
    problem = build_problem(warmup, intent, settings)
    held = warmup.shares > 0
    loss = held & (warmup.basis > warmup.shares * warmup.price[:, None])
    frozen = np.isfinite(problem.frozen_shift)
    print(
        f"universe: 500 stocks + 22 replacements, {warmup.risk.n_factors} factors, "
        f"{int(held.sum())} lots ({loss.sum() / held.sum():.0%} at a loss), "
        f"{int(warmup.buy_blocked.sum())} buy-blocked, {int(warmup.sell_blocked.sum())} "
        f"sell-blocked, {int(warmup.excluded.sum())} excluded; current TE "
        f"{problem.tracking_error(problem.held):.3%} ({problem.program_te(problem.held):.3%} "
        f"stressed), limit {settings.te_limit:.1%}"
    )
    print(
        f"{problem.shape[2]} risk rows, {int(frozen.sum())} frozen positions at "
        f"{settings.frozen_stress:g}x specific volatility "
        f"({int((problem.locked | problem.buy_frozen_by_wash).sum())} wash-blocked or "
        f"sell-blocked, {int((frozen & problem.buy_frozen_by_harvest).sum())} harvest candidates)"
    )

    fast = TaxAwareOptimizer(settings, method="fast")
    unstressed = TaxAwareOptimizer(replace(settings, frozen_stress=1.0), method="fast")
    reference = TaxAwareOptimizer(settings, method="reference")
    for optimizer in (fast, unstressed, reference):  # compile (numba cache, cvxpy DPP) first
        optimizer.decide(warmup, intent)
    fast_decisions, fast_wall, fast_cpu = timed(fast, states[: args.decisions], intent)
    print(line("fast path", fast_wall, fast_cpu, fast_decisions))
    fell_back = sum("unreachable with the frozen positions" in d.reason for d in fast_decisions)
    print(f"{'':26s} {fell_back} of {len(fast_decisions)} decisions: the stressed program out "
          f"of reach, solved without new harvests under the plain model")
    plain_decisions, plain_wall, plain_cpu = timed(unstressed, states[: args.decisions], intent)
    print(line("fast path, unstressed", plain_wall, plain_cpu, plain_decisions))
    ref_states = states[: args.reference_decisions]
    ref_decisions, ref_wall, ref_cpu = timed(reference, ref_states, intent)
    print(line("reference (cvxpy, DPP)", ref_wall, ref_cpu, ref_decisions))
    base_states = states[: args.baseline_decisions]
    base_wall, base_cpu, base_decisions = [], [], []
    for state in base_states:
        decisions, wall, cpu = timed(TaxAwareOptimizer(settings), [state], intent)
        base_decisions += decisions
        base_wall += wall
        base_cpu += cpu
    print(line("baseline (rebuild each)", base_wall, base_cpu, base_decisions))

    gaps = []
    for state, a, b in zip(ref_states, fast_decisions, ref_decisions, strict=False):
        decided = build_problem(state, intent, settings)

        def objective(decision, state=state, decided=decided):
            return decided.objective(decision.sell_shares * state.price[:, None] / state.value,
                                     decision.buy_shares * state.price / state.value)

        gaps.append(objective(a) - objective(b))
    realized = np.array([d.realized_short + d.realized_long for d in fast_decisions])
    print(
        f"fast - reference objective: max |gap| {np.abs(gaps).max():.2e} of the book "
        f"(mean {np.mean(gaps):+.2e}); fast path realized median ${np.median(realized):,.0f} "
        f"net, TE max {max(d.te for d in fast_decisions):.4%}; solvers "
        f"{sorted({d.solver for d in fast_decisions})}"
    )
    fast_median, ref_median = np.median(fast_wall), np.median(ref_wall)
    print(
        f"speed-ups: fast vs reference {ref_median / fast_median:.1f}x, reference vs rebuild "
        f"{np.median(base_wall) / ref_median:.1f}x, fast vs rebuild "
        f"{np.median(base_wall) / fast_median:.0f}x; the stressed program costs "
        f"{fast_median / np.median(plain_wall):.2f}x the unstressed one"
    )
    print(
        f"verdict: fast path median {fast_median:.2f} ms "
        f"{'meets' if fast_median <= TARGET_MS else 'MISSES'} target <= {TARGET_MS:g} ms"
    )


if __name__ == "__main__":
    main()
