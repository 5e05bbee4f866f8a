"""``taxharvest frontier``: tax alpha against tracking error, per policy across TE limits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from taxharvest.cli import options
from taxharvest.cli.options import RayOption, WorkersOption, console
from taxharvest.errors import InputError
from taxharvest.io import json_text
from taxharvest.report.frontier import FRONTIER, limit_label
from taxharvest.sim.quiet import quiet_guardrail

# relaxed: under the table; the relative decoupling: in the document (80 columns)
COLUMNS = tuple(m for m in FRONTIER if m.key not in ("guardrail_relaxed", "relative_decoupling"))


def frontier(
    policies: Annotated[str, typer.Option(
        help="Comma-separated policies, each as backtest's --policy takes it "
             "(e.g. hold,monthly-all,tuned).")] = "optimizer,monthly-all,tuned",
    te_limits: Annotated[str, typer.Option(
        help="Comma-separated TE limits (annualized fractions; none: the guardrail off).")
    ] = "0.0025,0.005,0.01,0.02,none",
    profile: Annotated[str, typer.Option(help=options.PROFILE_HELP)] = "mfj-800k",
    paths: Annotated[int | None, typer.Option(
        help="Synthetic evaluation paths, seeds 0..N-1 (default 4; not with --prices).")
    ] = None,
    assets: Annotated[int | None, typer.Option(help="Synthetic stocks (default 500).")] = None,
    years: Annotated[float | None, typer.Option(help="Synthetic years (default 10).")] = None,
    prices: Annotated[Path | None, typer.Option(
        help="Real prices (CSV or parquet) instead of synthetic paths.")] = None,
    sectors: Annotated[Path | None, typer.Option(help="ticker,sector file for --prices.")] = None,
    starts: Annotated[int | None, typer.Option(
        help="Real data: decide from each of the first N trading days of the window, one "
             "path each (one history, N calendars; default 1).")] = None,
    strict_data: options.StrictDataOption = False,
    max_gap_days: options.MaxGapOption = None,
    json_out: Annotated[str | None, typer.Option(
        "--json", help="Write the rows and every path's run as JSON (- for stdout).")] = None,
    ray: RayOption = None,
    workers: WorkersOption = None,
) -> None:
    """Tax alpha against tracking error: each policy once per TE limit, on the same paths."""
    from taxharvest.sim.parallel import engine_of
    from taxharvest.workflows.evaluate import synthetic_paths
    from taxharvest.workflows.frontier import frontier as run_frontier
    from taxharvest.workflows.frontier import parse_policies, parse_te_limits
    from taxharvest.workflows.markets import EVALUATION_SEEDS, check_size

    tax_profile = options.profile(profile)
    specs = parse_policies(policies)
    limits = parse_te_limits(te_limits)
    options.check({"paths": paths is None or 1 <= paths <= len(EVALUATION_SEEDS),
                   "workers": workers is None or workers >= 1},
                  f"1 <= paths <= {len(EVALUATION_SEEDS)} (the seeds reserved for "
                  "evaluation), workers >= 1")
    check_size(assets, years)
    if prices is not None and paths is not None:
        raise InputError("give either --paths (synthetic) or --prices/--sectors", field="paths")
    options.only_with("paths (synthetic)", prices is None, {"assets": assets, "years": years})
    options.only_with("prices", prices is not None,
                      {"strict-data": strict_data, "max-gap-days": max_gap_days,
                       "starts": starts})
    out = options.outputs({"json": json_out}, inputs=(prices, sectors))
    for spec in specs:
        options.policy(spec, tax_profile, "policies")
    engine, address = engine_of(ray)
    if prices is not None or sectors is not None:
        mk, _ = options.market(prices, sectors, strict_data=strict_data,
                               max_gap_days=max_gap_days)
        markets = options.real_paths(mk, None, starts)
    else:
        markets = synthetic_paths(paths or 4, assets or 500, years or 10.0)
    with quiet_guardrail(), options.progress() as bar:
        doc = run_frontier(tax_profile, specs, limits, markets, engine=engine, address=address,
                           workers=workers, progress=options.progress_task(
                               bar, f"frontier ({len(specs)} policies x {len(limits)} limits "
                                    f"x {len(markets)} path(s))"))
    options.write(json_text(doc), out["json"], json_out)
    if json_out != "-":
        _print_frontier(doc)


def _print_frontier(doc: dict) -> None:
    c = doc["config"]
    worst = ", ".join(m.short for m in COLUMNS if m.worst)
    table = Table(title=f"Tax alpha against tracking error: {c['profile']}, "
                        f"{len(c['paths'])} path(s); means over paths (worst path: {worst})",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("TE limit", overflow="fold")
    for m in COLUMNS:
        table.add_column(m.short, justify="right", no_wrap=True)
    policy = None
    for row in doc["rows"]:
        if row["policy"] != policy:
            policy = row["policy"]
            table.add_row(Text(row["name"], style="bold"))
        table.add_row(limit_label(row["te_limit"]), *[m.cell(row[m.key]) for m in COLUMNS])
    console.print(table)
    guarded = [r for r in doc["rows"] if r["te_limit"] is not None]
    above = [r for r in guarded if r["max_ex_ante_te"] > r["te_limit"] * (1 + 1e-9)]
    if guarded and not above:
        console.print("Guardrail on: every decision's ex-ante TE within its limit.")
    for r in above:
        console.print(f"{r['name']} at {limit_label(r['te_limit'])}: max ex-ante TE "
                      f"{r['max_ex_ante_te']:.2%} above the limit (up to "
                      f"{r['guardrail_relaxed']:,.0f} relaxation(s) of it on a path).")
