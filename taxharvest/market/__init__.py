"""Market layer: universe and sectors, synthetic and real prices, crash scenarios, risk model."""

from taxharvest.market.risk import FactorRisk
from taxharvest.market.synthetic import SyntheticMarket, market_statistics
from taxharvest.market.universe import (
    GICS_SECTORS,
    MarketData,
    basket_levels,
    canonical_sector,
    prices_from_returns,
)

__all__ = [
    "GICS_SECTORS",
    "FactorRisk",
    "MarketData",
    "SyntheticMarket",
    "basket_levels",
    "canonical_sector",
    "market_statistics",
    "prices_from_returns",
]
