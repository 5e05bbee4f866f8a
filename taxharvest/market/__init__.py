"""Market layer: universe and sectors, synthetic and real prices, crash scenarios, risk model."""

from taxharvest.market.loader import (
    DataError,
    corporate_action_records,
    corporate_action_summary,
    load_prices,
)
from taxharvest.market.risk import FactorRisk
from taxharvest.market.riskmodel import EwmaRiskModel, estimate_risk, market_risk_model
from taxharvest.market.scenarios import (
    get_scenario,
    historical_scenario,
    inject_scenario,
    list_scenarios,
)
from taxharvest.market.synthetic import SyntheticMarket, market_statistics
from taxharvest.market.universe import (
    GICS_SECTORS,
    CorporateAction,
    MarketData,
    basket_levels,
    canonical_sector,
    prices_from_returns,
)

__all__ = [
    "GICS_SECTORS",
    "CorporateAction",
    "DataError",
    "EwmaRiskModel",
    "FactorRisk",
    "MarketData",
    "SyntheticMarket",
    "basket_levels",
    "canonical_sector",
    "corporate_action_records",
    "corporate_action_summary",
    "estimate_risk",
    "get_scenario",
    "historical_scenario",
    "inject_scenario",
    "list_scenarios",
    "load_prices",
    "market_risk_model",
    "market_statistics",
    "prices_from_returns",
]
