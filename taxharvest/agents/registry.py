"""Policies by their command-line names: one parser of policy specs for every workflow."""

from __future__ import annotations

from taxharvest.agents.base import Policy
from taxharvest.agents.rules import (
    HoldPolicy,
    MonthlyAllPolicy,
    OptimizerPolicy,
    ThresholdPolicy,
    TunedPolicy,
)
from taxharvest.errors import InputError
from taxharvest.tax.law import TaxProfile


def make_policy(spec: str, profile: str | TaxProfile, env=None) -> Policy:
    """A policy from its command-line name.

    ``hold`` | ``threshold:X[@cadence]`` | ``monthly-all`` | ``tuned`` | ``optimizer`` |
    ``ppo:PATH`` (loaded
    for ``env`` by :func:`taxharvest.agents.ppo.load_policy`). Raises :class:`InputError` for
    anything else.
    """
    kind, _, arg = spec.strip().partition(":")
    if kind == "hold" and not arg:
        return HoldPolicy()
    if kind == "monthly-all" and not arg:
        return MonthlyAllPolicy()
    if kind == "optimizer" and not arg:
        return OptimizerPolicy()
    if kind == "tuned" and not arg:
        return TunedPolicy(profile)
    if kind == "threshold" and arg:
        value, _, cadence = arg.partition("@")
        try:
            return ThresholdPolicy(float(value), cadence or "weekly")
        except ValueError as err:
            raise InputError(f"bad policy {spec!r}: {err}", field="policy") from None
    if kind == "ppo" and arg:
        from taxharvest.agents.ppo import load_policy

        return load_policy(arg, env)
    raise InputError(f"unknown policy {spec!r}; expected hold, threshold:X[@cadence] "
                     "(X a fraction such as 0.1), monthly-all, tuned, optimizer or ppo:PATH", field="policy")
