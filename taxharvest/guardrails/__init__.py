"""Tracking-error guardrail: a pure function of weights and a factor risk model."""

from taxharvest.guardrails.projection import GuardrailResult, TrackingErrorGuardrail
from taxharvest.market.risk import FactorRisk

__all__ = ["FactorRisk", "GuardrailResult", "TrackingErrorGuardrail"]
