"""Randomized clients: one policy trained across brackets reads the client from its observation.

``draw_profile`` draws a :class:`~taxharvest.tax.law.TaxProfile` spanning the presets and
beyond, with a changing income path, so that a network trained on many clients must read the
client (this year's and next year's marginal rates, the losses the year can still use) rather
than memorize one. The draw, per episode:

- filing status: married filing jointly with probability 0.6, else single;
- ordinary taxable income: log-uniform on [40,000, 1,500,000];
- outside net short-term and long-term gains: none with probability 0.5 each, else uniform on
  [0, 20%] and [0, 30%] of that income;
- a flat state rate: none with probability 0.3 (e.g. Texas, Florida), else uniform on
  [3%, 13.3%] (13.3%: California's top rate);
- an income path: each later year's income is the previous one times a lognormal factor
  (sigma 0.25), or 30% of it with probability 0.1 (a sabbatical, a retirement), and its
  outside gains scale with it.
"""

from __future__ import annotations

import numpy as np

from taxharvest.tax.law import IncomeOverride, TaxProfile

RANDOM_PROFILE = "random"  # the profile name that asks for a fresh client every episode
INCOME_RANGE = (40_000.0, 1_500_000.0)
INCOME_SIGMA = 0.25
DROP_PROBABILITY, DROP_FACTOR = 0.1, 0.3


def draw_profile(rng: np.random.Generator, first_year: int, years: int) -> TaxProfile:
    """A client drawn from ``rng`` (see the module), its income path over ``years`` years
    from ``first_year``."""
    filing = "mfj" if rng.random() < 0.6 else "single"
    low, high = np.log(INCOME_RANGE)
    income = float(np.exp(rng.uniform(low, high)))
    short_share = 0.0 if rng.random() < 0.5 else float(rng.uniform(0.0, 0.2))
    long_share = 0.0 if rng.random() < 0.5 else float(rng.uniform(0.0, 0.3))
    state_rate = 0.0 if rng.random() < 0.3 else float(rng.uniform(0.03, 0.133))
    schedule = {}
    path = income
    for year in range(first_year + 1, first_year + years + 1):
        path *= DROP_FACTOR if rng.random() < DROP_PROBABILITY else float(
            rng.lognormal(0.0, INCOME_SIGMA))
        schedule[year] = IncomeOverride(ordinary_income=round(path, 2),
                                        outside_short_gain=round(short_share * path, 2),
                                        outside_long_gain=round(long_share * path, 2))
    return TaxProfile(name=RANDOM_PROFILE, filing=filing, ordinary_income=round(income, 2),
                      outside_short_gain=round(short_share * income, 2),
                      outside_long_gain=round(long_share * income, 2),
                      state_rate=state_rate, schedule=schedule)
