"""Factor risk model: the covariance structure every tracking-error figure is computed from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

TRADING_DAYS = 252
WARMUP_DAYS = 126  # trading days of returns a risk model sees before the first decision


@dataclass(frozen=True)
class FactorRisk:
    """Annualized factor covariance ``Sigma = B F B' + diag(d)``.

    Attributes:
        exposures: ``(n, k)`` loadings ``B`` of each security on each factor.
        factor_cov: ``(k, k)`` annualized factor covariance ``F``.
        specific_var: ``(n,)`` annualized specific (idiosyncratic) variance ``d``.
    """

    exposures: np.ndarray
    factor_cov: np.ndarray
    specific_var: np.ndarray

    def __post_init__(self) -> None:
        n, k = np.shape(self.exposures)
        if np.shape(self.factor_cov) != (k, k):
            raise ValueError(f"factor_cov must be ({k}, {k}), got {np.shape(self.factor_cov)}")
        if np.shape(self.specific_var) != (n,):
            raise ValueError(f"specific_var must be ({n},), got {np.shape(self.specific_var)}")
        if np.any(np.asarray(self.specific_var) < 0):
            raise ValueError("specific_var must be non-negative")

    @property
    def n_securities(self) -> int:
        return int(np.shape(self.exposures)[0])

    @property
    def n_factors(self) -> int:
        return int(np.shape(self.exposures)[1])

    def tracking_error(self, active: np.ndarray) -> float:
        """Ex-ante annualized tracking error ``sqrt(a' Sigma a)`` of active weights ``a``, O(n k)."""
        factor_exposure = self.exposures.T @ active
        var = factor_exposure @ self.factor_cov @ factor_exposure + active**2 @ self.specific_var
        return float(np.sqrt(max(var, 0.0)))

    def volatility(self) -> np.ndarray:
        """``(n,)`` annualized volatility of every security, ``sqrt(diag(Sigma))``, O(n k^2)."""
        out = np.empty(self.n_securities)
        _volatility(np.ascontiguousarray(self.exposures, dtype=np.float64),
                    np.ascontiguousarray(self.factor_cov, dtype=np.float64),
                    np.asarray(self.specific_var, dtype=np.float64), out)
        return out

    def covariance(self) -> np.ndarray:
        """Dense ``(n, n)`` covariance; for tests and small problems only."""
        return self.exposures @ self.factor_cov @ self.exposures.T + np.diag(self.specific_var)


@njit(cache=True)
def _volatility(exposures, factor_cov, specific_var, out):
    """``out[i] = sqrt(b_i' F b_i + d_i)`` (clipped at 0), over each row's non-zero
    loadings only: a market, a sector and a few styles of the many factors."""
    n, k = exposures.shape
    nonzero = np.empty(k, np.int64)
    for i in range(n):
        count = 0
        for a in range(k):
            if exposures[i, a] != 0.0:
                nonzero[count] = a
                count += 1
        var = specific_var[i]
        for x in range(count):
            a = nonzero[x]
            row = 0.0
            for y in range(count):
                row += factor_cov[a, nonzero[y]] * exposures[i, nonzero[y]]
            var += exposures[i, a] * row
        out[i] = np.sqrt(max(var, 0.0))
