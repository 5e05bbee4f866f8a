"""Form 8949 rows and Schedule D totals from a ledger's sales log."""

from __future__ import annotations

import numpy as np

from taxharvest.tax.calendar import to_date, year_of
from taxharvest.tax.ledger import Ledger

FORM_8949_COLUMNS = (
    "part", "description", "date_acquired", "date_sold", "proceeds", "cost_basis",
    "code", "adjustment", "gain",
)


def sales_records(ledger: Ledger) -> list[dict]:
    """One record per lot portion sold, with the keys of ``taxharvest ledger --json``.

    ``kind`` is ``"sale"``, or ``"distribution"`` for the property a non-dividend
    distribution paid on a lot (``shares``: the lot's shares).
    """
    s = ledger.sales()
    return [
        {
            "ticker": str(s["ticker"][i]),
            "shares": float(s["shares"][i]),
            "date_acquired": to_date(s["acquired"][i]),
            "date_sold": to_date(s["sold"][i]),
            "proceeds": float(s["proceeds"][i]),
            "cost_basis": float(s["cost_basis"][i]),
            "wash_sale_disallowed": float(s["wash_sale_disallowed"][i]),
            "gain": float(s["gain"][i]),
            "term": "long" if s["long_term"][i] else "short",
            "kind": "distribution" if s["distribution"][i] else "sale",
        }
        for i in range(len(s["shares"]))
    ]


def totals(ledger: Ledger) -> dict:
    """Realized short/long gains and disallowed losses, overall and by year of sale."""
    s = ledger.sales()
    years = year_of(s["sold"]) if len(s["sold"]) else np.array([], np.int32)

    def block(mask: np.ndarray) -> dict[str, float]:
        return {
            "short_term_gain": float(s["gain"][mask & ~s["long_term"]].sum()),
            "long_term_gain": float(s["gain"][mask & s["long_term"]].sum()),
            "wash_sale_disallowed": float(s["wash_sale_disallowed"][mask].sum()),
        }

    every = np.ones(len(years), bool)
    return {**block(every), "by_year": {str(y): block(years == y) for y in np.unique(years)}}


def form_8949(ledger: Ledger) -> list[dict]:
    """Form 8949 rows: Part I short-term, Part II long-term; code W for wash sales.

    Columns (d) proceeds, (e) cost basis, (f) code, (g) adjustment as a positive amount,
    (h) gain = d - e + g.
    """
    rows = []
    for r in sales_records(ledger):
        proceeds, basis = round(r["proceeds"], 2), round(r["cost_basis"], 2)
        adjustment = round(r["wash_sale_disallowed"], 2)
        rows.append({
            "part": "I" if r["term"] == "short" else "II",
            "description": _description(r),
            "date_acquired": r["date_acquired"],
            "date_sold": r["date_sold"],
            "proceeds": proceeds,
            "cost_basis": basis,
            "code": "W" if r["wash_sale_disallowed"] > 0 else "",
            "adjustment": adjustment,
            # (h) from the rounded columns, so the row adds up as the form requires
            "gain": round(proceeds - basis + adjustment, 2),
        })
    rows.sort(key=lambda r: (r["date_sold"][:4], r["part"]))
    return rows


def _description(record: dict) -> str:
    """Form 8949 column (a): the shares sold, or the distribution on a lot's shares."""
    shares = f"{record['shares']:g} sh {record['ticker']}"
    return f"distribution on {shares}" if record["kind"] == "distribution" else shares


def schedule_d(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Schedule D totals per tax year and part from Form 8949 rows."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        part = out.setdefault(r["date_sold"][:4], {}).setdefault(
            "short" if r["part"] == "I" else "long",
            {"proceeds": 0.0, "cost_basis": 0.0, "adjustment": 0.0, "gain": 0.0, "rows": 0},
        )
        for key in ("proceeds", "cost_basis", "adjustment", "gain"):
            part[key] = round(part[key] + r[key], 2)
        part["rows"] += 1
    return out
