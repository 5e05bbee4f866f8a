"""``taxharvest backtest`` and ``taxharvest tune``, registered on the CLI's typer app.

Every argument and input file is checked before the run starts, so a mistake exits 2 with
one line and writes nothing; outputs are written whole (atomically) after the run.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from taxharvest.cli import app, console
from taxharvest.errors import InputError
from taxharvest.io import read_csv_rows
from taxharvest.market.risk import WARMUP_DAYS
from taxharvest.market.universe import MarketData

INITIAL_LOT_COLUMNS = ("ticker", "shares", "date_acquired", "cost_basis")


def _quiet_guardrail() -> None:
    """The guardrail logs every relaxation; the summary counts them instead."""
    logging.getLogger("taxharvest.guardrails").setLevel(logging.ERROR)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=True)


def _profile(name: str):
    from taxharvest.tax.law import get_profile

    try:
        return get_profile(name)
    except ValueError as err:
        raise InputError(str(err), field="profile") from None


def _check(conditions: dict[str, bool], rule: str) -> None:
    """Raise for the first option whose condition fails (NaN fails every comparison)."""
    for name, ok in conditions.items():
        if not ok:
            raise InputError(f"out of range; need {rule}", field=name)


def _output(path: str | Path | None, option: str) -> Path | None:
    """An output path whose folder exists (checked before the run), or None (or ``-``)."""
    if path is None or str(path) == "-":
        return None
    path = Path(path)
    if not path.parent.exists():
        raise InputError(f"output folder {path.parent} does not exist", field=option)
    return path


def _date(value: str, option: str) -> np.datetime64:
    try:
        return np.datetime64(value, "D")
    except ValueError:
        raise InputError(f"cannot parse date {value!r} (expected YYYY-MM-DD)",
                         field=option) from None


def _market(prices: Path | None, sectors: Path | None, market: str | None,
            assets: int | None, years: float | None) -> tuple[MarketData, int]:
    """The market and the seed of the run (the synthetic seed; 0 for real data)."""
    if prices is not None or sectors is not None:
        if prices is None or sectors is None:
            raise InputError("--prices and --sectors go together", field="prices")
        if market is not None:
            raise InputError("give either --market or --prices/--sectors, not both",
                             field="market")
        if assets is not None:
            raise InputError("--assets applies to --market synthetic only", field="assets")
        from taxharvest.market.loader import DataError, load_prices

        try:
            return load_prices(prices, sectors), 0
        except DataError as err:
            raise InputError(str(err)) from None
    kind, _, arg = (market or "synthetic").partition(":")
    key, _, value = arg.partition("=")
    if kind != "synthetic" or (arg and (key != "seed" or not value.isdigit())):
        raise InputError(f"unknown market {market!r}; expected synthetic or synthetic:seed=N",
                         field="market")
    from taxharvest.sim.backtest import synthetic_market

    seed = int(value or 0)
    return synthetic_market(assets or 500, years or 10.0, seed), seed


def _window(mk: MarketData, start: str | None, end: str | None) -> tuple[MarketData, str]:
    """Cut the market to ``end`` and to the warm-up before ``start``; the first decision date."""
    first, last = mk.dates[0], mk.dates[-1]
    lo = min(WARMUP_DAYS, mk.n_days - 2)
    if start is not None:
        day = _date(start, "start")
        if not first < day <= last:
            raise InputError(f"--start {start} is outside the data ({first} to {last}, the "
                             "first day excluded)", field="start")
        lo = mk.date_index(day)
        if lo >= mk.n_days - 1:
            raise InputError(f"--start {start} leaves no day to trade (data end {last})",
                             field="start")
    if end is not None:
        day = _date(end, "end")
        if day <= mk.dates[lo]:
            raise InputError(f"--end {end} is not after the first decision {mk.dates[lo]}",
                             field="end")
        mk = mk.slice(first, day)
    begin = max(0, lo - WARMUP_DAYS)
    if begin:
        mk = mk.slice(mk.dates[begin], mk.dates[-1])
    return mk, str(mk.dates[lo - begin])


def _exclusions(text: str | None, mk: MarketData) -> list[str]:
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    sectors = {s.lower() for s in mk.sector_names}
    tickers = {t.upper() for t in mk.tickers}
    for item in items:
        if item.lower().startswith("sector:"):
            if item.split(":", 1)[1].strip().lower() not in sectors:
                raise InputError(f"unknown sector in {item!r}; sectors are "
                                 f"{', '.join(mk.sector_names)}", field="exclude")
        elif item.upper() not in tickers:
            raise InputError(f"unknown ticker {item!r} (not in the market)", field="exclude")
    return items


def read_initial_lots(path: Path, mk: MarketData, start: str) -> tuple[list[dict], float]:
    """Validated ``ticker,shares,date_acquired,cost_basis`` rows and their value at ``start``."""
    rows = read_csv_rows(path, INITIAL_LOT_COLUMNS, "initial lots")
    row_of = {t.upper(): i for i, t in enumerate(mk.tickers)}
    start_row = mk.date_index(start)
    lots, value = [], 0.0
    for line, row in enumerate(rows, start=2):
        def bad(field: str, message: str, line: int = line) -> InputError:
            return InputError(message, path=path, row=line, field=field)

        if None in row:
            raise bad("", "more values than columns")
        cells = {k: (row.get(k) or "").strip() for k in INITIAL_LOT_COLUMNS}
        ticker = cells["ticker"].upper()
        if ticker not in row_of:
            raise bad("ticker", f"unknown ticker {cells['ticker']!r} (not in the market)")
        price = mk.prices[start_row, row_of[ticker]]
        if not np.isfinite(price):
            raise bad("ticker", f"{ticker} has no price on the start date {start}")
        numbers = {}
        for field in ("shares", "cost_basis"):
            try:
                numbers[field] = float(cells[field])
            except ValueError:
                raise bad(field, f"cannot parse number {cells[field]!r}") from None
            if not math.isfinite(numbers[field]) or numbers[field] < 0 or (
                    field == "shares" and numbers[field] == 0):
                raise bad(field, f"{field} must be {'positive' if field == 'shares' else 'at least 0'}"
                                 f", got {cells[field]}")
        try:
            acquired = np.datetime64(cells["date_acquired"], "D")
        except ValueError:
            raise bad("date_acquired", f"cannot parse date {cells['date_acquired']!r} "
                                       "(expected YYYY-MM-DD)") from None
        if acquired > np.datetime64(start):
            raise bad("date_acquired", f"{acquired} is after the start date {start}")
        lots.append({"ticker": ticker, "shares": numbers["shares"],
                     "date_acquired": str(acquired), "cost_basis": numbers["cost_basis"]})
        value += numbers["shares"] * float(price)
    return lots, value


@app.command()
def backtest(
    policy: Annotated[str, typer.Option(
        help="hold | threshold:X[@cadence] | monthly-all | tuned | ppo:PATH")],
    profile: Annotated[str, typer.Option(
        help="Tax profile: single-60k, mfj-250k, mfj-800k, mfj-800k-ca.")],
    prices: Annotated[Path | None, typer.Option(
        help="Long-format daily prices (CSV or parquet); equal-weighted benchmark.")] = None,
    sectors: Annotated[Path | None, typer.Option(help="ticker,sector file for --prices.")] = None,
    market: Annotated[str | None, typer.Option(
        help="synthetic[:seed=N] (the default without --prices; seeds 0-99 are for evaluation).")
    ] = None,
    te_limit: Annotated[float, typer.Option(help="Tracking-error limit (annualized).")] = 0.01,
    cadence: Annotated[str, typer.Option(help="Decision step: daily, weekly or monthly.")] = "weekly",
    start: Annotated[str | None, typer.Option(help="First decision date (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Last date (YYYY-MM-DD).")] = None,
    exclude: Annotated[str | None, typer.Option(
        help="Comma-separated tickers and sector:NAME to exclude.")] = None,
    initial_lots: Annotated[Path | None, typer.Option(
        help="Start from these lots: CSV ticker,shares,date_acquired,cost_basis.")] = None,
    no_guardrail: Annotated[bool, typer.Option(
        "--no-guardrail", help="Run without the tracking-error guardrail.")] = False,
    json_out: Annotated[str | None, typer.Option(
        "--json", help="Write the results as JSON (- for stdout).")] = None,
    form8949: Annotated[Path | None, typer.Option(
        help="Write the run's Form 8949 rows as CSV.")] = None,
    assets: Annotated[int | None, typer.Option(help="Synthetic stocks (default 500).")] = None,
    years: Annotated[float | None, typer.Option(
        help="Episode length in years (synthetic default 10; real data: to the end).")] = None,
    fee: Annotated[float, typer.Option(help="Annual management fee, for tax alpha net of it.")
    ] = 0.0,
    rebalance: Annotated[str | None, typer.Option(
        help="Benchmark reconstitution: monthly, quarterly or annual (late listings join "
             "then); default buy-and-hold.")] = None,
) -> None:
    """Backtest a harvesting policy on real or synthetic prices."""
    from taxharvest.agents.rules import make_policy
    from taxharvest.envs.direct_index import CADENCE_DAYS, DirectIndexEnv
    from taxharvest.io import csv_text, json_text, write_atomic
    from taxharvest.sim.backtest import run_backtest
    from taxharvest.tax.reporting import FORM_8949_COLUMNS

    tax_profile = _profile(profile)
    if cadence not in CADENCE_DAYS:
        raise InputError(f"unknown cadence {cadence!r}; expected one of "
                         f"{', '.join(CADENCE_DAYS)}", field="cadence")
    if rebalance not in (None, "monthly", "quarterly", "annual"):
        raise InputError(f"unknown --rebalance {rebalance!r}; expected monthly, quarterly or "
                         "annual", field="rebalance")
    _check({"te-limit": te_limit > 0, "years": years is None or years > 0,
            "assets": assets is None or assets >= 11, "fee": 0 <= fee < 1},
           "te-limit > 0, years > 0, assets >= 11 (one per sector), 0 <= fee < 1")
    json_path, csv_path = _output(json_out, "json"), _output(form8949, "form8949")
    mk, seed = _market(prices, sectors, market, assets, years)
    mk, first_decision = _window(mk, start, end)
    exclusions = _exclusions(exclude, mk)
    lots, initial_value = None, 1_000_000.0
    if initial_lots is not None:
        lots, initial_value = read_initial_lots(initial_lots, mk, first_decision)
    env = DirectIndexEnv(
        market=mk, profile=tax_profile, cadence=cadence, te_limit=te_limit,
        guardrail=not no_guardrail, exclusions=exclusions, initial_lots=lots,
        initial_value=initial_value, random_start=False, warmup_days=WARMUP_DAYS,
        episode_years=years if years is not None else mk.n_days / 252 + 1,
        benchmark_rebalance=rebalance)
    harvester = make_policy(policy, tax_profile, env)

    _quiet_guardrail()
    with _progress() as bar:
        task = bar.add_task(f"backtest {harvester.name}", total=None)
        result = run_backtest(harvester, env, seed=seed, options={"start": first_decision},
                              fee=fee, progress=lambda done, total: bar.update(
                                  task, completed=done, total=total))
    if json_out == "-":
        sys.stdout.write(json_text(result.to_json()))
    elif json_path is not None:
        write_atomic(json_path, json_text(result.to_json()))
    if csv_path is not None:
        write_atomic(csv_path, csv_text(result.form_8949, FORM_8949_COLUMNS))
    if json_out != "-":
        _print_summary(result, fee)


def _print_summary(result, fee: float) -> None:
    m, c = result.metrics, result.config
    table = Table(title=f"{c['policy']} on {c['market']}, {c['profile']}, TE limit "
                        f"{c['te_limit']:.2%}, guardrail {'on' if c['guardrail'] else 'off'}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("tax alpha (pre-liquidation)", f"{m['tax_alpha']:.2%}/yr"),
        *([(f"tax alpha net of {fee:.2%} fee", f"{m['tax_alpha_net_of_fee']:.2%}/yr")]
          if fee else []),
        ("after-tax excess, liquidated", f"{m['after_tax_excess_liquidated']:.2%}/yr"),
        ("after-tax excess, step-up", f"{m['after_tax_excess_step_up']:.2%}/yr"),
        ("active return (pre-tax)", f"{m['active_return']:+.2%}/yr"),
        ("harvested losses", f"${m['harvested_losses']:,.0f}"),
        ("harvest yield", f"{m['harvest_yield']:.2%}/yr"),
        ("tracking error (realized)", f"{m['tracking_error']:.2%}"),
        ("max rolling TE (63 days)", f"{m['max_rolling_te']:.2%}"),
        ("max ex-ante TE", f"{m['max_ex_ante_te']:.2%}"),
        ("steps above the TE limit", f"{m['te_above_limit']:.1%}"),
        ("decoupling", f"{m['decoupling']:.2%}"),
        ("embedded gain", f"{m['embedded_gain']:.1%}"),
        ("turnover (one-sided)", f"{m['turnover']:.1%}/yr"),
        ("trades / wash sale disallowed", f"{m['n_trades']:,} / ${m['wash_sale_disallowed']:,.0f}"),
        ("guardrail interventions (relaxed)",
         f"{m['guardrail_interventions']:,} ({m['guardrail_relaxed']:,})"),
        ("Form 8949 rows", f"{len(result.form_8949):,}"),
        ("years / runtime", f"{m['years']:.2f} / {m['runtime_s']:.1f}s"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    yearly = Table(title="By year")
    for column in ("year", "tax savings", "harvested losses", "realized TE", "8949 rows"):
        yearly.add_column(column, justify="right")
    for year, y in result.yearly.items():
        yearly.add_row(year, f"{y['tax_savings']:,.0f}", f"{y['harvested_losses']:,.0f}",
                       f"{y['te']:.2%}", f"{y['form_8949_rows']:,}")
    console.print(yearly)


@app.command()
def tune(
    profile: Annotated[str, typer.Option(help="A tax profile, or all for the four presets.")],
    paths: Annotated[int, typer.Option(help="Training paths per grid point.")] = 5,
    seed_start: Annotated[int, typer.Option(
        help="First training seed (seeds 0-99 are reserved for evaluation).")] = 1000,
    assets: Annotated[int, typer.Option(help="Stocks per training path.")] = 100,
    years: Annotated[float, typer.Option(help="Years per training path.")] = 5.0,
    te_limit: Annotated[float, typer.Option(help="Tracking-error limit.")] = 0.01,
    jobs: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    out: Annotated[Path | None, typer.Option(
        help="The tuned file to update (default: the packaged tuned.yaml).")] = None,
) -> None:
    """Grid-search the tuned policy's threshold and cadence on training paths."""
    from taxharvest.agents.rules import TUNED_PATH
    from taxharvest.tax.law import PROFILES
    from taxharvest.workflows.tune import EVALUATION_SEEDS, write_tuned
    from taxharvest.workflows.tune import tune as tune_profile

    names = list(PROFILES) if profile == "all" else [_profile(profile).name]
    seeds = tuple(range(seed_start, seed_start + paths))
    if paths < 1 or set(seeds) & set(EVALUATION_SEEDS):
        raise InputError(f"need at least one path and seeds outside 0-99, got "
                         f"{seed_start}..{seed_start + paths - 1}", field="seed-start")
    _check({"assets": assets >= 11, "years": years > 0, "te-limit": te_limit > 0,
            "jobs": jobs >= 1}, "assets >= 11, years > 0, te-limit > 0, jobs >= 1")
    path = _output(out or TUNED_PATH, "out")
    command = (f"taxharvest tune --profile {profile} --paths {paths} --seed-start {seed_start} "
               f"--assets {assets} --years {years:g} --te-limit {te_limit:g}")
    _quiet_guardrail()
    entries = {}
    with _progress() as bar:
        for name in names:
            task = bar.add_task(f"tune {name}", total=None)
            entries[name] = tune_profile(
                name, seeds=seeds, n_assets=assets, years=years, te_limit=te_limit,
                n_jobs=jobs,
                progress=lambda done, total, task=task: bar.update(task, completed=done,
                                                                    total=total))
    write_tuned(entries, command, path)
    table = Table(title=f"Tuned on seeds {seeds[0]}-{seeds[-1]} ({assets} stocks, {years:g} "
                        f"years), written to {path}")
    for column in ("profile", "threshold", "cadence", "tax alpha", "max ex-ante TE", "feasible"):
        table.add_column(column, justify="right")
    for name, e in entries.items():
        table.add_row(name, f"{e['threshold']:g}", e["cadence"], f"{e['tax_alpha']:.2%}",
                      f"{e['max_ex_ante_te']:.2%}", str(e["feasible"]))
    console.print(table)


@app.command()
def evaluate(
    profiles: Annotated[str, typer.Option(help="all, or comma-separated tax profiles.")] = "all",
    policies: Annotated[str, typer.Option(
        help="Comma-separated: ppo (the profile's shipped model), tuned, monthly-all, hold, "
             "threshold:X.")] = "ppo,tuned,monthly-all",
    paths: Annotated[int, typer.Option(help="Synthetic evaluation paths (seeds 0..N-1).")] = 4,
    assets: Annotated[int, typer.Option(help="Stocks per synthetic path.")] = 500,
    years: Annotated[float, typer.Option(help="Years per synthetic path.")] = 10.0,
    prices: Annotated[Path | None, typer.Option(help="Real prices for one more path.")] = None,
    sectors: Annotated[Path | None, typer.Option(help="ticker,sector file for --prices.")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First decision date on real data.")] = None,
    rebalance: Annotated[str | None, typer.Option(
        help="Real data: benchmark reconstitution (monthly, quarterly, annual).")] = None,
    models: Annotated[Path, typer.Option(help="Folder of the shipped policies.")
    ] = Path("models"),
    te_limit: Annotated[float, typer.Option(help="Tracking-error limit.")] = 0.01,
    json_out: Annotated[Path | None, typer.Option("--json", help="Rows and summary as JSON.")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="The summary as a Markdown table.")
    ] = None,
    ray: Annotated[str | None, typer.Option(help="Run on Ray: auto or a cluster ADDRESS.")
    ] = None,
) -> None:
    """Compare policies per profile on the same unseen paths (synthetic, and real data)."""
    from taxharvest.io import json_text, write_atomic
    from taxharvest.sim.parallel import engine_of
    from taxharvest.tax.law import PROFILES
    from taxharvest.workflows.evaluate import (
        EvalMarket,
        EvalTask,
        markdown_table,
        summarize,
    )
    from taxharvest.workflows.evaluate import evaluate as run_evaluation

    names = list(PROFILES) if profiles == "all" else [p.strip() for p in profiles.split(",")]
    for name in names:
        _profile(name)
    _check({"paths": paths >= 0, "assets": assets >= 11, "years": years > 0,
            "te-limit": te_limit > 0}, "paths >= 0, assets >= 11, years > 0, te-limit > 0")
    if (prices is None) != (sectors is None):
        raise InputError("--prices and --sectors go together", field="prices")
    for path, option in ((prices, "prices"), (sectors, "sectors")):
        if path is not None and not path.exists():
            raise InputError("file not found", path=path, field=option)
    json_path, md_path = _output(json_out, "json"), _output(markdown, "markdown")
    engine, address = engine_of(ray)
    markets = [EvalMarket(f"synthetic:{seed}", seed=seed, assets=assets, years=years)
               for seed in range(paths)]
    if prices is not None:
        markets.append(EvalMarket("real", prices=str(prices), sectors=str(sectors), start=start,
                                  rebalance=rebalance))
    tasks = []
    for name in names:
        specs = []
        for spec in (s.strip() for s in policies.split(",") if s.strip()):
            if spec == "ppo":
                folder = models / name
                if not (folder / "model.zip").exists():
                    raise InputError(f"no trained policy in {folder}", field="models")
                specs.append(("ppo", f"ppo:{folder}"))
            else:
                specs.append((spec, spec))
        tasks += [EvalTask(name, tuple(specs), market, te_limit=te_limit) for market in markets]
    if not tasks:
        raise InputError("nothing to evaluate: give --paths > 0 or --prices", field="paths")
    _quiet_guardrail()
    with _progress() as bar:
        task = bar.add_task(f"evaluate ({len(tasks)} paths x policies)", total=len(tasks))
        rows = run_evaluation(tasks, engine=engine, address=address,
                              progress=lambda done, total: bar.update(task, completed=done))
    summary = summarize(rows)
    table = markdown_table(summary)
    if json_path is not None:
        write_atomic(json_path, json_text({"kind": "evaluation", "rows": rows,
                                           "summary": summary}))
    if md_path is not None:
        write_atomic(md_path, table)
    sys.stdout.write(table)
