"""Per-security lot features in one pass over the ``(security, slot)`` lot arrays."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from numba import njit

from taxharvest.tax.kernel import is_loss

LOT_FEATURES = (
    "worst_lot_return",  # lowest unrealized return over the lots (0 without lots)
    "unrealized_return",  # unrealized gain / basis over the whole position
    "loss_value_share",  # value in lots at a loss / position value
    "short_term_share",  # value in lots not yet long-term / position value
    "worst_lot_age",  # years since the worst lot's holding period started
    "loss_shares",  # shares in lots at a loss (what a harvest sells)
    "loss_amount",  # unrealized loss of those lots, positive
    "value",  # market value of the position
    "days_to_long_term",  # days until the worst lot, if at a loss, turns long-term (0: none)
)
N_LOT_FEATURES = len(LOT_FEATURES)
LOT_FEATURE_INDEX = SimpleNamespace(**{name: i for i, name in enumerate(LOT_FEATURES)})

ASSET_FEATURES = (  # the per-stock observation, filled by ``asset_observation``
    "worst_lot_return", "unrealized_return", "loss_value_share", "short_term_share",
    "worst_lot_age", "buy_block_days", "sell_block_days", "volatility",
    "active_weight", "benchmark_weight", "harvestable", "excluded", "days_to_long_term",
)
ASSET_FEATURE_INDEX = SimpleNamespace(**{name: i for i, name in enumerate(ASSET_FEATURES)})


@njit(cache=True)
def lot_features(shares, basis, acq, used, price, day, anniversary, day_base, out):
    """Fill ``out`` ``(n, N_LOT_FEATURES)`` from the lot arrays at ``price`` on ``day``."""
    n = shares.shape[0]
    for i in range(n):
        p = price[i]
        value = 0.0
        cost = 0.0
        loss_value = 0.0
        short_value = 0.0
        loss_shares = 0.0
        loss_amount = 0.0
        worst = np.inf
        worst_age = 0.0
        worst_days_short = 0.0
        for j in range(used[i]):
            q = shares[i, j]
            if q <= 0.0:
                continue
            v = q * p
            b = basis[i, j]
            value += v
            cost += b
            if day <= anniversary[acq[i, j] - day_base]:
                short_value += v
            r = v / b - 1.0 if b > 0.0 else np.inf
            loss = is_loss(v, b)
            if r < worst:
                worst = r
                worst_age = (day - acq[i, j]) / 365.25
                worst_days_short = 0.0
                if loss and day <= anniversary[acq[i, j] - day_base]:
                    worst_days_short = float(anniversary[acq[i, j] - day_base] + 1 - day)
            if loss:
                loss_value += v
                loss_shares += q
                loss_amount += b - v
        out[i, 0] = worst if value > 0.0 else 0.0
        out[i, 1] = value / cost - 1.0 if cost > 0.0 else 0.0
        out[i, 2] = loss_value / value if value > 0.0 else 0.0
        out[i, 3] = short_value / value if value > 0.0 else 0.0
        out[i, 4] = worst_age
        out[i, 5] = loss_shares
        out[i, 6] = loss_amount
        out[i, 7] = value
        out[i, 8] = worst_days_short


@njit(cache=True)
def wash_blocks(day, last_loss_sale, last_buy, group, worst_return, loss_shares, excluded,
                trading, sectors, window, cushion, buy_blocked, sell_blocked, park,
                harvestable):
    """The wash-sale blocks of every security on ``day`` and where harvests may go.

    ``buy_blocked``: a loss sale of the same group in the last ``window`` days (a purchase
    would wash it). ``sell_blocked``: a purchase in the last ``window`` days while a lot sits
    less than ``cushion`` above its basis (a sale could realize a loss that purchase washes).
    ``park[s]``: the first of sector ``s``'s proxies (rows ``n + p K + s``) that may be
    bought, or -1. ``harvestable`` (stocks): a lot at a loss, trading, not excluded, not
    sell-blocked, and a proxy of its sector to park the proceeds in.
    """
    n = harvestable.shape[0]
    k = park.shape[0]
    for j in range(group.shape[0]):
        g = group[j]
        buy_blocked[j] = day - last_loss_sale[g] <= window
        sell_blocked[j] = day - last_buy[g] <= window and worst_return[j] < cushion
    for s in range(k):
        park[s] = -1
        for row in range(n + s, group.shape[0], k):
            if not buy_blocked[row]:
                park[s] = row
                break
    for i in range(n):
        harvestable[i] = (loss_shares[i] > 0.0 and trading[i] and not excluded[i]
                          and not sell_blocked[i] and park[sectors[i]] >= 0)


@njit(cache=True)
def asset_observation(features, day, last_loss_sale, last_buy, group, volatility, weights,
                      bench, excluded, trading, harvestable, window, assets):
    """Fill the per-stock observation ``assets`` ``(n, 13)`` (see ``ASSET_FEATURES``)."""
    n = assets.shape[0]
    for i in range(n):
        since_loss = day - last_loss_sale[group[i]]
        since_buy = day - last_buy[group[i]]
        assets[i, 0] = features[i, 0]
        assets[i, 1] = min(max(features[i, 1], -1.0), 5.0)
        assets[i, 2] = features[i, 2]
        assets[i, 3] = features[i, 3]
        assets[i, 4] = min(features[i, 4], 5.0)
        assets[i, 5] = min(max(window + 1 - since_loss, 0), window + 1) / window
        assets[i, 6] = min(max(window + 1 - since_buy, 0), window + 1) / window
        assets[i, 7] = volatility[i]
        assets[i, 8] = (weights[i] - bench[i]) * n
        assets[i, 9] = bench[i] * n
        assets[i, 10] = 1.0 if harvestable[i] else 0.0
        assets[i, 11] = 1.0 if excluded[i] or not trading[i] else 0.0
        assets[i, 12] = features[i, 8] / 365.0


@njit(cache=True)
def _frozen(a, buy_blocked, sell_blocked):
    """The part of active weight ``a`` the wash-sale rule freezes: an underweight that may
    not be bought back, an overweight that may not be sold."""
    return (min(a, 0.0) if buy_blocked else 0.0) + (max(a, 0.0) if sell_blocked else 0.0)


@njit(cache=True)
def frozen_weights(active, buy_blocked, sell_blocked):
    """``(m,)`` the frozen part of every security's active weight (:func:`_frozen`)."""
    out = np.empty_like(active)
    for j in range(active.shape[0]):
        out[j] = _frozen(active[j], buy_blocked[j], sell_blocked[j])
    return out


@njit(cache=True)
def select_within_lock_budget(candidates, sold, proxy_of, active, buy_blocked, sell_blocked,
                              loadings, specific_var, budget_var):
    """Greedy harvest selection under a budget on the TE of frozen positions.

    A harvest makes its stock buy-blocked (its shortfall cannot be bought back for 30 days)
    and its sector proxy sell-blocked (the proxy just bought may not be sold at a loss).
    The TE of the frozen parts of the active weights, ``||G f||^2 + sum(d f^2)``, is kept
    within ``budget_var``; candidates (largest loss first) that would break it are skipped.
    Returns the accepted mask over ``candidates``.
    """
    k = loadings.shape[0]
    buy_blocked = buy_blocked.copy()
    sell_blocked = sell_blocked.copy()
    frozen = frozen_weights(active, buy_blocked, sell_blocked)
    y = loadings @ frozen
    s = (specific_var * frozen * frozen).sum()
    accepted = np.zeros(candidates.shape[0], np.bool_)
    dy = np.empty(k)
    for c in range(candidates.shape[0]):
        i = candidates[c]
        p = proxy_of[i]
        new_i = _frozen(active[i] - sold[c], True, sell_blocked[i])
        new_p = _frozen(active[p] + sold[c], buy_blocked[p], True)
        ds = specific_var[i] * (new_i * new_i - frozen[i] * frozen[i]) \
            + specific_var[p] * (new_p * new_p - frozen[p] * frozen[p])
        total = s + ds
        for f in range(k):
            dy[f] = loadings[f, i] * (new_i - frozen[i]) + loadings[f, p] * (new_p - frozen[p])
            total += (y[f] + dy[f]) ** 2
        if total <= budget_var:
            accepted[c] = True
            y += dy
            s += ds
            active[i] -= sold[c]
            active[p] += sold[c]
            frozen[i], frozen[p] = new_i, new_p
            buy_blocked[i] = sell_blocked[p] = True
    return accepted


@njit(cache=True)
def propose(weights, harvest, loss_shares, price, value, bench, buy_blocked, sell_blocked,
            park, proxy_gain, excluded, trading, sectors, swap_back_max_gain, min_trade,
            proposal, gap):
    """The proposed weights of one decision, before the guardrail, into ``proposal``.

    Harvested stocks sell their loss lots into their sector's ``park`` proxy; underweight
    stocks whose wash window closed are bought back (``gap``: the weight asked for) from
    their sector's proxies that may be sold and whose gain is at most
    ``swap_back_max_gain``, pro rata; cash above ``min_trade`` goes to the stocks that may
    be bought furthest below their benchmark weight (:func:`invest_cash`).
    """
    n = harvest.shape[0]
    m = proposal.shape[0]
    k = park.shape[0]
    proposal[:] = weights
    for i in range(n):
        if harvest[i]:
            sold = loss_shares[i] * price[i] / value
            proposal[i] -= sold
            proposal[park[sectors[i]]] += sold
    available = np.zeros(k)
    for row in range(n, m):
        if not sell_blocked[row] and proxy_gain[row] <= swap_back_max_gain:
            available[(row - n) % k] += max(proposal[row], 0.0)
    need = np.zeros(k)
    for i in range(n):
        gap[i] = 0.0
        if (not buy_blocked[i] and not harvest[i] and not excluded[i] and price[i] > 0
                and available[sectors[i]] > 0):
            gap[i] = max(bench[i] - proposal[i], 0.0)
            need[sectors[i]] += gap[i]
    scale = np.zeros(k)
    for s in range(k):
        if need[s] > 0:
            scale[s] = min(1.0, available[s] / need[s])
    for row in range(n, m):
        s = (row - n) % k
        if scale[s] > 0 and not sell_blocked[row] and proxy_gain[row] <= swap_back_max_gain:
            proposal[row] -= need[s] * scale[s] * max(proposal[row], 0.0) / available[s]
    for i in range(n):
        proposal[i] += gap[i] * scale[sectors[i]]
    cash = 1.0 - proposal.sum()
    if cash > min_trade:
        invest_cash(proposal, bench, buy_blocked, excluded, trading, cash, min_trade)


@njit(cache=True)
def invest_cash(proposal, bench, buy_blocked, excluded, trading, cash, min_trade):
    """Invest all of ``cash`` (a weight) in tickets of at least ``min_trade``.

    The buyable stocks furthest below their benchmark weight come first, each getting its
    shortfall (at least one ticket) until the cash is spent, the last one the rest: the book
    stays within about one ticket of the benchmark per name, and no cash waits for the small
    names' shares of it to grow.
    """
    n = trading.shape[0]  # the stocks; the replacement securities come after them
    shortfall = np.full(n, -np.inf)
    for i in range(n):
        if not buy_blocked[i] and not excluded[i] and trading[i]:
            shortfall[i] = bench[i] - proposal[i]
    order = np.argsort(-shortfall)
    for c in range(n):
        i = order[c]
        if cash < min_trade or not np.isfinite(shortfall[i]):
            break
        ticket = max(min(shortfall[i], cash), min_trade)
        if cash - ticket < min_trade:
            ticket = cash
        proposal[i] += ticket
        cash -= ticket


@njit(cache=True)
def plan_withdrawal(shares, basis, acq, used, purchase, price, day, anniversary, day_base,
                    target, sell_blocked, rows, lots, qty):
    """Lot sales raising ``target[i]`` dollars from each security ``i``, tax-aware.

    Within a security: short-term losses, then long-term losses, then long-term gains, then
    short-term gains (a short-term gain is realized only when no long-term lot serves), each
    group highest basis per share first. A security bought in the last 30 days
    (``sell_blocked``) sells no lot at a loss (the purchase would wash it). Writes the sales
    into ``rows, lots, qty``; returns their count and leaves in ``target`` what could not be
    raised.
    """
    count = 0
    for i in range(shares.shape[0]):
        if target[i] <= 0.0 or price[i] <= 0.0:
            continue
        k = used[i]
        keys = np.empty(k)
        for j in range(k):
            q = shares[i, j]
            if q <= 0.0:
                keys[j] = np.inf
                continue
            per_share = basis[i, j] / q
            loss = is_loss(q * price[i], basis[i, j])
            if loss and sell_blocked[i]:
                keys[j] = np.inf
                continue
            short = day <= anniversary[acq[i, j] - day_base]
            group = (0.0 if short else 1.0) if loss else (3.0 if short else 2.0)
            keys[j] = group * 1e12 - per_share
        for j in np.argsort(keys):
            if target[i] <= 0.0 or not np.isfinite(keys[j]):
                break
            sold = min(shares[i, j], target[i] / price[i])
            rows[count], lots[count], qty[count] = i, purchase[i, j], sold
            count += 1
            target[i] -= sold * price[i]
    return count


@njit(cache=True)
def loss_lots(shares, basis, price):
    """``(r, slots)`` lots at a loss (:func:`~taxharvest.tax.kernel.is_loss`) at ``price`` ``(r,)``."""
    out = np.zeros(shares.shape, np.bool_)
    for i in range(shares.shape[0]):
        for j in range(shares.shape[1]):
            out[i, j] = shares[i, j] > 0.0 and is_loss(shares[i, j] * price[i], basis[i, j])
    return out
