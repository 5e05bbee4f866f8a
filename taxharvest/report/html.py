"""Self-contained HTML reports: plots embedded as PNG, tables as HTML, nothing fetched.

A report document is a dict: a backtest's JSON (``taxharvest backtest --json``), a
comparison ``{"kind": "comparison", "title": ..., "runs": {name: backtest JSON, ...}}``, or
a ``shadow``, ``stress`` or ``sweep`` result (:mod:`taxharvest.report.workflows`).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from taxharvest.errors import InputError  # noqa: E402
from taxharvest.io import write_atomic  # noqa: E402

HEADLINE = (
    ("tax_alpha", "Tax alpha (pre-liquidation, /yr)", "pct"),
    ("after_tax_excess_liquidated", "After-tax excess, liquidated (/yr)", "pct"),
    ("active_return", "Active return, pre-tax (/yr)", "pct"),
    ("harvest_yield", "Harvest yield (/yr)", "pct"),
    ("harvested_losses", "Harvested losses ($)", "money"),
    ("tracking_error", "Realized TE (/yr)", "pct"),
    ("max_rolling_te", "Max rolling TE", "pct"),
    ("max_ex_ante_te", "Max ex-ante TE", "pct"),
    ("decoupling", "Decoupling", "pct"),
    ("embedded_gain", "Embedded gain at the end", "pct"),
    ("turnover", "Turnover (/yr)", "pct"),
    ("n_trades", "Trades", "int"),
    ("wash_sale_disallowed", "Wash sales disallowed ($)", "money"),
    ("guardrail_interventions", "Guardrail interventions", "int"),
    ("guardrail_relaxed", "Guardrail relaxations", "int"),
    ("years", "Years", "num"),
)
COLORS = ("#1f5fa8", "#d9822b", "#2f9e44", "#c2255c", "#7048e8", "#0c8599")
WORKFLOW_KINDS = ("shadow", "stress", "sweep")


def runs_of(document: dict) -> dict[str, dict]:
    """The backtest runs a document holds, by name; a clear error for anything else."""
    if not isinstance(document, dict):
        raise InputError("a report document must be a JSON object")
    if document.get("kind") == "comparison":
        runs = document.get("runs")
        if not isinstance(runs, dict) or not runs:
            raise InputError("a comparison needs a non-empty 'runs' object", field="runs")
        return runs
    if "series" in document and "tax_alpha" in document:
        return {document.get("config", {}).get("policy", "run"): document}
    raise InputError("not a backtest or comparison result: expected 'series' and 'tax_alpha', "
                     "or kind 'comparison' with 'runs'")


def render_report(document: dict, out: str | Path, *, title: str | None = None) -> Path:
    """Write the HTML report of ``document`` to ``out`` (written whole or not at all).

    Documents of kind ``shadow``, ``stress`` and ``sweep`` are rendered by
    :func:`taxharvest.report.workflows.render_workflow`.
    """
    if isinstance(document, dict) and document.get("kind") in WORKFLOW_KINDS:
        from taxharvest.report.workflows import render_workflow

        return render_workflow(document, out, title=title)
    runs = runs_of(document)
    for name, run in runs.items():
        for key in ("series", "yearly", "config"):
            if key not in run:
                raise InputError(f"run {name!r} has no {key!r}", field=key)
    title = title or document.get("title") or "taxharvest report"
    first = next(iter(runs.values()))["config"]
    limit = float(first.get("te_limit", 0.01))
    figures = [
        ("After-tax wealth against the benchmark", _plot(_wealth, runs)),
        ("Tax savings and harvested losses per year", _plot(_yearly, runs)),
        ("Tracking error against the limit", _plot(lambda ax, r: _te(ax, r, limit), runs,
                                                   rows=2)),
        ("Guardrail interventions per year", _plot(_interventions, runs)),
    ]
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>{html.escape(_describe(first))}</p>",
        "<h2>Measures</h2>", _metrics_table(runs),
        *[f"<h2>{html.escape(h)}</h2><img alt='{html.escape(h)}' src='{src}'>"
          for h, src in figures],
        "<h2>Per year</h2>", _yearly_table(runs),
        "<p class='note'>Tax alpha: ((benchmark + savings account) / benchmark)^(1/years) − 1, "
        "the savings account holding each year's tax saving invested in the benchmark. "
        "Liquidated: both sides sold at the horizon with long-term tax on embedded gains. "
        "Ex-ante TE is the risk model's at each decision; rolling TE is realized over "
        "63 trading days.</p>",
    ]
    return write_page(title, sections, out)


def write_page(title: str, sections: list[str], out: str | Path) -> Path:
    """The report page (``title``, the HTML ``sections``) written whole to ``out``."""
    out = Path(out)
    write_atomic(out, _PAGE.format(title=html.escape(title), body="\n".join(sections)))
    return out


def _describe(config: dict) -> str:
    parts = [f"{k}: {config[k]}" for k in ("profile", "market", "cadence", "te_limit",
                                          "guardrail", "seed") if k in config]
    return " · ".join(parts)


def _fmt(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if kind == "pct":
        return f"{value + 0.0:.2%}".replace("-0.00%", "0.00%")
    if kind == "money":
        return f"{value:,.0f}"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:.2f}"


def _metrics_table(runs: dict[str, dict]) -> str:
    head = "".join(f"<th>{html.escape(n)}</th>" for n in runs)
    rows = []
    for key, label, kind in HEADLINE:
        cells = "".join(f"<td>{_fmt(run.get(key), kind)}</td>" for run in runs.values())
        rows.append(f"<tr><th class='label'>{label}</th>{cells}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def _yearly_table(runs: dict[str, dict]) -> str:
    """One narrow table per yearly measure: years down, runs across."""
    years = sorted({y for run in runs.values() for y in run["yearly"]})
    head = "".join(f"<th>{html.escape(name)}</th>" for name in runs)
    tables = []
    for key, label, kind in (("tax_savings", "Tax saving ($)", "money"),
                             ("harvested_losses", "Harvested losses ($)", "money"),
                             ("te", "Realized TE", "pct"),
                             ("form_8949_rows", "Form 8949 rows", "int")):
        rows = "".join(
            f"<tr><th class='label'>{year}</th>"
            + "".join(f"<td>{_fmt(run['yearly'].get(year, {}).get(key), kind)}</td>"
                      for run in runs.values()) + "</tr>"
            for year in years)
        tables.append(f"<table class='small'><caption>{label}</caption>"
                      f"<tr><th>year</th>{head}</tr>{rows}</table>")
    return f"<div class='tables'>{''.join(tables)}</div>"


def _plot(draw: Callable, runs: dict[str, dict], rows: int = 1) -> str:
    fig, axes = plt.subplots(rows, 1, figsize=(10, 3.6 * rows), squeeze=False)
    for ax in axes[:, 0]:
        ax.grid(alpha=0.3)
    draw(axes[:, 0] if rows > 1 else axes[0, 0], runs)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _dates(run: dict) -> np.ndarray:
    return np.array(run["series"]["dates"], dtype="datetime64[D]")


def _wealth(ax, runs: dict[str, dict]) -> None:
    for color, (name, run) in zip(COLORS, runs.items(), strict=False):
        s = run["series"]
        bench = np.array(s["benchmark"], float)
        after_tax = (np.array(s["portfolio"], float) + np.array(s["savings"], float)) / bench
        ax.plot(_dates(run), 100 * (after_tax - 1), color=color, label=f"{name}, after tax")
        ax.plot(_dates(run), 100 * (np.array(s["portfolio"], float) / bench - 1), color=color,
                ls=":", lw=1, label=f"{name}, pre-tax")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("% above the benchmark")
    ax.legend(fontsize=7, ncol=2)
    _years_axis(ax)


def _years_axis(ax) -> None:
    ax.xaxis.set_major_locator(mdates.YearLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))


def _yearly(ax, runs: dict[str, dict]) -> None:
    years = sorted({y for run in runs.values() for y in run["yearly"]})
    x = np.arange(len(years))
    width = 0.8 / max(len(runs), 1)
    for k, (color, (name, run)) in enumerate(zip(COLORS, runs.items(), strict=False)):
        savings = [run["yearly"].get(y, {}).get("tax_savings", 0.0) / 1e3 for y in years]
        harvested = [run["yearly"].get(y, {}).get("harvested_losses", 0.0) / 1e3 for y in years]
        ax.bar(x + k * width, harvested, width, color=color, alpha=0.3)
        ax.bar(x + k * width, savings, width, color=color, label=name)
    ax.set_xticks(x + 0.4 - width / 2, years)
    ax.set_ylabel("$ thousands")
    ax.set_title("tax saving (solid) and harvested losses (light)", fontsize=9)
    ax.axhline(0, color="black", lw=0.8)
    ax.legend(fontsize=7)


def _te(axes, runs: dict[str, dict], limit: float) -> None:
    for color, (name, run) in zip(COLORS, runs.items(), strict=False):
        s = run["series"]
        axes[0].plot(_dates(run), 100 * np.array(s["ex_ante_te"], float), color=color, lw=1,
                     label=name)
        rolling = np.array([np.nan if v is None else v for v in s["rolling_te"]], float)
        axes[1].plot(_dates(run), 100 * rolling, color=color, lw=1, label=name)
    for ax, label in zip(axes, ("ex-ante TE at each decision, %",
                                "realized TE, rolling 63 trading days, %"), strict=True):
        ax.axhline(100 * limit, color="red", ls="--", lw=1, label="limit")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        _years_axis(ax)


def _interventions(ax, runs: dict[str, dict]) -> None:
    years = sorted({y for run in runs.values() for y in run["yearly"]})
    x = np.arange(len(years))
    width = 0.8 / max(len(runs), 1)
    for k, (color, (name, run)) in enumerate(zip(COLORS, runs.items(), strict=False)):
        status = np.array(run["series"]["guardrail_status"])
        year_of = np.array([d[:4] for d in run["series"]["dates"]])
        moved = [int(((year_of == y) & np.isin(status, ["projected", "relaxed", "fallback"]))
                     .sum()) for y in years]
        relaxed = [int(((year_of == y) & np.isin(status, ["relaxed", "fallback"])).sum())
                   for y in years]
        ax.bar(x + k * width, moved, width, color=color, label=f"{name}: projected")
        ax.bar(x + k * width, relaxed, width, color="black", alpha=0.6)
    ax.set_xticks(x + 0.4 - width / 2, years)
    ax.set_ylabel("decisions changed by the guardrail\n(black: relaxed or fallback)")
    ax.legend(fontsize=7)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto;
       color: #222; padding: 0 1em; }}
h1 {{ font-size: 1.6em; margin-bottom: 0.2em; }}
h2 {{ font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }}
.meta, .note {{ color: #555; font-size: 0.9em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }}
th.label {{ text-align: left; font-weight: normal; }}
table.small {{ font-size: 0.8em; margin: 0 1.5em 1em 0; }}
caption {{ text-align: left; font-weight: bold; padding-bottom: 4px; }}
.tables {{ display: flex; flex-wrap: wrap; align-items: flex-start; }}
img {{ max-width: 100%; }}
</style></head>
<body>
{body}
</body></html>
"""
