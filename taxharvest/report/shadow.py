"""The page of a shadow run (``taxharvest shadow --json``): both proposals of a decision,
a historical shadow's divergence, measures and Schedule D per policy, or the agent beside a
firm's blotter (the trades that differ, the firm's wash sales, tax saving and TE of each)."""

from __future__ import annotations

import html

import numpy as np

from taxharvest.errors import InputError
from taxharvest.report.backtest import measures_table, wealth, yearly_table
from taxharvest.report.backtest import te as te_plot
from taxharvest.report.page import COLORS, date_axis, figure, fmt, meta, need, table

SCHEDULE_D = (("proceeds", "Proceeds", "money"), ("cost_basis", "Cost basis", "money"),
              ("adjustment", "Wash sale adjustment", "money"), ("gain", "Gain or loss", "money"),
              ("rows", "Form 8949 rows", "int"))


def sections(doc: dict) -> list[str]:
    config = doc["config"]
    header = meta(config, ("policy", "baseline", "profile", "market", "te_limit", "cadence",
                          "lots", "start", "end", "baseline_trades", "priced_at"))
    if doc["mode"] == "decision":
        need(doc, ("date", "proposals", "differences"), "shadow")
        return [header, *_shadow_decision(doc)]
    if doc["mode"] == "history":
        need(doc, ("summary", "decisions", "runs"), "shadow")
        return [header, *_shadow_history(doc)]
    if doc["mode"] == "blotter":
        need(doc, ("summary", "decisions", "runs"), "shadow")
        return [header, *_shadow_blotter(doc)]
    raise InputError(f"unknown shadow mode {doc['mode']!r}; expected decision, history or "
                     "blotter", field="mode")


def _shadow_decision(doc: dict) -> list[str]:
    proposals = doc["proposals"]
    need(proposals, ("policy", "baseline"), "proposals")
    for role in proposals:
        need(proposals[role], ("name", "trades", "tax_saving", "ex_ante_te"), role)
    head = [""] + [f"{role}: {p['name']}" for role, p in proposals.items()]
    rows = [(label, *[show(p) for p in proposals.values()]) for label, show in (
        ("harvested names", lambda p: ", ".join(p.get("harvested", [])) or "none"),
        ("asked, not executed", lambda p: ", ".join(d["ticker"] for d in p.get("declined", []))
         or "none"),
        ("trades", lambda p: fmt(len(p["trades"]), "int")),
        ("realized short-term gain ($)", lambda p: fmt(p.get("realized_short"), "money")),
        ("realized long-term gain ($)", lambda p: fmt(p.get("realized_long"), "money")),
        ("tax saving at marginal rates ($)", lambda p: fmt(p["tax_saving"], "money")),
        ("ex-ante TE as held after", lambda p: fmt(p.get("te_held"), "pct")),
        ("ex-ante TE after", lambda p: fmt(p["ex_ante_te"], "pct")),
        ("guardrail", lambda p: f"{p.get('guardrail_status', '')} {p.get('guardrail_reason', '')}"
         .strip()))]
    sections = [f"<h2>Proposals for {html.escape(str(doc['date']))}</h2>", table(head, rows)]
    sections.append(figure("Trades of each proposal ($; sells negative)", _shadow_bars,
                            proposals))
    if doc["differences"]:
        sections += ["<h2>Trades that differ</h2>", table(
            ("ticker", "side", "policy $", "baseline $", "policy reason", "baseline reason"),
            [(d["ticker"], d["side"], fmt(d.get("policy_value"), "money"),
              fmt(d.get("baseline_value"), "money"), d.get("policy_reason", ""),
              d.get("baseline_reason", "")) for d in doc["differences"]])]
    else:
        sections.append("<p>The proposals agree: no trade differs.</p>")
    for role, p in proposals.items():
        sections += [f"<h2>{html.escape(role)}: {html.escape(p['name'])}, every trade</h2>",
                     table(("ticker", "side", "shares", "$", "gain ($)", "why", "policy's reason",
                             "wash-sale window", "lots"),
                            [(t["ticker"], t["side"], f"{t['shares']:,.2f}",
                              fmt(t.get("value"), "money"), fmt(t.get("realized_gain"), "money"),
                              t.get("reason", ""), t.get("policy_reason", ""), t.get("wash", ""),
                              "; ".join(f"{lot['shares']:,.2f} sh from {lot['date_acquired']} "
                                        f"({lot['gain']:+,.0f})" for lot in t.get("lots", [])))
                             for t in p["trades"]], small=True) if p["trades"] else "<p>No trade.</p>"]
    sections.append("<p class='note'>Orders are priced at the decision day's close. Tax "
                    "saving: realized short- and long-term gains valued at the profile's "
                    "marginal rates of that year (a loss this year cannot absorb carries "
                    "forward).</p>")
    return sections


def _shadow_bars(ax, proposals: dict) -> None:
    signed = {role: {} for role in proposals}
    for role, p in proposals.items():
        for t in p["trades"]:
            value = t.get("value", t["shares"] * t.get("price", 0.0))
            signed[role][t["ticker"]] = signed[role].get(t["ticker"], 0.0) + (
                -value if t["side"] == "sell" else value)
    tickers = sorted(set().union(*signed.values()),
                     key=lambda k: -max(abs(s.get(k, 0.0)) for s in signed.values()))[:30]
    y = np.arange(len(tickers))
    height = 0.8 / max(len(proposals), 1)
    for k, (color, (role, p)) in enumerate(zip(COLORS, proposals.items(), strict=False)):
        ax.barh(y + k * height, [signed[role].get(t, 0.0) / 1e3 for t in tickers], height,
                color=color, label=f"{role}: {p['name']}")
    ax.set_yticks(y + 0.4 - height / 2, tickers, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("$ thousands")
    ax.legend(fontsize=7)
    if not tickers:
        ax.text(0.5, 0.5, "no trades", transform=ax.transAxes, ha="center")


def _shadow_history(doc: dict) -> list[str]:
    summary, decisions, runs = doc["summary"], doc["decisions"], doc["runs"]
    need(runs, ("policy", "baseline"), "runs")
    need(summary, ("agreement_rate", "decisions", "divergent_trades", "largest_divergence"),
          "summary")
    named = {f"{role}: {run.get('config', {}).get('policy', role)}": run
             for role, run in runs.items()}
    limit = float(doc["config"].get("te_limit", 0.01))
    sections = [
        f"<p>{summary['decisions']} decisions; the policies harvested the same names at "
        f"{fmt(summary['agreement_rate'], 'pct')} of them "
        f"({summary.get('decisions_with_harvest', 0)} decisions with a harvest by either).</p>",
        "<h2>Measures</h2>", measures_table(named),
        figure("Divergence timeline", _divergence, decisions, rows=2),
        figure("After-tax wealth against the benchmark", wealth, named),
        figure("Tracking error against the limit", lambda axes, r: te_plot(axes, r, limit), named,
                rows=2),
        "<h2>Largest divergence</h2>", table(
            ("date", "$ traded differently", "policy harvested $", "baseline harvested $"),
            [(d["date"], fmt(d["divergence"], "money"),
              fmt(d["policy_harvested_loss"], "money"),
              fmt(d["baseline_harvested_loss"], "money"))
             for d in summary["largest_divergence"]]),
        "<h2>Trades without a match in the other run, by reason</h2>", table(
            ("reason", *summary["divergent_trades"]),
            [(reason, *[fmt(summary["divergent_trades"][role].get(reason, 0), "int")
                        for role in summary["divergent_trades"]])
             for reason in dict.fromkeys(r for block in summary["divergent_trades"].values()
                                         for r in block)]),
        "<h2>Per year</h2>", yearly_table(named),
    ]
    for name, run in named.items():
        if run.get("schedule_d"):
            sections += [f"<h2>Schedule D: {html.escape(name)}</h2>", _schedule_d(run["schedule_d"])]
    return sections


def _shadow_blotter(doc: dict) -> list[str]:
    summary, decisions, runs = doc["summary"], doc["decisions"], doc["runs"]
    need(runs, ("policy", "baseline"), "runs")
    need(summary, ("agreement_rate", "decisions", "decisions_with_trades",
                   "agreement_when_trading", "differing_trades", "policy", "baseline"),
         "summary")
    named = {f"{role}: {summary[role]['name']}": runs[role] for role in ("policy", "baseline")}
    limit = float(doc["config"].get("te_limit", 0.01))
    washes = [w for d in decisions for w in d["wash_sales"]]
    differing = [(d, x) for d in decisions for x in d["differences"]]
    sections = [
        f"<p>{summary['decisions']} decisions; no trade differs at "
        f"{fmt(summary['agreement_rate'], 'pct')} of them, "
        f"{fmt(summary['agreement_when_trading'], 'pct')} of the "
        f"{summary['decisions_with_trades']} where either side traded. The firm's trades are "
        "replayed at each date's close through the same ledger and wash-sale rule; both books "
        "are measured as held at each decision's last execution day, under the same risk "
        "model and benchmark.</p>",
        "<h2>Measures</h2>", measures_table(named), table(
            ("", *named), [(label, *[fmt(summary[role][key], kind)
                                     for role in ("policy", "baseline")])
                           for label, key, kind in (
                               ("tax savings, settled ($)", "tax_savings_total", "money"),
                               ("mean ex-ante TE as held", "mean_te_held", "pct"),
                               ("max ex-ante TE as held", "max_te_held", "pct"))]),
        figure("Tax saving and ex-ante TE at each decision", _blotter_steps, decisions, rows=2),
        figure("After-tax wealth against the benchmark", wealth, named),
        figure("Tracking error against the limit", lambda axes, r: te_plot(axes, r, limit), named,
                rows=2),
    ]
    if differing:
        sections += [f"<h2>Trades that differ ({len(differing)})</h2>", table(
            ("decided", "executed through", "ticker", "side", "policy shares", "firm shares",
             "policy $", "firm $", "policy reason", "firm reason"),
            [(d["date"], d["through"], x["ticker"], x["side"], f"{x['policy_shares']:,.2f}",
              f"{x['baseline_shares']:,.2f}", fmt(x["policy_value"], "money"),
              fmt(x["baseline_value"], "money"), x["policy_reason"], x["baseline_reason"])
             for d, x in differing], small=True)]
    else:
        sections.append("<p>The firm's trades and the policy's agree at every decision.</p>")
    sections += ["<h2>Trades without a match in the other book, by reason</h2>", table(
        ("reason", *summary["differing_trades"]),
        [(reason, *[fmt(summary["differing_trades"][role].get(reason, 0), "int")
                    for role in summary["differing_trades"]])
         for reason in dict.fromkeys(r for block in summary["differing_trades"].values()
                                     for r in block)])]
    sections.append(f"<h2>Wash sales the firm's trades created ({len(washes)})</h2>")
    sections.append(table(
        ("date", "blotter line", "trade", "loss sold (line)", "loss ($)", "disallowed ($)",
         "replacement purchase"),
        [(w["date"], w["line"], w["trade"],
          "; ".join(f"{x['shares']:,.2f} {x['ticker']} sold {x['date_sold']}, acquired "
                    f"{x['date_acquired']}" + (f" (line {x['line']})" if x.get("line") else "")
                    for x in w["sales"]),
          fmt(sum(x["loss"] for x in w["sales"]), "money"), fmt(w["disallowed"], "money"),
          "; ".join(f"{r['shares']:,.2f} {r['ticker']} bought {r['bought']} ({r['origin']}), "
                    f"basis +{r['basis_added']:,.0f}" for r in w["replacements"]))
         for w in washes], small=True) if washes else "<p>None.</p>")
    sections += ["<h2>Per year</h2>", yearly_table(named)]
    for name, run in named.items():
        if run.get("schedule_d"):
            sections += [f"<h2>Schedule D: {html.escape(name)}</h2>", _schedule_d(run["schedule_d"])]
    return sections


def _blotter_steps(axes, decisions: list[dict]) -> None:
    """Top: each side's cumulative tax saving; bottom: each side's ex-ante TE as held, red
    ticks where trades differ."""
    dates = np.array([d["through"] for d in decisions], dtype="datetime64[D]")
    for color, role, label in zip(COLORS, ("policy", "baseline"), ("policy", "firm"),
                                  strict=False):
        axes[0].plot(dates, np.cumsum([d[f"{role}_tax_saving"] for d in decisions]) / 1e3,
                     color=color, label=label)
        axes[1].plot(dates, [100 * d[f"{role}_te"] for d in decisions], color=color,
                     label=label)
    differ = np.array([not d["agree"] for d in decisions], bool)
    if differ.any():
        axes[1].plot(dates[differ], np.zeros(differ.sum()), "|", color="red", ms=12,
                     label="trades differ")
    axes[0].set_ylabel("tax saving, $ thousands")
    axes[1].set_ylabel("ex-ante TE as held, %")
    for ax in axes:
        ax.legend(fontsize=7)
        date_axis(ax)


def _divergence(axes, decisions: list[dict]) -> None:
    """Top: losses each policy harvested at each decision, red ticks where the harvested
    names differ; bottom: dollars traded differently."""
    dates = np.array([d["date"] for d in decisions], dtype="datetime64[D]")
    width = np.timedelta64(2, "D")
    for k, (color, role) in enumerate(zip(COLORS, ("policy", "baseline"), strict=False)):
        axes[0].bar(dates + (2 * k - 1) * width // 2, [d[f"{role}_harvested_loss"] / 1e3
                                                       for d in decisions],
                    width=2, color=color, label=f"{role} harvested")
    differ = np.array([not d["agree"] for d in decisions], bool)
    if differ.any():
        axes[0].plot(dates[differ], np.zeros(differ.sum()), "|", color="red", ms=12,
                     label="harvested names differ")
    axes[0].set_ylabel("losses harvested, $ thousands")
    axes[1].bar(dates, [d["divergence"] / 1e3 for d in decisions], width=3, color="grey")
    axes[1].set_ylabel("$ thousands traded differently")
    axes[0].legend(fontsize=7)
    for ax in axes:
        date_axis(ax)


def _schedule_d(schedule: dict) -> str:
    rows = []
    for year, parts in sorted(schedule.items()):
        for part, totals in parts.items():
            rows.append((f"{year} {part}-term", *[fmt(totals.get(key), kind)
                                                  for key, _, kind in SCHEDULE_D]))
    return table(("year", *[label for _, label, _ in SCHEDULE_D]), rows)
