"""Cash flows of the account: deposits and withdrawals, dated or periodic.

A flow is dollars (``amount``) or a fraction of the account's value that day (``fraction``),
positive for a deposit, negative for a withdrawal. A periodic flow falls on the first
trading day of each month, quarter or year after the episode's start; a dated flow on the
first trading day on or after its date. The benchmark receives and pays the same dollars on
the same days, so every relative measure compares like with like.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

PERIOD_MONTHS = {"month": 1, "quarter": 3, "year": 12}
_SPEC = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(%?)\s*/\s*(month|quarter|year)\s*$")


@dataclass(frozen=True)
class CashFlow:
    """One rule: ``amount`` dollars or ``fraction`` of the account's value, on ``date``
    (``period`` None) or every ``period`` (``"month"``, ``"quarter"``, ``"year"``)."""

    amount: float = 0.0
    fraction: float = 0.0
    period: str | None = None
    date: str | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.amount) and np.isfinite(self.fraction)):
            raise ValueError("a cash flow's amount and fraction must be finite")
        if not -1.0 <= self.fraction <= 1.0:
            raise ValueError(f"a cash flow's fraction must lie between -1 and 1, got {self.fraction}")
        if (self.period is None) == (self.date is None):
            raise ValueError("a cash flow has either a period or a date")
        if self.period is not None and self.period not in PERIOD_MONTHS:
            raise ValueError(f"period must be one of {sorted(PERIOD_MONTHS)}, got {self.period!r}")


def parse_periodic(spec: str, sign: float) -> CashFlow:
    """``"5000/month"`` (dollars) or ``"2%/year"`` (of the account's value), times ``sign``
    (+1 for contributions, -1 for withdrawals)."""
    match = _SPEC.match(str(spec))
    if match is None:
        raise ValueError(f"expected AMOUNT/PERIOD or PERCENT%/PERIOD with PERIOD one of "
                         f"month, quarter, year (e.g. 5000/month, 2%/year), got {spec!r}")
    number, percent, period = float(match[1]), match[2] == "%", match[3]
    if percent:
        return CashFlow(fraction=sign * number / 100.0, period=period)
    return CashFlow(amount=sign * number, period=period)


def schedule(flows: Iterable[CashFlow], dates: np.ndarray, start: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """``(T,)`` dollars and ``(T,)`` fractions of value flowing on each row after ``start``."""
    amounts, fractions = np.zeros(len(dates)), np.zeros(len(dates))
    months = dates.astype("datetime64[M]").astype(np.int64)
    for flow in flows:
        if flow.period is None:
            row = int(np.searchsorted(dates, np.datetime64(flow.date, "D")))
            rows = np.array([row]) if start < row < len(dates) else np.array([], np.int64)
        else:
            step = PERIOD_MONTHS[flow.period]
            first_of_period = np.flatnonzero((np.diff(months) != 0) & (months[1:] % step == 0)) + 1
            rows = first_of_period[first_of_period > start]
        np.add.at(amounts, rows, flow.amount)
        np.add.at(fractions, rows, flow.fraction)
    return amounts, fractions
