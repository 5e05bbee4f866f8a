"""``taxharvest shadow``, ``stress``, ``sweep`` and ``report``, registered on the CLI's app.

As for ``backtest``: every argument and input file is checked before the work starts (a
mistake exits 2 with one line naming the option, file, line or field, and writes nothing),
progress shows on stderr, and outputs are written whole after the run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from taxharvest.cli import app, console
from taxharvest.errors import InputError
from taxharvest.io import csv_text, json_text, write_atomic
from taxharvest.training.cli_commands import (
    WARMUP_DAYS,
    _check,
    _date,
    _market,
    _output,
    _profile,
    _progress,
    _quiet_guardrail,
    _window,
    read_initial_lots,
)

PolicyOption = Annotated[str, typer.Option(
    help="hold | threshold:X[@cadence] | monthly-all | tuned | ppo:PATH")]
ProfileOption = Annotated[str, typer.Option(
    help="Tax profile: single-60k, mfj-250k, mfj-800k, mfj-800k-ca.")]
SHOWN_DIFFERENCES = 20  # rows of the differing-trades table (all of them in --json/--csv)
RayOption = Annotated[str | None, typer.Option(
    help="Run on Ray: auto (the cluster of `ray start`), local (a private instance) or a "
         "cluster ADDRESS; default: local processes.")]
WorkersOption = Annotated[int | None, typer.Option(
    help="Local worker processes (or CPUs of --ray local); default: all cores.")]


def _write(text: str, path: Path | None, option: str) -> None:
    """``text`` to ``path`` (atomically), or to stdout when the option was ``-``."""
    if option == "-":
        sys.stdout.write(text)
    elif path is not None:
        write_atomic(path, text)


def _bar(bar, description: str):
    task = bar.add_task(description, total=None)
    return lambda done, total: bar.update(task, completed=done, total=total)


@app.command()
def shadow(
    policy: PolicyOption,
    baseline: Annotated[str, typer.Option(help="The policy in production (same forms).")],
    lots: Annotated[Path, typer.Option(
        help="The client's holdings: CSV ticker,shares,date_acquired,cost_basis.")],
    profile: ProfileOption,
    prices: Annotated[Path | None, typer.Option(
        help="Long-format daily prices (CSV or parquet); equal-weighted benchmark.")] = None,
    sectors: Annotated[Path | None, typer.Option(help="ticker,sector file for --prices.")] = None,
    market: Annotated[str | None, typer.Option(
        help="synthetic[:seed=N] (the default without --prices).")] = None,
    date: Annotated[str | None, typer.Option(
        help="Today's decision on this date (YYYY-MM-DD), priced at its close.")] = None,
    start: Annotated[str | None, typer.Option(
        help="Historical shadow: first decision (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Historical shadow: last date.")] = None,
    te_limit: Annotated[float, typer.Option(help="Tracking-error limit (annualized).")] = 0.01,
    cadence: Annotated[str, typer.Option(help="Decision step: daily, weekly or monthly.")
    ] = "weekly",
    assets: Annotated[int | None, typer.Option(help="Synthetic stocks (default 500).")] = None,
    years: Annotated[float | None, typer.Option(help="Synthetic years (default 10).")] = None,
    json_out: Annotated[str | None, typer.Option(
        "--json", help="Write the comparison as JSON (- for stdout).")] = None,
    csv_out: Annotated[Path | None, typer.Option(
        "--csv", help="Write the trades (--date) or the decisions (--start) as CSV.")] = None,
) -> None:
    """Compare a candidate policy with the one in production on the client's lots."""
    from taxharvest.envs.direct_index import CADENCE_DAYS
    from taxharvest.workflows.shadow import DECISION_COLUMNS, TRADE_COLUMNS, Shadow

    tax_profile = _profile(profile)
    if (date is None) == (start is None):
        raise InputError("give either --date D (today's decision) or --start D [--end D] "
                         "(historical shadow)", field="date")
    if date is not None and end is not None:
        raise InputError("--end goes with --start, not --date", field="end")
    if cadence not in CADENCE_DAYS:
        raise InputError(f"unknown cadence {cadence!r}; expected one of "
                         f"{', '.join(CADENCE_DAYS)}", field="cadence")
    _check({"te-limit": te_limit > 0, "assets": assets is None or assets >= 11,
            "years": years is None or years > 0},
           "te-limit > 0, assets >= 11 (one per sector), years > 0")
    json_path, csv_path = _output(json_out, "json"), _output(csv_out, "csv")
    mk, seed = _market(prices, sectors, market, assets, years)
    if date is not None:
        mk, first = _decision_window(mk, date)
    else:
        mk, first = _window(mk, start, end)
    holdings, value = read_initial_lots(lots, mk, first)
    runner = Shadow(policy, baseline, tax_profile.name, mk, holdings, initial_value=value,
                    te_limit=te_limit, cadence=cadence, seed=seed)
    _quiet_guardrail()
    if date is not None:
        result = runner.decision(first)
        columns = TRADE_COLUMNS
    else:
        with _progress() as bar:
            bars = {role: _bar(bar, f"shadow {role}") for role in ("policy", "baseline")}
            result = runner.history(first, progress=lambda role, done, total:
                                    bars[role](done, total))
        columns = DECISION_COLUMNS
    _write(json_text(result.to_json()), json_path, json_out)
    if csv_path is not None:
        write_atomic(csv_path, csv_text(result.csv_rows(), columns))
    if json_out != "-":
        (_print_decision if date is not None else _print_history)(result.to_json())


def _decision_window(mk, date: str):
    """The market up to ``date`` (with the warm-up before it) and the decision day."""
    day = _date(date, "date")
    if not mk.dates[0] < day <= mk.dates[-1]:
        raise InputError(f"--date {date} is outside the data ({mk.dates[0]} to "
                         f"{mk.dates[-1]}, the first day excluded)", field="date")
    row = mk.date_index(day)
    mk = mk.slice(mk.dates[max(0, row - WARMUP_DAYS)], mk.dates[row])
    return mk, str(mk.dates[-1])


def _print_decision(doc: dict) -> None:
    proposals = doc["proposals"]
    names = {role: p["name"] for role, p in proposals.items()}
    head = Table(title=f"Shadow decision on {doc['date']} ({doc['config']['profile']}, TE limit "
                       f"{doc['config']['te_limit']:.2%}), priced at that day's close")
    head.add_column("")
    for role in proposals:
        head.add_column(f"{role}: {names[role]}", justify="right")
    for label, key, fmt in (("harvested names", "harvested", len),
                            ("trades", "trades", len),
                            ("realized short-term", "realized_short", "{:,.0f}".format),
                            ("realized long-term", "realized_long", "{:,.0f}".format),
                            ("tax saving (marginal rates)", "tax_saving", "{:,.0f}".format),
                            ("ex-ante TE after", "ex_ante_te", "{:.2%}".format),
                            ("guardrail", "guardrail_status", str)):
        head.add_row(label, *[str(fmt(p[key])) for p in proposals.values()])
    console.print(head)
    if not doc["differences"]:
        console.print("The proposals agree: no trade differs.")
        return
    shown = doc["differences"][:SHOWN_DIFFERENCES]
    table = Table(title=f"Trades that differ ({len(doc['differences'])}"
                        + (f", the {len(shown)} largest" if len(shown) < len(doc["differences"])
                           else "") + ")")
    for column in ("ticker", "side", *(f"{role} $" for role in proposals),
                   *(f"{role} reason" for role in proposals)):
        table.add_column(column, justify="right" if column.endswith("$") else "left")
    for d in shown:
        table.add_row(d["ticker"], d["side"], *(f"{d[f'{role}_value']:,.0f}" for role in proposals),
                      *(d[f"{role}_reason"] for role in proposals))
    console.print(table)


def _print_history(doc: dict) -> None:
    s, c = doc["summary"], doc["config"]
    table = Table(title=f"Historical shadow from {c['start']}: {s['decisions']} decisions, "
                        f"agreement {s['agreement_rate']:.1%}")
    table.add_column("measure")
    for role in ("policy", "baseline"):
        table.add_column(f"{role}: {s[role]['name']}", justify="right")
    for label, key, fmt in (("tax alpha", "tax_alpha", "{:.2%}/yr"),
                            ("harvested losses", "harvested_losses", "${:,.0f}"),
                            ("realized TE", "tracking_error", "{:.2%}"),
                            ("max ex-ante TE", "max_ex_ante_te", "{:.2%}"),
                            ("decoupling", "decoupling", "{:.2%}"),
                            ("trades", "n_trades", "{:,}"),
                            ("divergent trades", None, "{:,}")):
        values = [sum(s["divergent_trades"][role].values()) if key is None else s[role][key]
                  for role in ("policy", "baseline")]
        table.add_row(label, *[fmt.format(v) for v in values])
    console.print(table)
    if s["largest_divergence"]:
        top = Table(title="Largest divergence")
        for column in ("date", "$ traded differently", "policy harvested", "baseline harvested"):
            top.add_column(column, justify="right")
        for d in s["largest_divergence"]:
            top.add_row(d["date"], f"{d['divergence']:,.0f}", f"{d['policy_harvested_loss']:,.0f}",
                        f"{d['baseline_harvested_loss']:,.0f}")
        console.print(top)


@app.command()
def stress(
    policy: PolicyOption,
    profile: ProfileOption,
    scenarios: Annotated[str, typer.Option(
        help="Comma-separated crash templates (gfc-2008,covid-2020,...), all, or historical "
             "windows START:END on --prices data.")] = "all",
    baseline: Annotated[str | None, typer.Option(help="A second policy to stress.")] = None,
    paths: Annotated[int, typer.Option(help="Monte Carlo synthetic paths per template.")] = 4,
    te_limit: Annotated[float, typer.Option(help="Tracking-error limit (annualized).")] = 0.01,
    assets: Annotated[int, typer.Option(help="Synthetic stocks.")] = 200,
    years: Annotated[float, typer.Option(
        help="Episode length (longer when a template needs it).")] = 3.0,
    cadence: Annotated[str, typer.Option(help="Decision step: daily, weekly or monthly.")
    ] = "weekly",
    seed_base: Annotated[int, typer.Option(help="Path i has synthetic seed SEED_BASE + i.")] = 0,
    prices: Annotated[Path | None, typer.Option(
        help="Real prices for historical windows (CSV or parquet).")] = None,
    sectors: Annotated[Path | None, typer.Option(help="ticker,sector file for --prices.")] = None,
    json_out: Annotated[str | None, typer.Option(
        "--json", help="Write every row and the headline as JSON (- for stdout).")] = None,
    ray: RayOption = None,
    workers: WorkersOption = None,
) -> None:
    """Stress a policy through crash templates, guardrail on and off."""
    from taxharvest.sim.parallel import engine_of
    from taxharvest.workflows.stress import StressTest, parse_scenarios

    tax_profile = _profile(profile)
    names, windows = parse_scenarios(scenarios)
    json_path = _output(json_out, "json")
    _check({"seed-base": seed_base >= 0, "workers": workers is None or workers >= 1},
           "seed-base >= 0, workers >= 1")
    engine, address = engine_of(ray)
    market = None
    if prices is not None or sectors is not None:
        if not windows:
            raise InputError("--prices is for historical windows START:END in --scenarios",
                             field="prices")
        market, _ = _market(prices, sectors, None, None, None)
    test = StressTest(policy, tax_profile.name, baseline=baseline, scenarios=names,
                      windows=windows, market=market, paths=paths, te_limit=te_limit,
                      cadence=cadence, n_assets=assets, years=years, seed_base=seed_base)
    _quiet_guardrail()
    with _progress() as bar:
        result = test.run(engine=engine, address=address, workers=workers,
                          progress=_bar(bar, f"stress ({engine})"))
    _write(json_text(result.to_json()), json_path, json_out)
    if json_out != "-":
        _print_stress(result.to_json())


def _print_stress(doc: dict) -> None:
    headline = doc["headline"]
    limit = headline["te_limit"]
    table = Table(title=f"Stress test, {doc['config']['profile']}, TE limit {limit:.2%} (largest "
                        "over the paths; harvested and tax alpha: means)",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("policy (guardrail)", overflow="fold", min_width=14)
    for column in ("ex-ante", "rolling", "in crash", "decoupl.", "proxied", "harv. $k", "alpha"):
        table.add_column(column, justify="right", no_wrap=True, min_width=6)
    scenario = None
    for g in doc["summary"]:
        if g["scenario"] != scenario:
            scenario = g["scenario"]
            table.add_row(f"[bold]{scenario}[/]")
        in_crash = g["max_rolling_te_in_window"]
        table.add_row(
            f"{g['policy']} ({'on' if g['guardrail'] else 'off'})", f"{g['max_ex_ante_te']:.2%}",
            f"{g['max_rolling_te']:.2%}", "-" if in_crash is None else f"{in_crash:.2%}",
            f"{g['decoupling_max']:.2%}", f"{g['proxied_at_peak']}",
            f"{g['harvested_losses'] / 1e3:,.0f}", f"{g['tax_alpha']:.2%}")
    console.print(table)
    on = headline["guardrail_on"]
    if on is not None:
        verdict = "within" if on["within_limit"] else "ABOVE"
        console.print(f"Guardrail on: max ex-ante TE {on['max_ex_ante_te']:.2%} ({verdict} the "
                      f"{limit:.2%} limit; worst {on['worst']['scenario']} path "
                      f"{on['worst']['path']} on {on['worst']['date']}), "
                      f"{len(on['relaxations'])} relaxation(s).")
        for x in on["relaxations"][:10]:
            console.print(f"  {x['scenario']} path {x['path']} {x['policy']} {x['date']}: "
                          f"{x['status']}: {x['reason']}", highlight=False)
        if len(on["relaxations"]) > 10:
            console.print(f"  ... {len(on['relaxations']) - 10} more in the JSON")
    for name, modes in headline["policies"].items():
        parts = [f"{mode} {m['max_decoupling']:.2%} (max ex-ante TE {m['max_ex_ante_te']:.2%})"
                 for mode, m in modes.items()]
        console.print(f"Decoupling of {name}: " + ", ".join(parts))


@app.command()
def sweep(
    profiles: Annotated[str, typer.Option(help="all, or comma-separated tax profiles.")],
    seeds: Annotated[int, typer.Option(help="Training seeds per profile (0 .. N-1).")] = 3,
    timesteps: Annotated[int, typer.Option(help="Training steps per policy.")] = 50_000,
    eval_paths: Annotated[int, typer.Option(
        help="Held-out synthetic evaluation paths per seed.")] = 4,
    assets: Annotated[int, typer.Option(help="Stocks per evaluation path.")] = 100,
    years: Annotated[float, typer.Option(help="Years per evaluation path.")] = 3.0,
    out: Annotated[Path, typer.Option(help="Parent folder of the run folder.")] = Path("runs"),
    ray: RayOption = None,
    workers: WorkersOption = None,
) -> None:
    """Train PPO per profile and seed; compare with tuned and monthly-all on held-out paths."""
    from taxharvest.sim.parallel import engine_of
    from taxharvest.tax.law import PROFILES
    from taxharvest.workflows.sweep import sweep as run_sweep

    names = list(PROFILES) if profiles.strip() == "all" else [
        _profile(p.strip()).name for p in profiles.split(",") if p.strip()]
    _check({"workers": workers is None or workers >= 1}, "workers >= 1")
    engine, address = engine_of(ray)
    with _progress() as bar:
        result = run_sweep(names, seeds, timesteps, out=out, eval_paths=eval_paths,
                           eval_assets=assets, eval_years=years, engine=engine,
                           address=address, workers=workers,
                           progress=_bar(bar, f"sweep ({engine})"))
    table = Table(title=f"Sweep: {seeds} seed(s) x {timesteps:,} steps, {eval_paths} held-out "
                        f"path(s) per seed ({assets} stocks, {years:g} years); mean ± std "
                        "over seeds")
    for column in ("profile", "policy", "tax alpha", "liquidated", "max ex-ante TE"):
        table.add_column(column, justify="left" if column in ("profile", "policy") else "right")
    for profile, block in result.summary.items():
        for name, s in block.items():
            table.add_row(profile, name,
                          f"{s['tax_alpha_mean']:.2%} ± {s['tax_alpha_std']:.2%}",
                          f"{s['after_tax_excess_liquidated_mean']:.2%} ± "
                          f"{s['after_tax_excess_liquidated_std']:.2%}",
                          f"{s['max_ex_ante_te_mean']:.2%}")
    console.print(table)
    console.print(f"Run folder: {result.folder}")


@app.command()
def report(
    run: Annotated[Path, typer.Argument(
        help="A JSON result: backtest, comparison, shadow, stress or sweep.")],
    out: Annotated[Path, typer.Option(help="The HTML file to write.")],
    title: Annotated[str | None, typer.Option(help="Page title.")] = None,
) -> None:
    """Render a run's JSON as a self-contained HTML report."""
    from taxharvest.report import render_report

    path = _output(out, "out")
    try:
        document = json.loads(run.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror}", path=run) from None
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON: {err.msg}", path=run, row=err.lineno) from None
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text file", path=run) from None
    try:
        written = render_report(document, path, title=title)
    except InputError as err:
        raise InputError(err.message, path=run, field=err.field) from None
    console.print(f"Report: {written}")
