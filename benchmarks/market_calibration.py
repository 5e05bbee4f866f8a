"""Synthetic market vs the real 2010-2019 S&P 500 sample, and market-layer speed.

Measures the calibration statistics (``taxharvest.market.synthetic.market_statistics``) on
the real development set (read in place, never copied) and on crash-free synthetic paths
of the same length (several seeds, at the sample's drift, so that drawdown counts compare),
and prints real vs synthetic with the ratio; then the full model's per-regime volatility
and correlation; then the generator's wall time against a naive per-day Python loop of the
same model, the scenario injection time, and the risk model's per-day update time, all
measured in this run. Without the real folder the synthetic side is compared with the
targets stored in ``data/synthetic.yaml`` instead.

    .venv/bin/python benchmarks/market_calibration.py [SP500_DIR] [--seeds 8]

SP500_DIR defaults to $TAXHARVEST_SP500_DIR, else ../shared/data/sp500 beside the project.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from taxharvest.market import SyntheticMarket, inject_scenario, load_prices, market_risk_model
from taxharvest.market.synthetic import (
    TRADING_DAYS,
    load_config,
    market_statistics,
    regime_path,
    regime_statistics,
    student_t,
    transition_matrix,
)

DEFAULT_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sp500"
PARQUET, SECTORS = "sp500_daily_dev_2010_2019.parquet", "sectors.csv"


def real_statistics(folder: Path) -> dict[str, float] | None:
    """Statistics of the real sample, or None (with a message) when it is absent."""
    if not (folder / PARQUET).is_file():
        print(f"real data not found in {folder}: comparing with the stored targets instead")
        return None
    market = load_prices(folder / PARQUET, folder / SECTORS)
    stats = market_statistics(market)
    years = market.dates.astype("datetime64[Y]").astype(int) + 1970
    returns = market.total_returns
    print("real equal-weighted index by year (stressed spells show as high vol and corr):")
    for year in np.unique(years):
        rows = np.flatnonzero((years == year) & (np.arange(len(years)) > 0))
        block = returns[rows][:, np.isfinite(returns[rows]).all(axis=0)]
        corr = np.corrcoef(block.T)
        print(f"  {year}  vol {block.mean(1).std() * np.sqrt(TRADING_DAYS):6.1%}"
              f"  avg corr {corr[~np.eye(len(corr), dtype=bool)].mean():.3f}")
    same = np.bincount(market.sectors)
    same = (same * (same - 1)).sum() / (market.n_assets * (market.n_assets - 1))
    share = (stats["sector_corr"] - stats["avg_corr"]) / ((1 - same) * (1 - stats["avg_corr"]))
    print(f"sector share of non-market variance: {share:.3f} (scenarios.yaml sector_share)\n")
    return stats


def synthetic_statistics(seeds: int, drift: float, **options) -> dict[str, np.ndarray]:
    runs = [market_statistics(SyntheticMarket(seed=seed, drift=drift, **options).generate())
            for seed in range(seeds)]
    return {key: np.array([run[key] for run in runs]) for key in runs[0]}


def naive_generate(generator: SyntheticMarket, sectors: np.ndarray, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The same model drawn day by day in a Python loop, prices and sector baskets updated
    each day: the baseline for the vectorized generator (betas of 1; ``generator`` must
    have generated once, for its calibration)."""
    cal, regimes = generator.calibration_, generator.config.regimes
    rng = np.random.default_rng(seed)
    n_days, n_assets = round(TRADING_DAYS * generator.years), generator.n_assets
    regime = regime_path(transition_matrix(regimes), n_days, rng)
    prices = np.empty((n_days, n_assets))
    prices[0] = 100.0
    weights = np.full(n_assets, 1.0 / n_assets)
    proxies = np.empty((n_days, 11))
    proxies[0] = 100.0
    for day in range(1, n_days):
        g = regime[day]
        m = (cal.drift[g] / TRADING_DAYS + np.sqrt(cal.market_var * regimes.market_var[g])
             * student_t(rng, cal.factor_dof, 1)[0])
        s = np.sqrt(cal.sector_var * regimes.sector_var[g]) * student_t(rng, cal.factor_dof, 11)
        e = (np.sqrt(cal.idio_var * regimes.idio_var[g])
             * student_t(rng, generator.config.idio_dof, n_assets))
        r = np.maximum(m + s[sectors] + e, -0.95)
        prices[day] = prices[day - 1] * (1 + r)
        proxies[day] = proxies[day - 1] * (1 + np.bincount(sectors, weights * r, 11)
                                           / np.bincount(sectors, weights, 11))
        weights = weights * (1 + r)
    return prices, proxies


def best_time(function, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path,
                        default=Path(os.environ.get("TAXHARVEST_SP500_DIR", DEFAULT_DIR)))
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()

    targets = load_config().targets.model_dump()
    real = real_statistics(args.folder)
    reference = real if real is not None else targets
    began = time.perf_counter()
    synth = synthetic_statistics(args.seeds, reference["index_return"], n_assets=500, years=10,
                                 crashes=False)
    full = synthetic_statistics(args.seeds, load_config().drift, n_assets=500, years=10)
    print(f"{args.seeds} synthetic 10-year paths x 2 in {time.perf_counter() - began:.1f}s; "
          "crash-free at the sample's drift, and the full model at its default drift")
    label = "real" if real is not None else "target"
    print(f"{'statistic':20s} {label:>8s} {'synthetic':>16s} {'ratio':>6s} "
          f"{'stored':>8s}   {'full model':>16s}")
    for key, value in reference.items():
        mean, sd = synth[key].mean(), synth[key].std()
        print(f"{key:20s} {value:8.4f} {mean:8.4f} +-{sd:6.4f} {mean / value:6.2f} "
              f"{targets[key]:8.4f}   {full[key].mean():8.4f} +-{full[key].std():6.4f}")

    print("\nfull model by regime (500 stocks, 60 years, seed 0):")
    generator = SyntheticMarket(n_assets=500, years=60, seed=0)
    for name, row in regime_statistics(generator.generate()).items():
        print(f"  {name:9s} {row['days'] / 252 / 60:5.1%} of days  index vol "
              f"{row['index_vol']:6.1%}  stock vol {row['stock_vol']:6.1%}"
              f"  avg corr {row['avg_corr']:.3f}")
    cal = generator.calibration_
    print(f"  calm daily variances market {cal.market_var:.2e} sector {cal.sector_var:.2e} "
          f"idio {cal.idio_var:.2e}; factor t dof {cal.factor_dof:.1f}; "
          f"drifts {np.round(cal.drift, 3)}")

    generator = SyntheticMarket(n_assets=500, years=10, seed=1)
    fast = best_time(generator.generate)
    sectors = generator.generate().sectors
    slow = best_time(lambda: naive_generate(generator, sectors, 1), repeats=1)
    print(f"\ngenerate 500 x 10y: {fast * 1e3:.0f} ms vectorized (with prices, proxies and "
          f"checks), naive per-day loop {slow * 1e3:.0f} ms (returns, prices, baskets): "
          f"{slow / fast:.1f}x")
    market = SyntheticMarket(n_assets=500, years=10, seed=1, crashes=False).generate()
    for name in ("covid-2020", "dotcom-2000"):
        elapsed = best_time(lambda name=name: inject_scenario(market, name, seed=0))
        print(f"inject_scenario {name}: {elapsed * 1e3:.0f} ms")

    returns = market.returns_all()
    model = market_risk_model(market)
    model.update(returns[0])
    began = time.perf_counter()
    for row in returns[1:]:
        model.update(row)
    per_update = (time.perf_counter() - began) / (len(returns) - 1)
    began = time.perf_counter()
    for _ in range(500):
        model.risk()
    per_risk = (time.perf_counter() - began) / 500
    print(f"risk model, {returns.shape[1]} securities: update {per_update * 1e6:.1f} us "
          f"(target <= 50 us), risk() {per_risk * 1e6:.1f} us")


if __name__ == "__main__":
    main()
