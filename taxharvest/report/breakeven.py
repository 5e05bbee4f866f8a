"""The page of a fee break-even (``taxharvest breakeven --json``): tax alpha and the
liquidated after-tax excess per account size, gross and net of the fee, and where the net
tax alpha crosses zero."""

from __future__ import annotations

import html

import numpy as np

from taxharvest.errors import InputError
from taxharvest.report.page import COLORS, figure, fmt, meta, need, table
from taxharvest.sim.measures import BREAKEVEN, MEASURES

_CURVES = (  # measure, colour, dashed
    ("tax_alpha", COLORS[0], False), ("tax_alpha_net_of_fee", COLORS[0], True),
    ("after_tax_excess_liquidated", COLORS[1], False),
    ("after_tax_excess_liquidated_net_of_fee", COLORS[1], True),
)


def sections(doc: dict) -> list[str]:
    summary, config, crossing = doc["summary"], doc["config"], doc["break_even"]
    if not isinstance(summary, list) or not summary:
        raise InputError("a breakeven document needs a non-empty 'summary'", field="summary")
    for entry in summary:
        need(entry, ("size", "size_label", "paths",
                     *[f"{m.key}{end}" for m in BREAKEVEN for end in ("", "_worst")]),
             "summary")
    fee = float(config.get("fee", 0.0))
    lines = "".join(
        f"<li>{html.escape(MEASURES[key].label)} crosses zero: "
        f"{html.escape(str(block.get('text', '–')))}</li>" for key, block in crossing.items()
        if key in MEASURES)
    cells = [(e["size_label"], e["paths"],
              *[f"{fmt(e[m.key], 'pct' if m.kind == 'fraction' else 'money')} "
                f"({fmt(e[m.key + '_worst'], 'pct' if m.kind == 'fraction' else 'money')})"
                for m in BREAKEVEN]) for e in summary]
    return [
        meta(config, ("profile", "policy", "fee", "size_labels", "paths", "cadence", "te_limit",
                      "engine")),
        f"<p class='meta'>{html.escape(str(config.get('profile_description', '')))}</p>",
        "<h2>Break-even</h2>", f"<ul>{lines}</ul>",
        figure(f"Per account size: gross and net of the {fee:.2%} fee (mean over paths, "
               "shaded to the worst path)", lambda ax, s: _curves(ax, s, crossing), summary),
        "<h2>Per account size: mean over paths (worst path)</h2>",
        table(("size", "paths", *[m.label for m in BREAKEVEN]), cells),
        f"<p class='note'>{html.escape(str(config.get('fee_rule', '')))}. The same policy "
        "runs on the same paths for every size; only the tax figures depend on the size, "
        "because the outside gains and the 3,000 ordinary offset that a harvested loss can "
        "offset each year are fixed dollars. The break-even is interpolated linearly in "
        "log(size) between the sizes tried.</p>",
    ]


def _curves(ax, summary: list[dict], crossing: dict) -> None:
    sizes = np.array([e["size"] for e in summary], float)
    for key, color, dashed in _CURVES:
        mean = 100 * np.array([e[key] for e in summary], float)
        worst = 100 * np.array([e[f"{key}_worst"] for e in summary], float)
        ax.plot(sizes, mean, "o--" if dashed else "o-", color=color, label=MEASURES[key].label)
        ax.fill_between(sizes, worst, mean, color=color, alpha=0.08)
    size = (crossing.get("tax_alpha_net_of_fee") or {}).get("size")
    if size:
        ax.axvline(size, color="black", lw=0.8, ls=":", label="net tax alpha break-even")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(sizes, [e["size_label"] for e in summary])
    ax.minorticks_off()
    ax.set_xlabel("account size, $")
    ax.set_ylabel("%/yr")
    ax.legend(fontsize=7)
