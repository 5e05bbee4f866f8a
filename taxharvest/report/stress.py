"""The page of a stress test (``taxharvest stress --json``): the headline against the TE
limit, the summary per scenario, policy and guardrail mode, and every path's TE."""

from __future__ import annotations

import html

import numpy as np

from taxharvest.errors import InputError
from taxharvest.report.page import COLORS, date_axis, figure, fmt, meta, need, table


def sections(doc: dict) -> list[str]:
    rows, headline, config = doc["results"], doc["headline"], doc["config"]
    if not isinstance(rows, list) or not rows:
        raise InputError("a stress document needs a non-empty 'results' list", field="results")
    for row in rows:
        need(row, ("scenario", "path", "policy", "guardrail", "max_ex_ante_te", "decoupling",
                    "te_path"), "results")
    limit = float(headline.get("te_limit", config.get("te_limit", 0.01)))
    sections = [meta(config, ("profile", "policies", "paths", "n_assets", "years", "cadence",
                               "te_limit", "seed_base", "offset", "engine")),
                "<h2>Headline</h2>", _stress_headline(headline, limit),
                "<h2>Per scenario, policy and guardrail mode</h2>", _stress_table(doc["summary"])]
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        block = [r for r in rows if r["scenario"] == scenario]
        sections.append(figure(f"{scenario}: tracking error, guardrail on and off",
                                lambda axes, b: _stress_paths(axes, b, limit), block, rows=2))
    relaxations = (headline.get("guardrail_on") or {}).get("relaxations") or []
    if relaxations:
        sections += ["<h2>Guardrail relaxations</h2>", table(
            ("scenario", "path", "policy", "date", "status", "cause"),
            [(x["scenario"], x["path"], x["policy"], x["date"], x["status"], x["reason"])
             for x in relaxations])]
    sections.append(
        "<p class='note'>Each path is a synthetic market (seed base + path) with the crash "
        "template injected a fixed number of trading days after the risk model's warm-up; "
        "a historical window replays real data once. Ex-ante TE: the risk model's TE of "
        "each decided portfolio (what the guardrail bounds). Rolling TE: realized over 63 "
        "trading days. Decoupling: the largest gap between the portfolio's and the "
        "benchmark's cumulative returns. Proxied at peak: stocks below half their benchmark "
        "weight while their sector proxy is held, at the decision of largest ex-ante TE. "
        "Shaded: the crash window.</p>")
    return sections


def _stress_headline(headline: dict, limit: float) -> str:
    lines = []
    on = headline.get("guardrail_on")
    if on:
        verdict = "within" if on["within_limit"] else "above"
        worst = on["worst"]
        lines.append(
            f"Guardrail on: the largest ex-ante TE of any run is "
            f"{fmt(on['max_ex_ante_te'], 'pct')}, {verdict} the {fmt(limit, 'pct')} limit "
            f"({worst['scenario']}, path {worst['path']}, {worst['policy']}, {worst['date']}); "
            f"{len(on['relaxations'])} relaxation(s) of the limit"
            + (f"; {len(on['above_limit_unexplained'])} run(s) above it without one"
               if on["above_limit_unexplained"] else "") + ".")
    for name, modes in headline.get("policies", {}).items():
        parts = [f"guardrail {mode}: decoupling up to {fmt(m['max_decoupling'], 'pct')} "
                 f"(mean {fmt(m['mean_decoupling'], 'pct')}), ex-ante TE up to "
                 f"{fmt(m['max_ex_ante_te'], 'pct')}, {m['max_proxied_at_peak']} names "
                 "held through proxies at the peak" for mode, m in modes.items()]
        lines.append(f"{name}: " + "; ".join(parts) + ".")
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines)


def _stress_table(summary: list[dict]) -> str:
    return table(("scenario", "policy", "guardrail", "paths", "max ex-ante TE",
                   "max rolling TE", "in crash", "decoupling mean / max", "proxied at peak",
                   "harvested $", "tax alpha", "guardrail moved", "relaxed"),
                  [(g["scenario"], g["policy"], "on" if g["guardrail"] else "off", g["paths"],
                    fmt(g["max_ex_ante_te"], "pct"), fmt(g["max_rolling_te"], "pct"),
                    fmt(g["max_rolling_te_in_window"], "pct"),
                    f"{fmt(g['decoupling_mean'], 'pct')} / {fmt(g['decoupling_max'], 'pct')}",
                    fmt(g["proxied_at_peak"], "int"), fmt(g["harvested_losses"], "money"),
                    fmt(g["tax_alpha"], "pct"), fmt(g["guardrail_interventions"], "int"),
                    fmt(g["guardrail_relaxed"], "int")) for g in summary], small=True)


def _stress_paths(axes, rows: list[dict], limit: float) -> None:
    """Ex-ante (top) and rolling realized TE (bottom) of every path, one color per policy
    and guardrail mode; path 0 drawn strong, the others light."""
    keys = list(dict.fromkeys((r["policy"], r["guardrail"]) for r in rows))
    for r in rows:
        color = COLORS[keys.index((r["policy"], r["guardrail"])) % len(COLORS)]
        path = r["te_path"]
        dates = np.array(path["dates"], dtype="datetime64[D]")
        first = r["path"] == min(x["path"] for x in rows)
        style = {"color": color, "lw": 1.2 if first else 0.7, "alpha": 1.0 if first else 0.35,
                 "label": f"{r['policy']}, guardrail {'on' if r['guardrail'] else 'off'}"
                 if first else None}
        axes[0].plot(dates, 100 * np.array(path["ex_ante_te"], float), **style)
        rolling = np.array([np.nan if v is None else v for v in path["rolling_te"]], float)
        axes[1].plot(dates, 100 * rolling, **style)
    window = rows[0].get("window")
    for ax, label in zip(axes, ("ex-ante TE at each decision, %",
                                "realized TE, rolling 63 trading days, %"), strict=True):
        if window:
            ax.axvspan(np.datetime64(window[0]), np.datetime64(window[1]), color="grey",
                       alpha=0.15, label="crash window")
        ax.axhline(100 * limit, color="red", ls="--", lw=1, label="limit")
        ax.set_ylabel(label)
        ax.legend(fontsize=7, ncol=2)
        date_axis(ax)
    axes[1].set_xlim(axes[0].get_xlim())  # the rolling series starts later: same time axis
