"""What runs read of the environment beyond its observation and step info.

This is the one module that reaches into :class:`~taxharvest.envs.direct_index.DirectIndexEnv`'s
state (its ledger, tax tracker, clock and securities); every workflow goes through these
functions, so a public interface on the environment replaces them here alone. ``env`` is
the unwrapped environment (``env.unwrapped``).
"""

from __future__ import annotations

import math

import numpy as np

from taxharvest.envs.direct_index import ASSET_FEATURES
from taxharvest.tax.calendar import WASH_WINDOW_DAYS
from taxharvest.tax.ledger import Ledger

_ACTIVE = ASSET_FEATURES.index("active_weight")
_BENCH = ASSET_FEATURES.index("benchmark_weight")


def ledger(env) -> Ledger:
    """The account's lot ledger: every security it may hold, stocks then proxies."""
    return env.ledger


def securities(env) -> tuple[str, ...]:
    """The names of the account's securities (stocks, then the sector proxies)."""
    return env.ledger.tickers


def sales(env) -> dict[str, np.ndarray]:
    """Every lot sale of the episode so far (:meth:`~taxharvest.tax.ledger.Ledger.sales`)."""
    return env.ledger.sales()


def episode_steps(env) -> int:
    """Decisions from the episode's start to its end."""
    return math.ceil((env.end - env.start) / env.step_days)


def settled_savings(env) -> dict[str, float]:
    """The tax saving of each settled tax year, by year."""
    return {str(s.year): s.saving for s in env.tracker.history}


def end_state(env, portfolio_value: float) -> tuple[float, float, float]:
    """``(unrealized gain, net realized gain, unused loss carryforward)`` of the account now,
    its value being ``portfolio_value`` (cash included)."""
    book = env.ledger
    held = book.shares > 0
    carry_with, carry_base = env.tracker.carry_with, env.tracker.carry_base
    return (float(portfolio_value - book.cash - book.basis[held].sum()),
            float(book.sales()["gain"].sum()),
            max(0.0, sum(carry_with) - sum(carry_base)))


def wash_status(env, row: int) -> str:
    """The wash-sale window of security ``row`` on the environment's current day."""
    book = env.ledger
    group = book.group[row]
    day = int(env.days[env.t])
    loss_sale, bought = int(book.last_loss_sale[group]), int(book.last_buy[group])
    notes = []
    if 0 <= day - loss_sale <= WASH_WINDOW_DAYS:
        notes.append(f"loss sale on {np.datetime64(loss_sale, 'D')}: no buy for "
                     f"{WASH_WINDOW_DAYS - (day - loss_sale) + 1} more days")
    if 0 <= day - bought <= WASH_WINDOW_DAYS:
        notes.append(f"bought on {np.datetime64(bought, 'D')}: a loss sale is washed for "
                     f"{WASH_WINDOW_DAYS - (day - bought) + 1} more days")
    return "; ".join(notes) or "no wash window open"


def proxied(env, observation: dict) -> int:
    """Stocks below half their benchmark weight while the book holds a proxy of their sector."""
    assets, n = observation["assets"], env.n_assets
    bench = assets[:, _BENCH] / n
    weight = (assets[:, _ACTIVE] + assets[:, _BENCH]) / n
    held = env.ledger.shares[n:].sum(axis=1) > 0
    sector_held = np.zeros(len(env.market.sector_names), bool)
    sector_held[env.sector_of[n:][held]] = True
    return int(((bench > 0) & (weight < 0.5 * bench) & sector_held[env.market.sectors]).sum())
