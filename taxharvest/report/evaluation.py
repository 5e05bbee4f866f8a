"""The page of an evaluation (``taxharvest evaluate --json``): the policies per profile on
the same paths, the summary over the synthetic paths, the paired differences with each
profile's baseline, the real-data path and every row."""

from __future__ import annotations

import numpy as np

from taxharvest.errors import InputError
from taxharvest.report.page import COLORS, figure, fmt, meta, need, table
from taxharvest.sim.measures import EVALUATION, MEASURES
from taxharvest.sim.paired import PAIRED_MEASURES, interval, is_real, paired_table, signed, wins


def sections(doc: dict) -> list[str]:
    rows, summary = doc["rows"], doc["summary"]
    for key, block in (("rows", rows), ("summary", summary)):
        if not isinstance(block, list) or not block:
            raise InputError(f"an evaluation document needs a non-empty {key!r} list", field=key)
    for k, row in enumerate(rows):
        need(row, ("profile", "market", "policy", "tax_alpha"), f"rows[{k}]")
    for k, entry in enumerate(summary):
        need(entry, ("profile", "policy", "paths", "tax_alpha"), f"summary[{k}]")
    head = ("profile", "policy", "paths", *[m.label for m in EVALUATION], "tax alpha sd",
            "vs best rule", "real: tax alpha", "real: max ex-ante TE")
    cells = [(e["profile"], e.get("name", e["policy"]), e["paths"],
              *[m.format(e.get(m.key)) for m in EVALUATION], fmt(e.get("tax_alpha_std"), "pct"),
              fmt(e.get("tax_alpha_vs_best_rule"), "pct"), fmt(e.get("real_tax_alpha"), "pct"),
              fmt(e.get("real_max_ex_ante_te"), "pct")) for e in summary]
    pairs = doc.get("paired")
    if pairs is None:  # a document from before the paired section: paired from its rows
        pairs = paired_table(rows)
    if not isinstance(pairs, list):
        raise InputError("an evaluation document's 'paired' is a list", field="paired")
    for k, entry in enumerate(pairs):
        need(entry, ("profile", "policy", "baseline", *PAIRED_MEASURES), f"paired[{k}]")
    pair_head = ["profile", "policy", "baseline", "paths"]
    for key in PAIRED_MEASURES:
        short = MEASURES[key].label.partition(" (")[0]
        pair_head += [f"Δ {short} (mean)", "95% CI", "wins", f"Δ {short} (real)"]
    pair_cells = [(e["profile"], e.get("name", e["policy"]), e.get("baseline_name",
                                                                    e["baseline"]),
                   e[PAIRED_MEASURES[0]].get("n"),
                   *[text for key in PAIRED_MEASURES for text in (
                       signed(e[key].get("mean")), interval(e[key]), wins(e[key]),
                       signed(e[key].get("real")))]) for e in pairs]
    path_cells = [(r["profile"], r["market"], r.get("name", r["policy"]),
                   *[m.format(r.get(m.key)) for m in EVALUATION]) for r in rows]
    return [
        meta(doc.get("config") or {}, ("profiles", "policies", "paths", "assets", "years",
                                       "prices", "start", "te_limit")),
        figure("Tax alpha per path (bars: mean over the synthetic paths; x: real data)",
               _paths, rows),
        "<h2>Summary per profile and policy (synthetic paths: mean, or worst path for "
        "maxima)</h2>",
        table(head, cells),
        "<h2>Paired with the baseline: policy minus baseline on the same paths</h2>",
        table(tuple(pair_head), pair_cells) if pair_cells
        else "<p class='note'>One policy per profile: nothing to pair.</p>",
        "<p class='note'>Each profile's baseline is the best (mean tax alpha) of optimizer, "
        "tuned and monthly-all evaluated, unless --baseline named one. The mean difference "
        "and its 95% Student-t interval are over the synthetic paths (n/a with one path); "
        "an interval that excludes zero tells a winner from noise. The real-data path is "
        "not an independent draw of the same process: its difference is shown on its own. "
        "Wins: paths where the policy beat the baseline.</p>",
        "<h2>Every path</h2>",
        table(("profile", "path", "policy", *[m.label for m in EVALUATION]), path_cells,
              small=True),
        "<p class='note'>Every policy of a profile runs on the same paths: synthetic "
        "evaluation seeds (never trained or tuned on) and, where given, the real prices. "
        "\"vs best rule\" compares the policy's mean tax alpha with the best rule-based "
        "policy's on the same synthetic paths.</p>",
    ]


def _paths(ax, rows: list[dict]) -> None:
    groups = list(dict.fromkeys((r["profile"], r["policy"]) for r in rows))
    profiles = list(dict.fromkeys(p for p, _ in groups))
    policies = list(dict.fromkeys(q for _, q in groups))
    width = 0.8 / max(len(policies), 1)
    real_label = "real data"
    for k, policy in enumerate(policies):
        color = COLORS[k % len(COLORS)]
        for i, profile in enumerate(profiles):
            mine = [r for r in rows if r["profile"] == profile and r["policy"] == policy]
            synthetic = [100 * float(r["tax_alpha"]) for r in mine if not is_real(r["market"])]
            real = [100 * float(r["tax_alpha"]) for r in mine if is_real(r["market"])]
            x = i + k * width
            if synthetic:
                ax.bar(x, np.mean(synthetic), width, color=color, alpha=0.5,
                       label=policy if i == 0 else None)
                ax.plot([x] * len(synthetic), synthetic, "o", color=color, ms=3)
            if real:
                ax.plot([x] * len(real), real, "x", color="black", ms=7, label=real_label)
                real_label = None
    ax.set_xticks(np.arange(len(profiles)) + 0.4 - width / 2, profiles)
    ax.set_ylabel("tax alpha, %/yr")
    ax.axhline(0, color="black", lw=0.8)
    ax.legend(fontsize=7)
