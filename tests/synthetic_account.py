"""Synthetic accounts for the decision program's tests and benchmarks (not market data)."""

from __future__ import annotations

import numpy as np
from synthetic_universe import synthetic_universe

from taxharvest.market.risk import FactorRisk
from taxharvest.optimize.account import AccountState, TaxPosition

#: mfj-800k: 40.8% short, 23.8% long, $100k outside short-term gains plus the $3,000 offset.
MFJ_800K = TaxPosition(0.408, 0.238, 0.15, 103_000.0, 0.0)


def synthetic_account(
    n_stocks: int = 500,
    slots: int = 8,
    *,
    n_sectors: int = 11,
    crash: bool = True,
    n_excluded: int = 10,
    n_buy_blocked: int = 60,
    n_sell_blocked: int = 40,
    value: float = 1e6,
    tax: TaxPosition = MFJ_800K,
    seed: int = 0,
) -> AccountState:
    """A drifted direct-indexed book: stocks, one sector ETF and one basket per sector.

    Every held security has 1 to ``slots`` lots of random age; on a crash day (``crash``) most
    lots are 15-35% under water and a few old ones keep a gain, otherwise gains and losses are
    balanced. Some stocks were harvested earlier into their sector's replacements (those stocks
    are buy-blocked), some were bought in the last 30 days (sell-blocked), some are excluded.
    """
    rng = np.random.default_rng(seed)
    universe = synthetic_universe(n_stocks, n_sectors, seed=seed)
    risk, proxies = universe.risk, universe.proxy
    baskets = proxies  # a basket shares its ETF's factor exposures with more specific risk
    exposures = np.vstack([risk.exposures, risk.exposures[baskets]])
    specific = np.concatenate([risk.specific_var, 2.0 * risk.specific_var[baskets]])
    risk = FactorRisk(exposures, risk.factor_cov, specific)
    m = len(specific)
    sector = np.concatenate([universe.sector, universe.sector[baskets]])
    benchmark = np.concatenate([universe.benchmark, np.zeros(n_sectors)])

    harvested = rng.choice(n_stocks, n_buy_blocked, replace=False)
    held = benchmark * rng.lognormal(0.0, 0.1, m)
    for name in harvested:
        replacement = proxies[sector[name]] + (n_sectors if rng.random() < 0.5 else 0)
        held[replacement] += held[name]
        held[name] = 0.0
    cash = 0.002 * value
    held *= (value - cash) / held.sum()

    price = rng.uniform(20.0, 300.0, m)
    share = rng.dirichlet(np.ones(slots), m) * (rng.random((m, slots)) < 0.6)
    share[np.arange(m), rng.integers(0, slots, m)] += 1e-3  # every position has a lot
    share /= share.sum(axis=1, keepdims=True)
    shares = share * (held / price)[:, None]
    lot_return = (
        np.where(rng.random((m, slots)) < 0.85, rng.normal(-0.25, 0.1, (m, slots)),
                 rng.normal(0.3, 0.15, (m, slots)))
        if crash
        else rng.normal(0.02, 0.2, (m, slots))
    )
    basis = shares * price[:, None] / np.exp(np.clip(lot_return, -0.9, 2.0))

    others = np.setdiff1d(np.arange(n_stocks), harvested)
    sell_blocked = np.zeros(m, dtype=bool)
    sell_blocked[rng.choice(others, n_sell_blocked, replace=False)] = True
    excluded = np.zeros(m, dtype=bool)
    pool = np.setdiff1d(others, np.flatnonzero(sell_blocked))
    excluded[rng.choice(pool, n_excluded, replace=False)] = True
    buy_blocked = np.zeros(m, dtype=bool)
    buy_blocked[harvested] = True
    return AccountState(
        price=price,
        shares=shares,
        basis=basis,
        long_term=rng.random((m, slots)) < 0.4,
        cash=cash,
        benchmark=benchmark,
        buy_blocked=buy_blocked,
        sell_blocked=sell_blocked,
        excluded=excluded,
        risk=risk,
        tax=tax,
    )
