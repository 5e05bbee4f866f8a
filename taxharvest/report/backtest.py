"""The page of a backtest (``taxharvest backtest --json``) or of a comparison of backtests
(``{"kind": "comparison", "title": ..., "runs": {name: backtest JSON, ...}}``, the demo's):
the measures, wealth, tax savings, tracking error and guardrail interventions per run."""

from __future__ import annotations

import html

import numpy as np

from taxharvest.errors import InputError
from taxharvest.report.page import COLORS, fmt, plot, years_axis
from taxharvest.sim.measures import REPORT


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


def sections(document: dict) -> list[str]:
    """The sections of a backtest's or a comparison's page (:func:`runs_of`)."""
    runs = runs_of(document)
    for name, run in runs.items():
        for key in ("series", "yearly", "config"):
            if key not in run:
                raise InputError(f"run {name!r} has no {key!r}", field=key)
        _check_series(name, run["series"])
    first = next(iter(runs.values()))["config"]
    limit = float(first.get("te_limit", 0.01))
    figures = [
        ("After-tax wealth against the benchmark", plot(wealth, runs)),
        ("Tax savings and harvested losses per year", plot(_yearly, runs)),
        ("Tracking error against the limit", plot(lambda ax, r: te(ax, r, limit), runs,
                                                   rows=2)),
        ("Guardrail interventions per year", plot(_interventions, runs)),
    ]
    return [
        f"<p class='meta'>{html.escape(_describe(first))}</p>",
        "<h2>Measures</h2>", measures_table(runs),
        *[f"<h2>{html.escape(h)}</h2><img alt='{html.escape(h)}' src='{src}'>"
          for h, src in figures],
        "<h2>Per year</h2>", yearly_table(runs),
        "<p class='note'>Tax alpha: ((benchmark + savings account) / benchmark)^(1/years) − 1, "
        "the savings account holding each year's tax saving invested in the benchmark. "
        "Liquidated: both sides sold at the horizon with long-term tax on embedded gains. "
        "Ex-ante TE is the risk model's at each decision; rolling TE is realized over "
        "63 trading days.</p>",
    ]


SERIES = ("dates", "portfolio", "benchmark", "savings", "ex_ante_te", "rolling_te",
          "guardrail_status")


def _check_series(name: str, series: dict) -> None:
    """Every series of a run present, a list, and as long as its dates."""
    if not isinstance(series, dict):
        raise InputError(f"run {name!r}: 'series' must be an object", field="series")
    for key in SERIES:
        values = series.get(key)
        if not isinstance(values, list):
            raise InputError(f"run {name!r} has no {key!r} list in its series", field=key)
        if len(values) != len(series["dates"]):
            raise InputError(f"run {name!r}: {len(values)} values of {key!r} for "
                             f"{len(series['dates'])} dates", field=key)


def _describe(config: dict) -> str:
    parts = [f"{k}: {config[k]}" for k in ("profile", "market", "cadence", "te_limit",
                                          "guardrail", "seed") if k in config]
    return " · ".join(parts)


def measures_table(runs: dict[str, dict]) -> str:
    head = "".join(f"<th>{html.escape(n)}</th>" for n in runs)
    rows = []
    for m in REPORT:
        cells = "".join(f"<td>{m.format(run.get(m.key))}</td>" for run in runs.values())
        rows.append(f"<tr><th class='label'>{html.escape(m.label[:1].upper() + m.label[1:])}</th>{cells}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def yearly_table(runs: dict[str, dict]) -> str:
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
            + "".join(f"<td>{fmt(run['yearly'].get(year, {}).get(key), kind)}</td>"
                      for run in runs.values()) + "</tr>"
            for year in years)
        tables.append(f"<table class='small'><caption>{label}</caption>"
                      f"<tr><th>year</th>{head}</tr>{rows}</table>")
    return f"<div class='tables'>{''.join(tables)}</div>"


def dates(run: dict) -> np.ndarray:
    return np.array(run["series"]["dates"], dtype="datetime64[D]")


def wealth(ax, runs: dict[str, dict]) -> None:
    for color, (name, run) in zip(COLORS, runs.items(), strict=False):
        s = run["series"]
        bench = np.array(s["benchmark"], float)
        after_tax = (np.array(s["portfolio"], float) + np.array(s["savings"], float)) / bench
        ax.plot(dates(run), 100 * (after_tax - 1), color=color, label=f"{name}, after tax")
        ax.plot(dates(run), 100 * (np.array(s["portfolio"], float) / bench - 1), color=color,
                ls=":", lw=1, label=f"{name}, pre-tax")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("% above the benchmark")
    ax.legend(fontsize=7, ncol=2)
    years_axis(ax)


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


def te(axes, runs: dict[str, dict], limit: float) -> None:
    for color, (name, run) in zip(COLORS, runs.items(), strict=False):
        s = run["series"]
        axes[0].plot(dates(run), 100 * np.array(s["ex_ante_te"], float), color=color, lw=1,
                     label=name)
        rolling = np.array([np.nan if v is None else v for v in s["rolling_te"]], float)
        axes[1].plot(dates(run), 100 * rolling, color=color, lw=1, label=name)
    for ax, label in zip(axes, ("ex-ante TE at each decision, %",
                                "realized TE, rolling 63 trading days, %"), strict=True):
        ax.axhline(100 * limit, color="red", ls="--", lw=1, label="limit")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        years_axis(ax)


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
