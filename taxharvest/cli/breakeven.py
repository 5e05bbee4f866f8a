"""``taxharvest breakeven``: is direct indexing worth its fee for this client, per account
size?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from taxharvest.cli import options
from taxharvest.cli.options import ProfileOption, RayOption, WorkersOption, console
from taxharvest.errors import InputError
from taxharvest.io import json_text
from taxharvest.sim.measures import MEASURES, select
from taxharvest.sim.quiet import quiet_guardrail

TERMINAL = select("tax_alpha", "tax_alpha_net_of_fee", "after_tax_excess_liquidated",
                  "after_tax_excess_liquidated_net_of_fee", "tax_savings")


def breakeven(
    profile: ProfileOption,
    fee: Annotated[float, typer.Option(
        help="Annual management fee as a fraction of the account's value (0.004 = 0.40%), "
             "above what an index fund would cost.")] = 0.004,
    sizes: Annotated[str, typer.Option(
        help="Comma-separated account sizes: 250k, 1M, 1.5m, 20000000.")] = "250k,1M,5M,20M",
    policy: Annotated[str, typer.Option(
        help="hold | threshold:X[@cadence] | monthly-all | tuned | ppo:PATH")] = "monthly-all",
    paths: Annotated[int | None, typer.Option(
        help="Synthetic evaluation paths, seeds 0..N-1 (default 4; not with --prices).")
    ] = None,
    assets: Annotated[int | None, typer.Option(help="Synthetic stocks (default 500).")] = None,
    years: Annotated[float | None, typer.Option(help="Synthetic years (default 10).")] = None,
    prices: Annotated[Path | None, typer.Option(
        help="Real prices (CSV or parquet) instead of synthetic paths.")] = None,
    sectors: Annotated[Path | None, typer.Option(help="ticker,sector file for --prices.")] = None,
    start: Annotated[str | None, typer.Option(
        help="Real data: first day (default: after the risk model's warm-up).")] = None,
    rebalance: Annotated[str | None, typer.Option(
        help="Real data: benchmark reconstitution (monthly, quarterly, annual).")] = None,
    strict_data: options.StrictDataOption = False,
    max_gap_days: options.MaxGapOption = None,
    cadence: Annotated[str, typer.Option(help="Decision step: daily, weekly or monthly.")
    ] = "weekly",
    te_limit: Annotated[float, typer.Option(help="Tracking-error limit (annualized).")] = 0.01,
    json_out: Annotated[str | None, typer.Option(
        "--json", help="Write rows, summary and break-even as JSON (- for stdout).")] = None,
    ray: RayOption = None,
    workers: WorkersOption = None,
) -> None:
    """Tax alpha and liquidated excess per account size, net of a fee, and the break-even."""
    from taxharvest.sim.parallel import engine_of
    from taxharvest.workflows.breakeven import breakeven as run_breakeven
    from taxharvest.workflows.breakeven import parse_sizes
    from taxharvest.workflows.evaluate import synthetic_paths

    tax_profile = options.profile(profile)
    size_values = parse_sizes(sizes)
    options.cadence(cadence)
    options.check({"fee": 0 <= fee < 1, "te-limit": te_limit > 0,
                   "paths": paths is None or paths >= 1, "assets": assets is None or assets >= 11,
                   "years": years is None or years > 0, "workers": workers is None or workers >= 1},
                  "0 <= fee < 1, te-limit > 0, paths >= 1, assets >= 11, years > 0, workers >= 1")
    if prices is not None and paths is not None:
        raise InputError("give either --paths (synthetic) or --prices/--sectors", field="paths")
    options.only_with("prices", prices is not None, {"start": start, "rebalance": rebalance,
                                                     "strict-data": strict_data,
                                                     "max-gap-days": max_gap_days})
    options.only_with("paths (synthetic)", prices is None, {"assets": assets, "years": years})
    options.rebalance(rebalance)
    out = options.outputs({"json": json_out}, inputs=(prices, sectors))
    options.policy(policy, tax_profile)
    engine, address = engine_of(ray)
    if prices is not None or sectors is not None:
        mk, _ = options.market(prices, sectors, strict_data=strict_data,
                               max_gap_days=max_gap_days)
        markets = options.real_paths(mk, start, rebalance=rebalance)
    else:
        markets = synthetic_paths(paths or 4, assets or 500, years or 10.0)
    with quiet_guardrail(), options.progress() as bar:
        doc = run_breakeven(tax_profile, size_values, fee, markets, policy=policy,
                            cadence=cadence, te_limit=te_limit, engine=engine, address=address,
                            workers=workers, progress=options.progress_task(
                                bar, f"breakeven ({len(markets)} path(s) x "
                                     f"{len(size_values)} sizes)"))
    options.write(json_text(doc), out["json"], json_out)
    if json_out != "-":
        _print_breakeven(doc)


def _print_breakeven(doc: dict) -> None:
    c = doc["config"]
    table = Table(title=f"Fee break-even: {c['profile']}, fee {c['fee']:.2%} a year, "
                        f"{c['policy']}, {len(c['paths'])} path(s); means over paths",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    columns = [(m, "") for m in TERMINAL]
    columns[2:2] = [(MEASURES["tax_alpha_net_of_fee"], "_worst")]
    columns.insert(5, (MEASURES["after_tax_excess_liquidated_net_of_fee"], "_worst"))
    table.add_column("size", justify="right")
    for m, end in columns:  # dollars in full, under the label's head
        head = m.label.partition(" (")[0] if m.kind == "dollars" else m.short
        table.add_column(head + (" (worst)" if end else ""), justify="right")
    for e in doc["summary"]:
        table.add_row(e["size_label"], *[m.format(e[m.key + end]).removesuffix(m.unit)
                                         for m, end in columns])
    console.print(table)
    for key, block in doc["break_even"].items():
        console.print(f"{MEASURES[key].label} crosses zero: {block['text']}")
    console.print(c["fee_rule"])
