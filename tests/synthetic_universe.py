"""A synthetic direct-indexing universe for guardrail tests and benchmarks (not market data)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taxharvest.market.risk import FactorRisk


@dataclass(frozen=True)
class SyntheticUniverse:
    """Stocks followed by one proxy (sector ETF) per sector.

    Attributes:
        risk: factor model: market, one factor per sector, then style factors; annualized.
        benchmark: cap weights over the stocks, zero on the proxies.
        sector: sector index of every security (stocks and proxies).
        proxy: index of each sector's proxy, ``proxy[sector[i]]`` for security ``i``.
    """

    risk: FactorRisk
    benchmark: np.ndarray
    sector: np.ndarray
    proxy: np.ndarray

    @property
    def n_stocks(self) -> int:
        return len(self.sector) - len(self.proxy)

    def swap_to_proxies(self, weights: np.ndarray, names: np.ndarray) -> np.ndarray:
        """Move the weight of ``names`` into their sector proxies (a harvest)."""
        swapped = weights.copy()
        np.add.at(swapped, self.proxy[self.sector[names]], swapped[names])
        swapped[names] = 0.0
        return swapped


def synthetic_universe(
    n_stocks: int = 500, n_sectors: int = 11, n_styles: int = 4, seed: int = 0
) -> SyntheticUniverse:
    """Stock vol about 25-30%, specific vol about 20%, market vol 16%, lognormal caps."""
    rng = np.random.default_rng(seed)
    n, k = n_stocks + n_sectors, 1 + n_sectors + n_styles
    sector = np.concatenate([rng.integers(0, n_sectors, n_stocks), np.arange(n_sectors)])
    caps = np.concatenate([rng.lognormal(0.0, 1.2, n_stocks), np.zeros(n_sectors)])
    exposures = np.zeros((n, k))
    exposures[:, 0] = np.concatenate([rng.normal(1.0, 0.25, n_stocks), np.ones(n_sectors)])
    exposures[np.arange(n), 1 + sector] = 1.0
    exposures[:n_stocks, 1 + n_sectors :] = rng.normal(0.0, 1.0, (n_stocks, n_styles))
    for s in range(n_sectors):  # a proxy carries its members' average style
        members = sector[:n_stocks] == s
        if members.any():
            exposures[n_stocks + s, 1 + n_sectors :] = exposures[:n_stocks][
                members, 1 + n_sectors :
            ].mean(0)
    vols = np.concatenate([[0.16], np.full(n_sectors, 0.08), np.full(n_styles, 0.04)])
    root = rng.normal(0.0, 0.25, (k, k)) + np.eye(k)
    corr = root @ root.T
    corr /= np.sqrt(np.outer(np.diag(corr), np.diag(corr)))
    specific_vol = np.concatenate(
        [rng.uniform(0.15, 0.25, n_stocks), rng.uniform(0.02, 0.04, n_sectors)]
    )
    risk = FactorRisk(exposures, corr * np.outer(vols, vols), specific_vol**2)
    return SyntheticUniverse(risk, caps / caps.sum(), sector, n_stocks + np.arange(n_sectors))
