"""Calendar arithmetic for tax rules, as integer days since 1970-01-01.

Lookup tables over 1900-2199 let the numba kernels answer "which year" and "is this
long-term" with one array index instead of date objects.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

WASH_WINDOW_DAYS = 30
"""IRC §1091(a): substantially identical stock acquired within 30 days before or after."""

TABLE_START = np.datetime64("1900-01-01", "D")
TABLE_END = np.datetime64("2200-01-01", "D")
DAY_BASE = int(TABLE_START.astype(np.int64))


def _tables() -> tuple[np.ndarray, np.ndarray]:
    dates = np.arange(TABLE_START, TABLE_END, dtype="datetime64[D]")
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    months = dates.astype("datetime64[M]")
    day_of_month = (dates - months.astype("datetime64[D]")).astype(np.int64)
    next_year_month = months + 12
    month_length = (
        (next_year_month + 1).astype("datetime64[D]") - next_year_month.astype("datetime64[D]")
    ).astype(np.int64)
    # Same calendar date one year later; Feb 29 maps to Feb 28 (Rev. Rul. 66-7: the holding
    # period is counted in calendar months from the day after acquisition). Stock bought on
    # the last day of a month completes its year on the last day of that month a year later:
    # bought 2023-02-28 (holding period from 2023-03-01), the year ends 2024-02-29.
    this_month_length = (
        (months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")
    ).astype(np.int64)
    month_end = day_of_month == this_month_length - 1
    anniversary = next_year_month.astype("datetime64[D]").astype(np.int64) + np.where(
        month_end, month_length - 1, np.minimum(day_of_month, month_length - 1)
    )
    return years.astype(np.int32), anniversary.astype(np.int64)


YEAR_OF_DAY, ANNIVERSARY = _tables()


def to_day(value: str | _dt.date | np.datetime64) -> int:
    """Integer day number of a date (ISO string, ``date`` or ``datetime64``)."""
    day = int(np.datetime64(value, "D").astype(np.int64))
    if not DAY_BASE <= day < DAY_BASE + len(YEAR_OF_DAY):
        raise ValueError(f"date {value} is outside the supported range 1900-2199")
    return day


def to_date(day: int) -> str:
    """ISO date string of an integer day number."""
    return str(np.datetime64(int(day), "D"))


def year_of(day: int | np.ndarray) -> int | np.ndarray:
    """Calendar year of day number(s)."""
    return YEAR_OF_DAY[np.asarray(day) - DAY_BASE]


def is_long_term(acquired: int | np.ndarray, sold: int | np.ndarray) -> bool | np.ndarray:
    """IRC §1222: long-term if held more than one year.

    The holding period starts the day after acquisition and includes the sale day, so
    stock bought 2023-03-15 is long-term when sold on 2024-03-16 or later.
    """
    return np.asarray(sold) > ANNIVERSARY[np.asarray(acquired) - DAY_BASE]
