"""Is the risk model biased on harvested books? Style factors on and off, and the speeds of
specific risk.

Backtests each policy on the real 2010-2019 development set (read in place, never copied)
and on synthetic markets of 500 stocks over 10 years (``--synthetic`` seeds; their stocks
carry no momentum or size effect, but betas that differ) once per risk-model configuration (market and sector
factors alone, then momentum, size, beta and reversal added): the environment's
``market_risk_model`` is swapped for one whose configuration drives the guardrail, the
decisions and the ex-ante TE. Prints per run the bias statistic (all steps, calm steps,
robust), the half-width of the 95% band of an unbiased model over the steps tested
(``sqrt(2 / T)``), realized TE, mean and max ex-ante TE, decoupling and tax alpha. The same
for the default styles with the specific variances estimated at other speeds
(:data:`SPECIFIC`: each stock's EWMA at the factor variances' 10 days, as before
2026-12-04, or at 42 days, with and without the regime multiplier). Then, per market and
style, how much of the style return's variance is the sampling noise of its daily
regression.

The books differ between those runs (the model steers the decisions), so every run also
feeds every configuration's model the same days and measures, on that run's own book, each
model's bias statistic of the book as held after each step against the next step's active
return ("same book": the rows are the book's model, the columns the model judging it).
Last, the risk model's per-day update time on the real market. All measured in this run.

    .venv/bin/python benchmarks/risk_bias.py [SP500_DIR] [--policies optimizer threshold:0.05]
        [--synthetic 1 2]

SP500_DIR defaults to $TAXHARVEST_SP500_DIR, else ../shared/data/sp500 beside the project.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from taxharvest.agents.registry import make_policy
from taxharvest.envs import direct_index
from taxharvest.envs.world import PROXY_SETS, build_world
from taxharvest.market import load_prices
from taxharvest.market.risk import WARMUP_DAYS
from taxharvest.market.riskmodel import DEFAULT_STYLES, EwmaRiskModel, market_risk_model
from taxharvest.sim.backtest import run_backtest
from taxharvest.sim.metrics import bias_statistic, crash_steps, standardized_active_returns
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.workflows.markets import synthetic_market, window, years_to_end

SYNTHETIC_ASSETS, SYNTHETIC_YEARS = 500, 10.0
DEFAULT_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sp500"
PARQUET, SECTORS = "sp500_daily_dev_2010_2019.parquet", "sectors.csv"
CONFIGS = {  # label -> style factors of the risk model
    "market + sectors": (),
    "+ momentum": ("momentum",),
    "+ momentum, size": ("momentum", "size"),
    "+ momentum, size, beta": ("momentum", "size", "beta"),
    "+ momentum, size, beta, reversal": ("momentum", "size", "beta", "reversal"),
}
COLUMNS = (  # header, measure key, format
    ("bias", "bias_statistic", ".2f"), ("bias calm", "bias_statistic_calm", ".2f"),
    ("bias MAD", "bias_statistic_robust", ".2f"), ("band ±", "band", ".2f"),
    ("real. TE", "tracking_error", ".2%"),
    ("mean ex-ante", "mean_ex_ante_te", ".2%"), ("max ex-ante", "max_ex_ante_te", ".2%"),
    ("decoupl.", "decoupling", ".2%"), ("tax alpha", "tax_alpha", ".2%"),
)
SPECIFIC = {  # label -> specific-risk arguments of the model, with the default styles
    "10 days per stock (before)": {"half_life_specific": 10.0, "specific_regime": False},
    "42 days per stock": {"specific_regime": False},
    "42 days x regime (default)": {},
    "84 days x regime": {"half_life_specific": 84.0},
}
WIDTH = 13


class SharedDays:
    """Every configuration's risk model fed the same days; ``driving``'s is the
    environment's."""

    def __init__(self, market, driving: str, **model_args) -> None:
        self.models: dict[str, EwmaRiskModel] = {
            label: market_risk_model(market, styles=styles, **model_args)
            for label, styles in CONFIGS.items()}
        self.driving = driving

    def update(self, returns_t: np.ndarray) -> None:
        for model in self.models.values():
            model.update(returns_t)

    def risk(self):
        return self.models[self.driving].risk()


def backtest(market, first: str, policy: str, profile: str, driving: str,
             specific: dict | None = None) -> dict:
    """The policy's run with ``driving``'s risk model (its specific risk set by ``specific``):
    its measures, and per configuration the bias statistic (all steps, calm) of the book as
    held after each step."""
    direct_index.market_risk_model = lambda market, **args: SharedDays(
        market, driving, **args, **(specific or {}))
    env = direct_index.DirectIndexEnv(
        market=market, profile=profile, random_start=False, warmup_days=WARMUP_DAYS,
        episode_years=years_to_end(market))
    held = {label: [] for label in CONFIGS}

    def measure_held(*_) -> None:
        book = env.holdings()
        active = book["weights"] - book["benchmark_weights"]
        for label, model in env.risk_model.models.items():
            held[label].append(model.risk().tracking_error(active))

    with quiet_guardrail():
        result = run_backtest(make_policy(policy, profile, env), env,
                              options={"start": first}, progress=measure_held)
    t = result.trajectory
    tested = np.isfinite(standardized_active_returns(t)).sum()
    calm = ~crash_steps(t)
    same_book = {}
    for label, te in held.items():  # step s+1 is judged by the book held after step s
        z = standardized_active_returns(replace(t, ex_ante_te=np.concatenate([[0.0, 0.0],
                                                                             te[:-1]])))
        same_book[label] = (bias_statistic(z), bias_statistic(z[calm]))
    return {**result.metrics, "band": float(np.sqrt(2.0 / tested)),
            "mean_ex_ante_te": float(t.ex_ante_te[t.ex_ante_te > 0].mean()),
            "same_book": same_book}


def print_runs(runs: dict[str, dict]) -> None:
    print(f"{'risk model':34s}" + "".join(f"{h:>{WIDTH}s}" for h, _, _ in COLUMNS))
    for label, m in runs.items():
        print(f"{label:34s}" + "".join(f"{format(m[key], spec):>{WIDTH}s}"
                                       for _, key, spec in COLUMNS))


def update_time(market, styles: tuple[str, ...], repeats: int = 5) -> float:
    """Best per-day update time (seconds) over ``repeats`` passes of the whole market."""
    returns = build_world(market, ()).returns
    best = np.inf
    for _ in range(repeats):
        model = market_risk_model(market, first_row=1, proxy_sets=PROXY_SETS, styles=styles)
        began = time.perf_counter()
        for row in returns[1:]:
            model.update(row)
        best = min(best, (time.perf_counter() - began) / (len(returns) - 1))
    return best


def style_noise(market) -> dict[str, tuple[float, float]]:
    """Per default style over the market's days: the mean square of its daily return and of the
    regression's sampling noise in it (``EwmaRiskModel.style_noise_``)."""
    returns = build_world(market, ()).returns
    model = market_risk_model(market, first_row=1, proxy_sets=PROXY_SETS, styles=DEFAULT_STYLES)
    squares, noise = [], []
    for row in returns[1:]:
        model.update(row)
        squares.append(model.factor_returns_[-len(DEFAULT_STYLES):] ** 2)
        noise.append(model.style_noise_)
    return dict(zip(DEFAULT_STYLES, zip(np.mean(squares, axis=0), np.mean(noise, axis=0),
                                strict=True), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path,
                        default=Path(os.environ.get("TAXHARVEST_SP500_DIR", DEFAULT_DIR)))
    parser.add_argument("--policies", nargs="+", default=["optimizer", "threshold:0.05"])
    parser.add_argument("--profile", default="mfj-800k")
    parser.add_argument("--synthetic", nargs="*", type=int, default=[1], help="seeds")
    args = parser.parse_args()
    real = load_prices(args.folder / PARQUET, args.folder / SECTORS)
    markets = {f"real data {real.dates[0]} to {real.dates[-1]}": real} | {
        f"synthetic seed {seed}": synthetic_market(SYNTHETIC_ASSETS, SYNTHETIC_YEARS, seed)
        for seed in args.synthetic}
    original = direct_index.market_risk_model
    try:
        for name, market in markets.items():
            market, first = window(market, None, None)
            for policy in args.policies:
                runs = {label: backtest(market, first, policy, args.profile, label)
                        for label in CONFIGS}
                print(f"\n{policy}, {args.profile}, {name}")
                print_runs(runs)
                print(f"same book: bias (calm) of the book held, under {' | '.join(CONFIGS)}")
                for label, m in runs.items():
                    print(f"{label:34s}" + "".join(f"{b:>{WIDTH}.2f} ({c:.2f})"
                                                   for b, c in m["same_book"].values()),
                          flush=True)
                default = next(label for label, styles in CONFIGS.items()
                               if styles == DEFAULT_STYLES)
                print(f"specific risk, styles {', '.join(DEFAULT_STYLES)}:")
                print_runs({label: backtest(market, first, policy, args.profile, default, kwargs)
                            for label, kwargs in SPECIFIC.items()})
    finally:
        direct_index.market_risk_model = original
    print("\nstyle returns: annualized volatility, of it the regression's sampling noise (counted "
          "again as specific risk by a book aligned with the style's exposures)")
    for name, market in markets.items():
        for style, (square, noise) in style_noise(market).items():
            print(f"  {name:32s} {style:9s} {np.sqrt(square * 252):6.2%}, noise "
                  f"{np.sqrt(noise * 252):6.2%} ({noise / square:.0%} of the variance)")
    print(f"\nrisk model update, real data, {real.n_assets} stocks + {PROXY_SETS} proxy sets:")
    times = {label: update_time(real, styles) for label, styles in CONFIGS.items()}
    base = next(iter(times.values()))
    for label, elapsed in times.items():
        print(f"  {label:34s} {elapsed * 1e6:7.1f} us/day ({elapsed / base:.1f}x)")


if __name__ == "__main__":
    main()
