"""Is it worth it for this client? Tax alpha against a management fee, per account size.

The critics' argument: the dollars a harvested loss can save each year are bounded by what it
offsets, the client's outside gains and the $3,000 ordinary offset (IRC §1211(b)), fixed
dollars; the rest only grows a carryforward. A fee of ``f`` a year on the account's value
grows with the account. So tax alpha, a rate, falls with the account size once the losses
outgrow what they offset, while the fee stays ``f``.

For each account size (the environment's ``initial_value``) the same policy runs on the same
paths (:class:`~taxharvest.workflows.evaluate.EvalMarket`: synthetic evaluation seeds, or a
window of real prices) through :func:`~taxharvest.sim.backtest.run_backtest`; the environment
is scale-free (weights, tickets of a share of value), so only the tax figures depend on the
size. Measures (:data:`~taxharvest.sim.measures.BREAKEVEN`): tax alpha and the liquidated
after-tax excess, and both net of the fee (:func:`~taxharvest.sim.metrics.net_of_fee`:
``(1 + x) * (1 - fee) - 1``, about ``x - fee``: the fee is charged on the account's value
each year and is not deductible; the benchmark is taken as free, so give the fee above an
index fund's expense ratio). Per size: the mean over paths and the worst path.
:func:`break_even` finds where the mean net figure crosses zero, interpolating log-linearly
in the size between the sizes tried.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from taxharvest.agents.registry import make_policy
from taxharvest.errors import InputError
from taxharvest.sim.backtest import run_backtest
from taxharvest.sim.measures import BREAKEVEN
from taxharvest.sim.parallel import run_tasks
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.tax.law import TaxProfile, get_profile
from taxharvest.workflows.evaluate import EvalMarket

NET = ("tax_alpha_net_of_fee", "after_tax_excess_liquidated_net_of_fee")  # break-even figures
_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9}
_SIZE = re.compile(r"\$?(\d+(?:\.\d*)?|\.\d+)([kmb]?)", re.IGNORECASE)


def parse_size(text: str) -> float:
    """An account size: ``250k``, ``1M``, ``1.5m``, ``20000000`` (dollars, > 0)."""
    match = _SIZE.fullmatch(text.strip().replace("_", ""))
    size = float(match[1]) * _SUFFIXES[match[2].lower()] if match else 0.0
    if not size > 0:
        raise InputError(f"cannot read account size {text.strip()!r}; expected dollars such "
                         "as 250k, 1M, 1.5m or 20000000", field="sizes")
    return size


def parse_sizes(text: str) -> tuple[float, ...]:
    """Comma-separated account sizes, in ascending order; at least one, none twice."""
    sizes = [parse_size(item) for item in text.split(",") if item.strip()]
    if not sizes:
        raise InputError("give at least one account size, e.g. 250k,1M,5M,20M", field="sizes")
    if len(set(sizes)) < len(sizes):
        raise InputError(f"an account size is given twice in {text!r}", field="sizes")
    return tuple(sorted(sizes))


def size_label(size: float, digits: int = 4) -> str:
    """``250k``, ``1M``, ``1.5M``, ``20M``: the size as people write it (``digits``
    significant digits)."""
    size = round(size, digits - 1 - math.floor(math.log10(size))) if size > 0 else size
    for suffix, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if size >= scale:
            return f"{size / scale:g}{suffix}"
    return f"{size:g}"


@dataclass(frozen=True)
class BreakevenTask:
    """One backtest: ``policy`` for ``profile`` on one path with an account of ``size``."""

    profile: TaxProfile
    policy: str
    market: EvalMarket
    size: float
    fee: float
    cadence: str = "weekly"
    te_limit: float = 0.01


def run_breakeven_task(task: BreakevenTask) -> dict:
    """One row: the size, the path and the break-even measures (module-level, for workers)."""
    env, options = task.market.environment(task.profile, task.cadence, task.te_limit,
                                           initial_value=task.size)
    policy = make_policy(task.policy, task.profile, env)
    with quiet_guardrail():
        metrics = run_backtest(policy, env, seed=task.market.seed, options=options,
                               fee=task.fee).metrics
    return {"size": task.size, "size_label": size_label(task.size), "path": task.market.label,
            "policy": policy.name, "years": metrics["years"],
            **{m.key: metrics[m.key] for m in BREAKEVEN}}


def summarize(rows: Sequence[dict]) -> list[dict]:
    """Per size (ascending): every measure's mean over paths and its worst path (the lowest
    value; the highest for a measure the registry marks ``worst``, such as max TE)."""
    out = []
    for size in sorted({r["size"] for r in rows}):
        block = [r for r in rows if r["size"] == size]
        entry = {"size": size, "size_label": size_label(size), "paths": len(block)}
        for m in BREAKEVEN:
            values = np.array([r[m.key] for r in block], float)
            entry[m.key] = float(values.mean())
            entry[f"{m.key}_worst"] = float(values.max() if m.worst else values.min())
        out.append(entry)
    return out


def break_even(sizes: Sequence[float], values: Sequence[float]) -> dict:
    """Where ``values`` (a net figure per size, sizes ascending) cross zero.

    Between two sizes of opposite sign the crossing is interpolated linearly in
    ``log(size)``. Returns ``size`` (the first crossing, or None), every crossing in
    ``crossings``, ``where`` (``between``; ``above the largest size tried`` or ``below the
    smallest size tried`` when the values keep one sign and move toward zero in that
    direction; ``none`` when they do not move) and ``text``, a sentence for people.
    """
    sizes, values = list(sizes), [float(v) for v in values]
    if not any(values):
        return {"size": None, "crossings": [], "where": "none",
                "text": "none: zero at every size tried"}
    crossings = []
    for i, (size, value) in enumerate(zip(sizes, values, strict=True)):
        if value == 0.0:
            crossings.append(size)
        elif i + 1 < len(sizes) and value * values[i + 1] < 0:
            lo, hi = math.log(size), math.log(sizes[i + 1])
            share = value / (value - values[i + 1])
            crossings.append(math.exp(lo + share * (hi - lo)))
    if crossings:
        # the sign below the first crossing: the smallest size's, or the opposite of the
        # first non-zero one when the smallest size is itself at zero
        positive = values[0] > 0 if values[0] else next(v < 0 for v in values if v)
        below, above = ("positive", "negative") if positive else ("negative", "positive")
        text = f"about ${size_label(crossings[0], 2)} ({below} below, {above} above)"
        if len(crossings) > 1:
            again = ", ".join(f"${size_label(c, 2)}" for c in crossings[1:])
            text += f"; crosses again at {again}"
        return {"size": crossings[0], "crossings": crossings, "where": "between", "text": text}
    sign = "positive" if values[0] > 0 else "negative"
    toward_zero = (values[-1] - values[0]) * (1 if values[0] < 0 else -1)
    if len(values) > 1 and toward_zero > 0:
        where, end = "above the largest size tried", sizes[-1]
    elif len(values) > 1 and toward_zero < 0:
        where, end = "below the smallest size tried", sizes[0]
    else:
        return {"size": None, "crossings": [], "where": "none",
                "text": f"none: {sign} at every size tried"}
    return {"size": None, "crossings": [], "where": where,
            "text": f"{where} (${size_label(end)}): {sign} at every size tried"}


def breakeven(
    profile: str | TaxProfile,
    sizes: Sequence[float],
    fee: float,
    markets: Sequence[EvalMarket],
    *,
    policy: str = "monthly-all",
    cadence: str = "weekly",
    te_limit: float = 0.01,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """The break-even document (``kind: breakeven``): ``config``, ``rows`` (one per path and
    size), ``summary`` (per size) and ``break_even`` (per net measure of :data:`NET`).

    Raises :class:`InputError` (before anything runs) for a bad fee, size, policy or no path.
    """
    profile = get_profile(profile)
    checks = {"fee": (0 <= fee < 1, f"must be in [0, 1), got {fee}"),
              "sizes": (bool(sizes) and all(s > 0 for s in sizes), "need sizes above 0"),
              "paths": (bool(markets), "need at least one path (--paths N or --prices)")}
    for name, (ok, message) in checks.items():
        if not ok:
            raise InputError(message, field=name)
    if not policy.strip().startswith("ppo:"):
        make_policy(policy, profile)  # e.g. an untuned profile fails now, not in a worker
    sizes = sorted(sizes)
    tasks = [BreakevenTask(profile, policy, market, size, fee, cadence, te_limit)
             for market in markets for size in sizes]
    rows = run_tasks(run_breakeven_task, tasks, engine=engine, address=address,
                     workers=workers, progress=progress)
    summary = summarize(rows)
    return {
        "kind": "breakeven",
        "title": f"Fee break-even: {profile.name}, {fee:.2%} a year",
        "config": {"profile": profile.name, "profile_description": profile.describe(),
                   "policy": rows[0]["policy"], "fee": fee, "sizes": sizes,
                   "size_labels": [size_label(s) for s in sizes],
                   "paths": [m.label for m in markets], "cadence": cadence,
                   "te_limit": te_limit, "engine": engine,
                   "fee_rule": "net of fee = (1 + x) * (1 - fee) - 1, about x - fee: the fee is "
                               "charged on the account's value each year, not deductible; "
                               "the benchmark is taken as free"},
        "rows": rows,
        "summary": summary,
        "break_even": {key: break_even([e["size"] for e in summary], [e[key] for e in summary])
                       for key in NET},
    }
