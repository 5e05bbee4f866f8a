"""The page of a sweep (``results.json`` of ``taxharvest sweep``): PPO against the rules
per profile, mean and spread over training seeds."""

from __future__ import annotations

import numpy as np

from taxharvest.errors import InputError
from taxharvest.report.page import COLORS, figure, fmt, meta, need, table
from taxharvest.sim.measures import SWEEP_REPORT


def sections(doc: dict) -> list[str]:
    summary, rows, config = doc["summary"], doc["results"], doc["config"]
    if not isinstance(summary, dict) or not summary:
        raise InputError("a sweep document needs a non-empty 'summary'", field="summary")
    for profile, block in summary.items():
        for policy, stats in block.items():
            need(stats, ("tax_alpha_mean", "tax_alpha_std", "seeds"), f"{profile}.{policy}")
    cells = [(profile, policy, stats["seeds"],
              *[f"{fmt(stats.get(f'{m.key}_mean'), 'pct')} ± "
                f"{fmt(stats.get(f'{m.key}_std'), 'pct')}" for m in SWEEP_REPORT])
             for profile, block in summary.items() for policy, stats in block.items()]
    return [
        meta(config, ("profiles", "seeds", "timesteps", "eval_paths", "eval_assets",
                       "eval_years", "engine")),
        figure("Tax alpha per profile (mean ± std over seeds)", _sweep_bars, summary),
        "<h2>Per profile and policy (mean ± std over seeds)</h2>",
        table(("profile", "policy", "seeds", *[m.label for m in SWEEP_REPORT]), cells),
        "<h2>Per seed (means over its evaluation paths)</h2>",
        table(("profile", "seed", "policy", "tax alpha", "liquidated", "max ex-ante TE"),
               [(r["profile"], r["seed"], r.get("name", r["policy"]),
                 fmt(r.get("tax_alpha"), "pct"), fmt(r.get("after_tax_excess_liquidated"), "pct"),
                 fmt(r.get("max_ex_ante_te"), "pct")) for r in rows]),
        "<p class='note'>Each training seed s evaluates its PPO policy, tuned and monthly-all "
        "on the same held-out synthetic paths (seeds reserved for evaluation, never trained "
        "or tuned on); the error bars are the standard deviation over seeds of those "
        "per-seed means.</p>",
    ]


def _sweep_bars(ax, summary: dict) -> None:
    profiles = list(summary)
    policies = list(dict.fromkeys(p for block in summary.values() for p in block))
    x = np.arange(len(profiles))
    width = 0.8 / max(len(policies), 1)
    for k, (color, policy) in enumerate(zip(COLORS, policies, strict=False)):
        stats = [summary[p].get(policy, {}) for p in profiles]
        ax.bar(x + k * width, [100 * s.get("tax_alpha_mean", np.nan) for s in stats], width,
               yerr=[100 * s.get("tax_alpha_std", 0.0) for s in stats], capsize=3,
               color=color, label=policy)
    ax.set_xticks(x + 0.4 - width / 2, profiles)
    ax.set_ylabel("tax alpha, %/yr")
    ax.axhline(0, color="black", lw=0.8)
    ax.legend(fontsize=7)
