"""The lot-accounting rules, once: a numba kernel over struct-of-arrays lots.

Every trade in the project (the ``taxharvest ledger`` replay of a CSV, a backtest, the
environment's step) goes through :func:`apply_trades`. Lots live in ``(ticker, slot)``
arrays; loss sales whose 30-day forward window is still open live in a "pending" table;
each lot portion sold is one row of the sales log (a Form 8949 row).

Rules (IRC §1012, §1091, §1222, §1223; Treas. Reg. §1.1012-1(c), §1.1091-1, §1.1091-2):

- A sale relieves lots in FIFO, HIFO or specific-identification order; partial lots split
  pro rata (basis per share kept). Amounts equal up to float rounding are equal
  (:func:`exceeds`): lots at the same basis per share tie, and a lot portion is at a loss
  only by :func:`is_loss` (a sale at the purchase price is none).
- A lot portion sold at a loss is a wash sale to the extent substantially identical
  shares (same equivalence group) are acquired within 30 days before or after the sale.
  Matching is share for share in chronological order: at the sale, against shares bought
  in the 30 days before that are still held, are not of the lot being sold and have not
  absorbed a loss yet (earliest first); the rest waits in the pending table for purchases
  in the next 30 days (earliest sale first). A replacement share absorbs at most one loss.
- The disallowed loss is added to the replacement shares' basis, and their holding period
  starts earlier by the sold shares' holding period (§1223(3)). Where only part of a
  replacement lot absorbs a loss, that part is split off as its own lot.
- A non-dividend distribution of property (a spin-off) worth ``D`` a share, the parent
  trading at ``P`` ex-distribution, moves the fraction ``D / (P + D)`` of every lot's basis
  to the distributed property (allocation by relative fair market value, IRC §358(b)-(c),
  Treas. Reg. §1.358-2(a)(2)). That property is taken as received and sold at once for
  ``D`` a share (project convention: the account keeps no distributed stock), one
  sales-log row per lot with the lot's holding period (§1223(1)). It is not a sale of the
  parent: it neither uses nor is a wash sale and starts no window.
- Replacement shares are shares held after the sale (project convention: a disallowed loss
  always sits in a held lot). Shares a sale order relieves are therefore no replacements
  for the losses of that order; the unsold rest of a lot the order relieves in part is one
  for the other lots' losses (if bought in the 30 days before), never for its own part.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from taxharvest.tax.calendar import WASH_WINDOW_DAYS

BUY, SELL, SPLIT, DISTRIBUTION = 0, 1, 2, 3
FIFO, HIFO = 0, 1

OK = 0
GROW_SLOTS = 1
GROW_PENDING = 2
GROW_SALES = 3
ERR_OVERSELL = 10
ERR_UNKNOWN_LOT = 11
ERR_BAD_DISTRIBUTION = 12

EPS = 1e-9
AMOUNT_TOLERANCE = 1e-9  # relative: amounts closer than a billionth of their size are equal
_RUN = 16  # entries insertion-sorted before merging


@njit(cache=True)
def exceeds(a: float, b: float) -> bool:
    """Whether amount ``a`` exceeds ``b`` by more than float rounding (``AMOUNT_TOLERANCE``)."""
    return a - b > AMOUNT_TOLERANCE * max(abs(a), abs(b))


@njit(cache=True)
def is_loss(value: float, basis: float) -> bool:
    """Whether shares worth ``value`` (amount realized) with cost basis ``basis`` are at a loss.

    A loss is the basis exceeding the amount realized (IRC §1001(a)); a shortfall within
    float rounding (a sale at exactly the purchase price of part of a lot) is no loss. The
    one definition for the kernel and everything that predicts its wash-sale decisions.
    """
    return exceeds(basis, value)


@njit(cache=True)
def _count_free(shares: np.ndarray, used: np.ndarray, row: int) -> int:
    """Empty slots of a row: holes below its high-water mark plus the slots above it."""
    free = shares.shape[1] - used[row]
    for j in range(used[row]):
        if shares[row, j] == 0.0:
            free += 1
    return free


@njit(cache=True)
def _first_free(shares: np.ndarray, used: np.ndarray, row: int) -> int:
    """The lowest empty slot of a row (raising its high-water mark if needed), or -1."""
    for j in range(used[row]):
        if shares[row, j] == 0.0:
            return j
    if used[row] < shares.shape[1]:
        used[row] += 1
        return used[row] - 1
    return -1


@njit(cache=True)
def _after(k1: np.ndarray, k2: np.ndarray, k3: np.ndarray, x: int, y: int) -> bool:
    """Whether entry ``x`` sorts after ``y`` by keys (k1, k2, k3); keys within rounding tie."""
    for k in (k1, k2, k3):
        if exceeds(k[x], k[y]):
            return True
        if exceeds(k[y], k[x]):
            return False
    return False


@njit(cache=True)
def _sort_by(k1: np.ndarray, k2: np.ndarray, k3: np.ndarray, idx: np.ndarray) -> None:
    """Stable sort of ``idx`` in place by keys (k1, k2, k3) ascending: insertion sort of
    runs of ``_RUN`` entries, then bottom-up merges, O(n log n) for the hundreds of lots a
    long-held position accumulates. Lots at the same basis per share up to rounding fall
    through to the next key."""
    n = idx.shape[0]
    for lo in range(0, n, _RUN):
        for a in range(lo + 1, min(lo + _RUN, n)):
            cur = idx[a]
            b = a - 1
            while b >= lo and _after(k1, k2, k3, idx[b], cur):
                idx[b + 1] = idx[b]
                b -= 1
            idx[b + 1] = cur
    if n <= _RUN:
        return
    src = idx.copy()
    dst = np.empty_like(idx)
    width = _RUN
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            a, b = lo, mid
            for o in range(lo, hi):
                # Take from the right run only when its head sorts strictly first (stable).
                if b < hi and (a >= mid or _after(k1, k2, k3, src[a], src[b])):
                    dst[o] = src[b]
                    b += 1
                else:
                    dst[o] = src[a]
                    a += 1
        src, dst = dst, src
        width *= 2
    idx[:] = src


@njit(cache=True)
def _move_shares(shares, basis, wash_adj, acq, bought, purchase, absorbed, used, row, src, qty):
    """Split ``qty`` shares of lot ``(row, src)`` into a free slot; return that slot."""
    dst = _first_free(shares, used, row)
    frac = qty / shares[row, src]
    shares[row, dst] = qty
    basis[row, dst] = basis[row, src] * frac
    wash_adj[row, dst] = wash_adj[row, src] * frac
    acq[row, dst] = acq[row, src]
    bought[row, dst] = bought[row, src]
    purchase[row, dst] = purchase[row, src]
    absorbed[row, dst] = absorbed[row, src]
    shares[row, src] -= qty
    basis[row, src] -= basis[row, dst]
    wash_adj[row, src] -= wash_adj[row, dst]
    return dst


@njit(cache=True)
def _absorb(shares, basis, wash_adj, acq, bought, purchase, absorbed, used, row, slot, qty,
            loss_per_share, holding_days):
    """Make ``qty`` shares of lot ``(row, slot)`` absorb a disallowed loss; return the amount."""
    if qty < shares[row, slot] - EPS:
        slot = _move_shares(shares, basis, wash_adj, acq, bought, purchase, absorbed, used,
                            row, slot, qty)
    amount = shares[row, slot] * loss_per_share
    basis[row, slot] += amount
    wash_adj[row, slot] += amount
    acq[row, slot] -= holding_days
    absorbed[row, slot] = True
    return amount


@njit(cache=True)
def _log_sale(row, q, acq, purchase, kind, day, proceeds, cost,
              s_ticker, s_qty, s_acq, s_day, s_proceeds, s_basis, s_disallowed, s_purchase,
              s_kind, s_count, realized, cash, year_of_day, anniversary, day_base, year_base):
    """Append a sales-log row (``kind``: the trade side) and book its cash and gain; return it."""
    k = s_count[0]
    s_count[0] += 1
    s_ticker[k] = row
    s_qty[k] = q
    s_acq[k] = acq
    s_day[k] = day
    s_proceeds[k] = proceeds
    s_basis[k] = cost
    s_disallowed[k] = 0.0
    s_purchase[k] = purchase
    s_kind[k] = kind
    cash[0] += proceeds
    _book(k, proceeds - cost, s_acq, s_day, realized, year_of_day, anniversary, day_base,
          year_base)
    return k


@njit(cache=True)
def _book(k, amount, s_acq, s_day, realized, year_of_day, anniversary, day_base, year_base):
    """Add ``amount`` to the realized gain of sales-log row ``k``'s year and term."""
    year = year_of_day[s_day[k] - day_base] - year_base
    term = 1 if s_day[k] > anniversary[s_acq[k] - day_base] else 0
    realized[year, term] += amount


@njit(cache=True)
def _disallow(k, amount, s_acq, s_day, s_disallowed, realized, year_of_day, anniversary,
              day_base, year_base):
    """Record a disallowed amount on sales-log row ``k``: it reduces that sale's loss."""
    s_disallowed[k] += amount
    _book(k, amount, s_acq, s_day, realized, year_of_day, anniversary, day_base, year_base)


@njit(cache=True)
def apply_trades(
    t_ticker, t_day, t_side, t_qty, t_price, t_lot, start, relief,
    group, group_ptr, group_rows,
    shares, basis, wash_adj, acq, bought, purchase, absorbed, used,
    p_ticker, p_group, p_day, p_qty, p_loss, p_hold, p_sale, p_count,
    s_ticker, s_qty, s_acq, s_day, s_proceeds, s_basis, s_disallowed, s_purchase, s_kind,
    s_count, realized, cash, next_purchase, last_buy, last_loss_sale,
    year_of_day, anniversary, day_base, year_base,
):
    """Apply trades ``start..`` in order; return ``(status, index)``.

    ``status`` is ``OK`` when all trades were applied; a ``GROW_*`` code when the arrays
    must grow before trade ``index`` (nothing of it was applied; call again from
    ``index``); an ``ERR_*`` code for a trade that cannot be applied.
    ``t_lot`` is a purchase id (specific identification on sells, an explicit id on
    buys) or -1. A split's ratio travels in ``t_qty``; a distribution's value per share in
    ``t_qty`` and the parent's ex-distribution price in ``t_price``.
    """
    n_trades = t_ticker.shape[0]
    max_slots = shares.shape[1]
    order = np.empty(max_slots, np.int64)
    key = np.empty(max_slots, np.float64)
    key2 = np.empty(max_slots, np.float64)
    key3 = np.empty(max_slots, np.float64)
    loss_rows = np.empty(max_slots, np.int64)
    widest_group = 1
    for gg in range(group_ptr.shape[0] - 1):
        widest_group = max(widest_group, group_ptr[gg + 1] - group_ptr[gg])
    cand_row = np.empty(max_slots * widest_group, np.int64)
    cand_slot = np.empty(max_slots * widest_group, np.int64)

    for i in range(start, n_trades):
        row = t_ticker[i]
        day = t_day[i]
        side = t_side[i]
        qty = t_qty[i]
        price = t_price[i]
        g = group[row]

        if side == SPLIT:
            for j in range(used[row]):
                shares[row, j] *= qty
            for b in range(p_count[0]):
                if p_ticker[b] == row:
                    p_qty[b] *= qty
                    p_loss[b] /= qty
            continue

        if side == DISTRIBUTION:
            if not (qty >= 0.0 and price >= 0.0):
                return ERR_BAD_DISTRIBUTION, i
            if qty == 0.0:
                continue
            n_lots = 0
            for j in range(used[row]):
                if shares[row, j] > 0.0:
                    n_lots += 1
            if s_ticker.shape[0] - s_count[0] < n_lots:
                return GROW_SALES, i
            frac = qty / (price + qty)
            for j in range(used[row]):
                if shares[row, j] > 0.0:
                    moved = basis[row, j] * frac
                    basis[row, j] -= moved
                    wash_adj[row, j] -= wash_adj[row, j] * frac
                    _log_sale(row, shares[row, j], acq[row, j], purchase[row, j], DISTRIBUTION,
                              day, shares[row, j] * qty, moved,
                              s_ticker, s_qty, s_acq, s_day, s_proceeds, s_basis, s_disallowed,
                              s_purchase, s_kind, s_count, realized, cash,
                              year_of_day, anniversary, day_base, year_base)
            continue

        if side == BUY:
            # Capacity: one slot for the lot, one more per pending loss it may split off for.
            need = 1
            for b in range(p_count[0]):
                if p_group[b] == g and p_qty[b] > EPS and day - p_day[b] <= WASH_WINDOW_DAYS:
                    need += 1
            if _count_free(shares, used, row) < need:
                return GROW_SLOTS, i
            slot = _first_free(shares, used, row)
            shares[row, slot] = qty
            basis[row, slot] = qty * price
            wash_adj[row, slot] = 0.0
            acq[row, slot] = day
            bought[row, slot] = day
            if t_lot[i] >= 0:
                purchase[row, slot] = t_lot[i]
                if t_lot[i] >= next_purchase[0]:
                    next_purchase[0] = t_lot[i] + 1
            else:
                purchase[row, slot] = next_purchase[0]
                next_purchase[0] += 1
            absorbed[row, slot] = False
            cash[0] -= qty * price
            last_buy[g] = day
            # Match the new shares against open loss sales, earliest sale first.
            for b in range(p_count[0]):
                if slot < 0 or absorbed[row, slot]:
                    break
                if p_group[b] != g or p_qty[b] <= EPS or day - p_day[b] > WASH_WINDOW_DAYS:
                    continue
                m = min(p_qty[b], shares[row, slot])
                whole = m >= shares[row, slot] - EPS
                amount = _absorb(shares, basis, wash_adj, acq, bought, purchase, absorbed, used,
                                 row, slot, m, p_loss[b], p_hold[b])
                _disallow(p_sale[b], amount, s_acq, s_day, s_disallowed, realized,
                          year_of_day, anniversary, day_base, year_base)
                p_qty[b] = p_qty[b] - m if p_qty[b] - m > EPS else 0.0
                if whole:
                    slot = -1
            continue

        # SELL: lots of this ticker in relief order.
        n_lots = 0
        for j in range(used[row]):
            if shares[row, j] > 0.0 and (t_lot[i] < 0 or purchase[row, j] == t_lot[i]):
                order[n_lots] = j
                # FIFO (and lots named by id): purchase order, then holding-period start (a
                # piece carrying a replaced lot's holding period counts as earlier, even by
                # 0 days), then higher basis. HIFO: higher basis per share, then purchase.
                per_share = basis[row, j] / shares[row, j]
                if relief == HIFO and t_lot[i] < 0:
                    key[j] = -per_share
                    key2[j] = purchase[row, j]
                    key3[j] = acq[row, j]
                else:
                    key[j] = purchase[row, j]
                    key2[j] = acq[row, j] - (0.5 if absorbed[row, j] else 0.0)
                    key3[j] = -per_share
                n_lots += 1
        if t_lot[i] >= 0 and n_lots == 0:
            return ERR_UNKNOWN_LOT, i
        held = 0.0
        for a in range(n_lots):
            held += shares[row, order[a]]
        if qty > held * (1.0 + 1e-12) + EPS:
            return ERR_OVERSELL, i
        # Capacity: a log row and a pending row per lot relieved; in each row holding
        # candidates, one split per loss portion at most.
        if s_ticker.shape[0] - s_count[0] < n_lots:
            return GROW_SALES, i
        # Drop pending rows that are matched or whose window has closed.
        kept = 0
        for b in range(p_count[0]):
            if p_qty[b] > EPS and day - p_day[b] <= WASH_WINDOW_DAYS:
                p_ticker[kept] = p_ticker[b]
                p_group[kept] = p_group[b]
                p_day[kept] = p_day[b]
                p_qty[kept] = p_qty[b]
                p_loss[kept] = p_loss[b]
                p_hold[kept] = p_hold[b]
                p_sale[kept] = p_sale[b]
                kept += 1
        p_count[0] = kept
        if p_ticker.shape[0] - p_count[0] < n_lots:
            return GROW_PENDING, i
        for r in range(group_ptr[g], group_ptr[g + 1]):
            cand_r = group_rows[r]
            n_cand = 0
            for j in range(used[cand_r]):
                if (shares[cand_r, j] > 0.0 and not absorbed[cand_r, j]
                        and day - bought[cand_r, j] <= WASH_WINDOW_DAYS):
                    n_cand += 1
            if n_cand > 0 and _count_free(shares, used, cand_r) < n_lots:
                return GROW_SLOTS, i
        _sort_by(key, key2, key3, order[:n_lots])

        # Relieve lots.
        remaining = qty
        n_loss = 0
        for a in range(n_lots):
            if remaining <= EPS:
                break
            j = order[a]
            q = min(shares[row, j], remaining)
            if q >= shares[row, j] - EPS:
                q = shares[row, j]
                b_sold = basis[row, j]
                shares[row, j] = 0.0
                basis[row, j] = 0.0
                wash_adj[row, j] = 0.0
            else:
                b_sold = basis[row, j] * q / shares[row, j]
                wash_adj[row, j] -= wash_adj[row, j] * q / shares[row, j]
                shares[row, j] -= q
                basis[row, j] -= b_sold
            remaining -= q
            k = _log_sale(row, q, acq[row, j], purchase[row, j], SELL, day, q * price, b_sold,
                          s_ticker, s_qty, s_acq, s_day, s_proceeds, s_basis, s_disallowed,
                          s_purchase, s_kind, s_count, realized, cash,
                          year_of_day, anniversary, day_base, year_base)
            if is_loss(q * price, b_sold):
                loss_rows[n_loss] = k
                n_loss += 1
        while used[row] > 0 and shares[row, used[row] - 1] == 0.0:
            used[row] -= 1
        if n_loss > 0:
            last_loss_sale[g] = day

        # Wash-sale matching of each loss portion against shares bought in the 30 days
        # before and still held, earliest acquisition first.
        for a in range(n_loss):
            k = loss_rows[a]
            unmatched = s_qty[k]
            loss_per_share = (s_basis[k] - s_proceeds[k]) / s_qty[k]
            holding_days = day - s_acq[k]
            n_cand = 0
            for r in range(group_ptr[g], group_ptr[g + 1]):
                cand_r = group_rows[r]
                for j in range(used[cand_r]):
                    if (shares[cand_r, j] > 0.0 and not absorbed[cand_r, j]
                            and day - bought[cand_r, j] <= WASH_WINDOW_DAYS
                            and not (cand_r == row and purchase[cand_r, j] == s_purchase[k])):
                        cand_row[n_cand] = cand_r
                        cand_slot[n_cand] = j
                        n_cand += 1
            if n_cand > 0:
                c_bought = np.empty(n_cand, np.float64)
                c_purchase = np.empty(n_cand, np.float64)
                c_slot = np.empty(n_cand, np.float64)
                c_order = np.arange(n_cand)
                for c in range(n_cand):
                    c_bought[c] = bought[cand_row[c], cand_slot[c]]
                    c_purchase[c] = purchase[cand_row[c], cand_slot[c]]
                    c_slot[c] = cand_row[c] * max_slots + cand_slot[c]
                _sort_by(c_bought, c_purchase, c_slot, c_order)
                for c in c_order:
                    if unmatched <= EPS:
                        break
                    cr = cand_row[c]
                    cs = cand_slot[c]
                    m = min(unmatched, shares[cr, cs])
                    amount = _absorb(shares, basis, wash_adj, acq, bought, purchase, absorbed,
                                     used, cr, cs, m, loss_per_share, holding_days)
                    _disallow(k, amount, s_acq, s_day, s_disallowed, realized,
                              year_of_day, anniversary, day_base, year_base)
                    unmatched -= m
            if unmatched > EPS:
                b = p_count[0]
                p_count[0] += 1
                p_ticker[b] = row
                p_group[b] = g
                p_day[b] = day
                p_qty[b] = unmatched
                p_loss[b] = loss_per_share
                p_hold[b] = holding_days
                p_sale[b] = k
    return OK, n_trades
