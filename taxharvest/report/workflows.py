"""HTML reports of the workflow results: ``stress``, ``shadow`` and ``sweep`` documents.

Same page, formatting and plotting helpers as the backtest report
(:mod:`taxharvest.report.html`); a document is the JSON its command writes, recognized by
its top-level ``kind``. A document missing what its kind needs raises :class:`InputError`
naming the field.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np

from taxharvest.errors import InputError
from taxharvest.report.html import (
    COLORS,
    _fmt,
    _metrics_table,
    _plot,
    _te,
    _wealth,
    _yearly_table,
    write_page,
)

SCHEDULE_D = (("proceeds", "Proceeds", "money"), ("cost_basis", "Cost basis", "money"),
              ("adjustment", "Wash sale adjustment", "money"), ("gain", "Gain or loss", "money"),
              ("rows", "Form 8949 rows", "int"))


def render_workflow(document: dict, out: str | Path, *, title: str | None = None) -> Path:
    """Write the report of a ``stress``, ``shadow`` or ``sweep`` document to ``out``."""
    kind = document.get("kind")
    renderers: dict[str, tuple[Callable[[dict], list[str]], tuple[str, ...], str]] = {
        "stress": (_stress, ("config", "headline", "summary", "results"), "Crash stress test"),
        "shadow": (_shadow, ("mode", "config"), "Shadow run"),
        "sweep": (_sweep, ("config", "summary", "results"), "PPO sweep"),
    }
    if kind not in renderers:
        raise InputError(f"unknown kind {kind!r}; expected {', '.join(renderers)}", field="kind")
    render, keys, default = renderers[kind]
    _need(document, keys, kind)
    title = title or document.get("title") or default
    return write_page(title, [f"<h1>{html.escape(title)}</h1>", *render(document)], out)


def _need(block: object, keys: Sequence[str], where: str) -> None:
    if not isinstance(block, dict):
        raise InputError(f"{where} must be a JSON object", field=where)
    for key in keys:
        if key not in block:
            raise InputError(f"{where} has no {key!r}", field=key)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], small: bool = False) -> str:
    """An HTML table of already formatted cells (escaped here); first column left-aligned."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join((f"<th class='label'>{html.escape(str(c))}</th>" if i == 0 else
                          f"<td>{html.escape(str(c))}</td>") for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table{' class=small' if small else ''}><tr>{th}</tr>{body}</table>"


def _figure(heading: str, draw: Callable, data, rows: int = 1) -> str:
    return (f"<h2>{html.escape(heading)}</h2>"
            f'<img src="{_plot(draw, data, rows=rows)}" alt="{html.escape(heading)}">')


def _meta(config: dict, keys: Sequence[str]) -> str:
    parts = [f"{k}: {config[k]}" for k in keys if config.get(k) not in (None, [], "")]
    return f"<p class='meta'>{html.escape(' · '.join(parts))}</p>"


def _date_axis(ax) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


# --- stress --------------------------------------------------------------------------------


def _stress(doc: dict) -> list[str]:
    rows, headline, config = doc["results"], doc["headline"], doc["config"]
    if not isinstance(rows, list) or not rows:
        raise InputError("a stress document needs a non-empty 'results' list", field="results")
    for row in rows:
        _need(row, ("scenario", "path", "policy", "guardrail", "max_ex_ante_te", "decoupling",
                    "te_path"), "results")
    limit = float(headline.get("te_limit", config.get("te_limit", 0.01)))
    sections = [_meta(config, ("profile", "policies", "paths", "n_assets", "years", "cadence",
                               "te_limit", "seed_base", "offset", "engine")),
                "<h2>Headline</h2>", _stress_headline(headline, limit),
                "<h2>Per scenario, policy and guardrail mode</h2>", _stress_table(doc["summary"])]
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        block = [r for r in rows if r["scenario"] == scenario]
        sections.append(_figure(f"{scenario}: tracking error, guardrail on and off",
                                lambda axes, b: _stress_paths(axes, b, limit), block, rows=2))
    relaxations = (headline.get("guardrail_on") or {}).get("relaxations") or []
    if relaxations:
        sections += ["<h2>Guardrail relaxations</h2>", _table(
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
            f"{_fmt(on['max_ex_ante_te'], 'pct')}, {verdict} the {_fmt(limit, 'pct')} limit "
            f"({worst['scenario']}, path {worst['path']}, {worst['policy']}, {worst['date']}); "
            f"{len(on['relaxations'])} relaxation(s) of the limit"
            + (f"; {len(on['above_limit_unexplained'])} run(s) above it without one"
               if on["above_limit_unexplained"] else "") + ".")
    for name, modes in headline.get("policies", {}).items():
        parts = [f"guardrail {mode}: decoupling up to {_fmt(m['max_decoupling'], 'pct')} "
                 f"(mean {_fmt(m['mean_decoupling'], 'pct')}), ex-ante TE up to "
                 f"{_fmt(m['max_ex_ante_te'], 'pct')}, {m['max_proxied_at_peak']} names "
                 "held through proxies at the peak" for mode, m in modes.items()]
        lines.append(f"{name}: " + "; ".join(parts) + ".")
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines)


def _stress_table(summary: list[dict]) -> str:
    return _table(("scenario", "policy", "guardrail", "paths", "max ex-ante TE",
                   "max rolling TE", "in crash", "decoupling mean / max", "proxied at peak",
                   "harvested $", "tax alpha", "guardrail moved", "relaxed"),
                  [(g["scenario"], g["policy"], "on" if g["guardrail"] else "off", g["paths"],
                    _fmt(g["max_ex_ante_te"], "pct"), _fmt(g["max_rolling_te"], "pct"),
                    _fmt(g["max_rolling_te_in_window"], "pct"),
                    f"{_fmt(g['decoupling_mean'], 'pct')} / {_fmt(g['decoupling_max'], 'pct')}",
                    _fmt(g["proxied_at_peak"], "int"), _fmt(g["harvested_losses"], "money"),
                    _fmt(g["tax_alpha"], "pct"), _fmt(g["guardrail_interventions"], "int"),
                    _fmt(g["guardrail_relaxed"], "int")) for g in summary], small=True)


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
        _date_axis(ax)
    axes[1].set_xlim(axes[0].get_xlim())  # the rolling series starts later: same time axis


# --- shadow --------------------------------------------------------------------------------


def _shadow(doc: dict) -> list[str]:
    config = doc["config"]
    meta = _meta(config, ("policy", "baseline", "profile", "market", "te_limit", "cadence",
                          "lots", "start", "priced_at"))
    if doc["mode"] == "decision":
        _need(doc, ("date", "proposals", "differences"), "shadow")
        return [meta, *_shadow_decision(doc)]
    if doc["mode"] == "history":
        _need(doc, ("summary", "decisions", "runs"), "shadow")
        return [meta, *_shadow_history(doc)]
    raise InputError(f"unknown shadow mode {doc['mode']!r}; expected decision or history",
                     field="mode")


def _shadow_decision(doc: dict) -> list[str]:
    proposals = doc["proposals"]
    _need(proposals, ("policy", "baseline"), "proposals")
    for role in proposals:
        _need(proposals[role], ("name", "trades", "tax_saving", "ex_ante_te"), role)
    head = [""] + [f"{role}: {p['name']}" for role, p in proposals.items()]
    rows = [(label, *[fmt(p) for p in proposals.values()]) for label, fmt in (
        ("harvested names", lambda p: ", ".join(p.get("harvested", [])) or "none"),
        ("asked, not executed", lambda p: ", ".join(d["ticker"] for d in p.get("declined", []))
         or "none"),
        ("trades", lambda p: _fmt(len(p["trades"]), "int")),
        ("realized short-term gain ($)", lambda p: _fmt(p.get("realized_short"), "money")),
        ("realized long-term gain ($)", lambda p: _fmt(p.get("realized_long"), "money")),
        ("tax saving at marginal rates ($)", lambda p: _fmt(p["tax_saving"], "money")),
        ("ex-ante TE as held after", lambda p: _fmt(p.get("te_held"), "pct")),
        ("ex-ante TE after", lambda p: _fmt(p["ex_ante_te"], "pct")),
        ("guardrail", lambda p: f"{p.get('guardrail_status', '')} {p.get('guardrail_reason', '')}"
         .strip()))]
    sections = [f"<h2>Proposals for {html.escape(str(doc['date']))}</h2>", _table(head, rows)]
    sections.append(_figure("Trades of each proposal ($; sells negative)", _shadow_bars,
                            proposals))
    if doc["differences"]:
        sections += ["<h2>Trades that differ</h2>", _table(
            ("ticker", "side", "policy $", "baseline $", "policy reason", "baseline reason"),
            [(d["ticker"], d["side"], _fmt(d.get("policy_value"), "money"),
              _fmt(d.get("baseline_value"), "money"), d.get("policy_reason", ""),
              d.get("baseline_reason", "")) for d in doc["differences"]])]
    else:
        sections.append("<p>The proposals agree: no trade differs.</p>")
    for role, p in proposals.items():
        sections += [f"<h2>{html.escape(role)}: {html.escape(p['name'])}, every trade</h2>",
                     _table(("ticker", "side", "shares", "$", "gain ($)", "why", "policy's reason",
                             "wash-sale window", "lots"),
                            [(t["ticker"], t["side"], f"{t['shares']:,.2f}",
                              _fmt(t.get("value"), "money"), _fmt(t.get("realized_gain"), "money"),
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
    _need(runs, ("policy", "baseline"), "runs")
    _need(summary, ("agreement_rate", "decisions", "divergent_trades", "largest_divergence"),
          "summary")
    named = {f"{role}: {run.get('config', {}).get('policy', role)}": run
             for role, run in runs.items()}
    limit = float(doc["config"].get("te_limit", 0.01))
    sections = [
        f"<p>{summary['decisions']} decisions; the policies harvested the same names at "
        f"{_fmt(summary['agreement_rate'], 'pct')} of them "
        f"({summary.get('decisions_with_harvest', 0)} decisions with a harvest by either).</p>",
        "<h2>Measures</h2>", _metrics_table(named),
        _figure("Divergence timeline", _divergence, decisions, rows=2),
        _figure("After-tax wealth against the benchmark", _wealth, named),
        _figure("Tracking error against the limit", lambda axes, r: _te(axes, r, limit), named,
                rows=2),
        "<h2>Largest divergence</h2>", _table(
            ("date", "$ traded differently", "policy harvested $", "baseline harvested $"),
            [(d["date"], _fmt(d["divergence"], "money"),
              _fmt(d["policy_harvested_loss"], "money"),
              _fmt(d["baseline_harvested_loss"], "money"))
             for d in summary["largest_divergence"]]),
        "<h2>Trades without a match in the other run, by reason</h2>", _table(
            ("reason", *summary["divergent_trades"]),
            [(reason, *[_fmt(summary["divergent_trades"][role].get(reason, 0), "int")
                        for role in summary["divergent_trades"]])
             for reason in dict.fromkeys(r for block in summary["divergent_trades"].values()
                                         for r in block)]),
        "<h2>Per year</h2>", _yearly_table(named),
    ]
    for name, run in named.items():
        if run.get("schedule_d"):
            sections += [f"<h2>Schedule D: {html.escape(name)}</h2>", _schedule_d(run["schedule_d"])]
    return sections


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
        _date_axis(ax)


def _schedule_d(schedule: dict) -> str:
    rows = []
    for year, parts in sorted(schedule.items()):
        for part, totals in parts.items():
            rows.append((f"{year} {part}-term", *[_fmt(totals.get(key), kind)
                                                  for key, _, kind in SCHEDULE_D]))
    return _table(("year", *[label for _, label, _ in SCHEDULE_D]), rows)


# --- sweep ---------------------------------------------------------------------------------


def _sweep(doc: dict) -> list[str]:
    summary, rows, config = doc["summary"], doc["results"], doc["config"]
    if not isinstance(summary, dict) or not summary:
        raise InputError("a sweep document needs a non-empty 'summary'", field="summary")
    for profile, block in summary.items():
        for policy, stats in block.items():
            _need(stats, ("tax_alpha_mean", "tax_alpha_std", "seeds"), f"{profile}.{policy}")
    measures = (("tax_alpha", "tax alpha"), ("after_tax_excess_liquidated", "liquidated"),
                ("active_return", "active return"), ("tracking_error", "realized TE"),
                ("max_ex_ante_te", "max ex-ante TE"), ("turnover", "turnover"))
    table = [(profile, policy, stats["seeds"],
              *[f"{_fmt(stats.get(f'{k}_mean'), 'pct')} ± {_fmt(stats.get(f'{k}_std'), 'pct')}"
                for k, _ in measures])
             for profile, block in summary.items() for policy, stats in block.items()]
    return [
        _meta(config, ("profiles", "seeds", "timesteps", "eval_paths", "eval_assets",
                       "eval_years", "engine")),
        _figure("Tax alpha per profile (mean ± std over seeds)", _sweep_bars, summary),
        "<h2>Per profile and policy (mean ± std over seeds)</h2>",
        _table(("profile", "policy", "seeds", *[label for _, label in measures]), table),
        "<h2>Per seed (means over its evaluation paths)</h2>",
        _table(("profile", "seed", "policy", "tax alpha", "liquidated", "max ex-ante TE"),
               [(r["profile"], r["seed"], r.get("name", r["policy"]),
                 _fmt(r.get("tax_alpha"), "pct"), _fmt(r.get("after_tax_excess_liquidated"), "pct"),
                 _fmt(r.get("max_ex_ante_te"), "pct")) for r in rows]),
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
