"""``taxharvest backtest``: one policy through one market, measured."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from taxharvest.cli import options
from taxharvest.cli.options import console
from taxharvest.market.risk import WARMUP_DAYS
from taxharvest.sim.measures import BACKTEST_SUMMARY, MEASURES
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.workflows.holdings import read_cash_flows, read_initial_lots
from taxharvest.workflows.markets import check_size, window, years_to_end

SHOWN = 10  # relaxed decisions printed with their causes (all of them in the JSON)


def backtest(
    policy: Annotated[str, typer.Option(
        help="hold | threshold:X[@cadence] | monthly-all | tuned | optimizer | ppo:PATH")],
    profile: options.ProfileOption,
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
    max_gain: options.MaxGainOption = None,
    te_glide_years: options.GlideOption = 0.0,
    no_guardrail: Annotated[bool, typer.Option(
        "--no-guardrail", help="Run without the tracking-error guardrail.")] = False,
    decision: Annotated[str, typer.Option(
        help="Decision core: optimizer (the tax-aware program) or rules (the heuristic "
             "pipeline: harvests into proxies, lock budget, L2 projection), for comparison."
    )] = "optimizer",
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
    strict_data: options.StrictDataOption = False,
    max_gap_days: options.MaxGapOption = None,
    contributions: options.ContributionsOption = None,
    withdrawals: options.WithdrawalsOption = None,
    cash_flows: options.CashFlowsOption = None,
) -> None:
    """Backtest a harvesting policy on real or synthetic prices."""
    from taxharvest.envs.direct_index import DECISION_CORES, DirectIndexEnv
    from taxharvest.io import csv_text, json_text
    from taxharvest.sim.backtest import run_backtest
    from taxharvest.tax.reporting import FORM_8949_COLUMNS

    tax_profile = options.profile(profile)
    options.cadence(cadence)
    options.rebalance(rebalance)
    options.check({"decision": decision in DECISION_CORES,
                   "max-gain": max_gain is None or decision == "optimizer",
                   "te-glide-years": te_glide_years == 0 or decision == "optimizer"},
                  f"decision one of {', '.join(DECISION_CORES)}; transitions need the optimizer")
    options.check({"te-limit": te_limit > 0, "fee": 0 <= fee < 1}, "te-limit > 0, 0 <= fee < 1")
    check_size(assets, years)
    transition = options.transition(max_gain, te_glide_years)
    out = options.outputs({"json": json_out, "form8949": form8949},
                          inputs=(prices, sectors, initial_lots, cash_flows))
    flows = read_cash_flows(contributions, withdrawals, cash_flows)
    options.policy(policy, tax_profile)  # a bad spec fails before the data are read
    mk, seed = options.market(prices, sectors, market, assets, years, strict_data=strict_data,
                              max_gap_days=max_gap_days)
    mk, first_decision = window(mk, start, end)
    options.window_note(mk, first_decision)
    exclusions = options.exclusions(exclude, mk)
    lots, initial_value = None, 1_000_000.0
    if initial_lots is not None:
        lots, initial_value = read_initial_lots(initial_lots, mk, first_decision)
    env = DirectIndexEnv(
        market=mk, profile=tax_profile, cadence=cadence, te_limit=te_limit,
        guardrail=not no_guardrail, exclusions=exclusions, initial_lots=lots,
        initial_value=initial_value, random_start=False, warmup_days=WARMUP_DAYS,
        episode_years=years if years is not None else years_to_end(mk),
        benchmark_rebalance=rebalance, cash_flows=flows, decision=decision, **transition)
    harvester = options.policy(policy, tax_profile, env=env)

    with quiet_guardrail(), options.progress() as bar:
        result = run_backtest(harvester, env, seed=seed, options={"start": first_decision},
                              fee=fee, progress=options.progress_task(
                                  bar, f"backtest {harvester.name}"))
    options.write(json_text(result.to_json()), out["json"], json_out)
    options.write(csv_text(result.form_8949, FORM_8949_COLUMNS), out["form8949"], None)
    if json_out != "-":
        _print_summary(result, fee)


def _print_summary(result, fee: float) -> None:
    m, c = result.metrics, result.config
    table = Table(title=f"{c['policy']} on {c['market']}, {c['profile']}, TE limit "
                        f"{c['te_limit']:.2%}, guardrail {'on' if c['guardrail'] else 'off'}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [(x.label, x.format(m[x.key])) for x in BACKTEST_SUMMARY]
    if fee:
        rows.insert(1, (f"tax alpha net of {fee:.2%} fee",
                        MEASURES["tax_alpha_net_of_fee"].format(m["tax_alpha_net_of_fee"])))
    for a, b in (("n_trades", "wash_sale_disallowed"), ("years", "runtime_s")):
        rows.append((f"{MEASURES[a].label} / {MEASURES[b].label}",
                     f"{MEASURES[a].format(m[a])} / {MEASURES[b].format(m[b])}"))
    rows[-1:-1] = [(f"{MEASURES['guardrail_interventions'].label} (relaxed)",
                    f"{m['guardrail_interventions']:,} ({m['guardrail_relaxed']:,})"),
                   ("Form 8949 rows", f"{len(result.form_8949):,}")]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for x in result.relaxations[:SHOWN]:
        console.print(f"  {x['date']}: {x['status']}: {x['reason']}", highlight=False)
    if len(result.relaxations) > SHOWN:
        console.print(f"  ... {len(result.relaxations) - SHOWN} more relaxed or fallen-back "
                      "decisions, each with its cause, in the JSON")
    yearly = Table(title="By year")
    for column in ("year", "tax savings", "harvested losses", "realized TE", "8949 rows"):
        yearly.add_column(column, justify="right")
    for year, y in result.yearly.items():
        yearly.add_row(year, f"{y['tax_savings']:,.0f}", f"{y['harvested_losses']:,.0f}",
                       f"{y['te']:.2%}", f"{y['form_8949_rows']:,}")
    console.print(yearly)
