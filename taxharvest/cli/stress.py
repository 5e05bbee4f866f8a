"""``taxharvest stress``: a policy through crash templates, guardrail on and off."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from taxharvest.cli import options
from taxharvest.cli.options import PolicyOption, ProfileOption, RayOption, WorkersOption, console
from taxharvest.errors import InputError
from taxharvest.io import json_text
from taxharvest.market.risk import WARMUP_DAYS
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.workflows.holdings import read_cash_flows, read_initial_lots
from taxharvest.workflows.markets import historical_window, synthetic_market


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
    strict_data: options.StrictDataOption = False,
    max_gap_days: options.MaxGapOption = None,
    json_out: Annotated[str | None, typer.Option(
        "--json", help="Write every row and the headline as JSON (- for stdout).")] = None,
    ray: RayOption = None,
    workers: WorkersOption = None,
    contributions: options.ContributionsOption = None,
    withdrawals: options.WithdrawalsOption = None,
    cash_flows: options.CashFlowsOption = None,
    initial_lots: Annotated[Path | None, typer.Option(
        help="Every run starts from these lots: CSV ticker,shares,date_acquired,cost_basis "
             "(tickers of the --prices data, or SYN000... of the synthetic universe).")] = None,
    max_gain: options.MaxGainOption = None,
    te_glide_years: options.GlideOption = 0.0,
) -> None:
    """Stress a policy through crash templates, guardrail on and off."""
    from taxharvest.sim.parallel import engine_of
    from taxharvest.workflows.stress import StressTest, parse_scenarios

    tax_profile = options.profile(profile)
    names, windows = parse_scenarios(scenarios)
    out = options.outputs({"json": json_out}, inputs=(prices, sectors, cash_flows, initial_lots))
    transition = options.transition(max_gain, te_glide_years)
    flows = read_cash_flows(contributions, withdrawals, cash_flows)
    options.only_with("prices", prices is not None, {"strict-data": strict_data, "max-gap-days": max_gap_days})
    options.check({"seed-base": seed_base >= 0, "workers": workers is None or workers >= 1},
                  "seed-base >= 0, workers >= 1")
    for spec, option in ((policy, "policy"), (baseline, "baseline")):
        if spec is not None:
            options.policy(spec, tax_profile, option)
    engine, address = engine_of(ray)
    market = None
    if prices is not None or sectors is not None:
        if not windows:
            raise InputError("--prices is for historical windows START:END in --scenarios",
                             field="prices")
        market, _ = options.market(prices, sectors, strict_data=strict_data,
                                   max_gap_days=max_gap_days)
        options.window_note(market)
    test = StressTest(policy, tax_profile, baseline=baseline, scenarios=names,
                      windows=windows, market=market, paths=paths, te_limit=te_limit,
                      cadence=cadence, n_assets=assets, years=years, seed_base=seed_base,
                      cash_flows=flows, lots=_lots(initial_lots, market, windows, assets,
                                                   years, seed_base),
                      transition=transition)
    with quiet_guardrail(), options.progress() as bar:
        result = test.run(engine=engine, address=address, workers=workers,
                          progress=options.progress_task(bar, f"stress ({engine})"))
    options.write(json_text(result.to_json()), out["json"], json_out)
    if json_out != "-":
        _print_stress(result.to_json())


def _lots(path: Path | None, market, windows, assets: int, years: float, seed_base: int
          ) -> list[dict]:
    """The legacy lots, checked against the real market at the first window's first decision,
    or against the first synthetic path at its first decision (every path has its tickers)."""
    if path is None:
        return []
    if market is not None:
        mk, first = historical_window(market, *windows[0])
    else:
        mk = synthetic_market(assets, years, seed_base)
        first = str(mk.dates[WARMUP_DAYS])
    return read_initial_lots(path, mk, first)[0]


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
            table.add_row(Text(scenario, style="bold"))
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
