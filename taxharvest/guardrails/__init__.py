"""Tracking-error guardrail: a pure function of weights and a factor risk model."""

from taxharvest.guardrails.program import factor_loadings
from taxharvest.guardrails.projection import GuardrailResult, TrackingErrorGuardrail
from taxharvest.market.risk import FactorRisk

__all__ = ["FactorRisk", "GuardrailResult", "TrackingErrorGuardrail", "factor_loadings"]
