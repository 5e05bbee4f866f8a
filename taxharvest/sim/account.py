"""Measures of the account derived from the environment's public, read-only interface.

:class:`~taxharvest.envs.direct_index.DirectIndexEnv` exposes what runs may read beyond the
observation and step info (its securities, holdings, ledger, wash windows, tax years); this
module derives what backtests, shadows and stress tests report from it. ``env`` is the
unwrapped environment (``env.unwrapped``).
"""

from __future__ import annotations

import numpy as np

from taxharvest.tax.calendar import WASH_WINDOW_DAYS, is_long_term


def settled_savings(env) -> dict[str, float]:
    """The tax saving of each settled tax year, by year."""
    return {str(s.year): s.saving for s in env.tax_years()}


def end_state(env, day: int) -> dict[str, float | tuple[float, float]]:
    """The account on ``day`` (its last) as :class:`~taxharvest.sim.metrics.Trajectory`
    fields: the embedded gain (and its short-term part), the net gain realized over the run,
    the carryforwards out of the last settled year without and with the portfolio."""
    book = env.ledger
    held = book.shares > 0
    gain = np.where(held, book.shares * env.broker.last_price[:, None] - book.basis, 0.0)
    short_term = held & ~is_long_term(np.where(held, book.acq, day), day)
    carry_base, carry_with = env.carryforwards()
    return {"unrealized_gain": float(gain.sum()),
            "unrealized_short_gain": float(gain[short_term].sum()),
            "realized_gain": float(book.sales()["gain"].sum()),
            "carry_base": carry_base, "carry_with": carry_with}


def wash_status(env, row: int) -> str:
    """The wash-sale window of security ``row`` on the environment's current day."""
    loss_sales, purchases = env.wash_windows()
    notes = []
    for when, text in ((loss_sales[row], "loss sale on {}: no buy for {} more days"),
                       (purchases[row], "bought on {}: a loss sale is washed for {} more days")):
        age = (env.date - when).astype(int) if not np.isnat(when) else WASH_WINDOW_DAYS + 1
        if 0 <= age <= WASH_WINDOW_DAYS:
            notes.append(text.format(when, WASH_WINDOW_DAYS - age + 1))
    return "; ".join(notes) or "no wash window open"


def proxied(env, observation: dict) -> int:
    """Stocks below half their benchmark weight while the book holds a proxy of their sector."""
    holdings, n = env.holdings(), env.n_assets
    weight, bench = holdings["weights"][:n], holdings["benchmark_weights"][:n]
    held = holdings["weights"][n:] > 0
    sector_held = np.zeros(len(env.market.sector_names), bool)
    sector_held[env.sector_of[n:][held]] = True
    return int(((bench > 0) & (weight < 0.5 * bench) & sector_held[env.market.sectors]).sum())
