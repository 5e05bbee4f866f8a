"""The page of a TE frontier (``taxharvest frontier --json``): per policy, tax alpha against
the realized tracking error it costs, a point per TE limit; the rows and every path's run.

:data:`FRONTIER` names what a frontier measures per policy and limit: measures of the
registry (:mod:`taxharvest.sim.measures`) and :data:`FORM_8949_ROWS`, the reporting burden.
"""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D

from taxharvest.errors import InputError
from taxharvest.report.page import COLORS, figure, meta, need, table
from taxharvest.sim.measures import Measure, keys, select

FORM_8949_ROWS = Measure("form_8949_rows", "Form 8949 rows a year", "8949/yr", "count", ",")
FRONTIER = (*select("tax_alpha", "tracking_error", "max_rolling_te", "max_ex_ante_te",
                    "decoupling", "relative_decoupling", "harvested_losses"),
            FORM_8949_ROWS, *select("guardrail_relaxed"))
MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # one per TE limit on the plot


def limit_label(te_limit: float | None) -> str:
    """``0.25%``, or ``none`` for the guardrail off."""
    return "none" if te_limit is None else f"{te_limit:.2%}"


def sections(doc: dict) -> list[str]:
    rows, config = doc["rows"], doc["config"]
    if not isinstance(rows, list) or not rows:
        raise InputError("a frontier document needs a non-empty 'rows' list", field="rows")
    for k, row in enumerate(rows):
        need(row, ("policy", "te_limit", "paths", *keys(FRONTIER)), f"rows[{k}]")
    results = doc.get("results") or []
    sections = [
        meta(config, ("profile", "policies", "te_limit_labels", "paths", "assets", "years",
                      "cadence", "engine")),
        figure("Tax alpha against realized tracking error (a line per policy, a point per "
               "TE limit)", _frontier, rows),
        "<h2>Per policy and TE limit (mean over paths; worst path for maxima)</h2>",
        table(("policy", "TE limit", "paths", *[m.label for m in FRONTIER]),
              [(r.get("name", r["policy"]), limit_label(r["te_limit"]), r["paths"],
                *[m.format(r[m.key]) for m in FRONTIER]) for r in rows]),
    ]
    if results:
        sections += ["<h2>Every path</h2>", table(
            ("path", "policy", "TE limit", *[m.label for m in FRONTIER]),
            [(r["path"], r.get("name", r["policy"]), limit_label(r["te_limit"]),
              *[m.format(r.get(m.key)) for m in FRONTIER]) for r in results], small=True)]
    sections.append(
        "<p class='note'>Every policy runs on the same paths once per TE limit: the guardrail "
        "projects each decision inside the limit (ex-ante, on the risk model); none: the "
        "guardrail off. Realized TE: the annualized volatility of the active return over "
        "the run. A looser limit lets a harvester sell more losses into sector proxies: tax "
        "alpha bought with tracking error. Form 8949 rows a year: the sales the client's "
        "return reports, the CPA's burden.</p>")
    return sections


def _frontier(ax, rows: list[dict]) -> None:
    """One line per policy (a colour) through its limits (a marker each, ascending, none
    last)."""
    limits = list(dict.fromkeys(r["te_limit"] for r in rows))
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    for k, policy in enumerate(policies):
        mine = [r for r in rows if r["policy"] == policy]
        color = COLORS[k % len(COLORS)]
        x = 100 * np.array([r["tracking_error"] for r in mine], float)
        y = 100 * np.array([r["tax_alpha"] for r in mine], float)
        ax.plot(x, y, "-", color=color, label=mine[0].get("name", policy))
        for r, xi, yi in zip(mine, x, y, strict=True):
            ax.plot(xi, yi, _marker(limits, r["te_limit"]), color=color, ms=6)
    ax.add_artist(ax.legend(fontsize=7, loc="upper left", title="policy", title_fontsize=7))
    ax.legend(handles=[Line2D([], [], marker=_marker(limits, limit), color="grey", ls="",
                              label=limit_label(limit)) for limit in limits],
              fontsize=7, loc="lower right", title="TE limit", title_fontsize=7)
    ax.set_xlabel("realized tracking error, %")
    ax.set_ylabel("tax alpha, %/yr")
    ax.axhline(0, color="black", lw=0.8)


def _marker(limits: list, limit: float | None) -> str:
    return MARKERS[limits.index(limit) % len(MARKERS)]
