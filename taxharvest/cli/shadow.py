"""``taxharvest shadow``: a candidate policy beside the one in production (a policy, or the
firm's own blotter), on the client's lots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from taxharvest.cli import options
from taxharvest.cli.options import PolicyOption, ProfileOption, console
from taxharvest.errors import InputError
from taxharvest.io import csv_text, json_text
from taxharvest.sim.measures import MEASURES, SHADOW
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.workflows.holdings import read_cash_flows, read_initial_lots
from taxharvest.workflows.markets import check_size, decision_window, window

SHOWN_DIFFERENCES = 20  # rows of the differing-trades table (all of them in --json/--csv)
SHOWN_WASH_SALES = 10  # rows of the firm's wash sales (all of them in --json)


def shadow(
    policy: PolicyOption,
    lots: Annotated[Path, typer.Option(
        help="The client's holdings: CSV ticker,shares,date_acquired,cost_basis.")],
    profile: ProfileOption,
    baseline: Annotated[str | None, typer.Option(
        help="The policy in production (same forms as --policy).")] = None,
    baseline_trades: Annotated[Path | None, typer.Option(
        help="The firm's own trades instead: CSV date,ticker,side,shares[,lot_id][,reason] "
             "(side buy or sell), replayed at each date's close (historical shadow).")] = None,
    prices: Annotated[Path | None, typer.Option(
        help="Long-format daily prices (CSV or parquet); equal-weighted benchmark.")] = None,
    sectors: Annotated[Path | None, typer.Option(help="ticker,sector file for --prices.")] = None,
    market: Annotated[str | None, typer.Option(
        help="synthetic[:seed=N] (the default without --prices).")] = None,
    date: Annotated[str | None, typer.Option(
        help="Today's decision on this date (YYYY-MM-DD), priced at its close.")] = None,
    start: Annotated[str | None, typer.Option(
        help="Historical shadow: first day, the lots' date (YYYY-MM-DD; with --baseline-trades "
             "default the day before the first trade).")] = None,
    end: Annotated[str | None, typer.Option(
        help="Historical shadow: last date (with --baseline-trades default its last trade).")
    ] = None,
    te_limit: Annotated[float, typer.Option(help="Tracking-error limit (annualized).")] = 0.01,
    cadence: Annotated[str, typer.Option(help="Decision step: daily, weekly or monthly.")
    ] = "weekly",
    max_gain: options.MaxGainOption = None,
    te_glide_years: options.GlideOption = 0.0,
    assets: Annotated[int | None, typer.Option(help="Synthetic stocks (default 500).")] = None,
    years: Annotated[float | None, typer.Option(help="Synthetic years (default 10).")] = None,
    strict_data: options.StrictDataOption = False,
    max_gap_days: options.MaxGapOption = None,
    json_out: Annotated[str | None, typer.Option(
        "--json", help="Write the comparison as JSON (- for stdout).")] = None,
    csv_out: Annotated[Path | None, typer.Option(
        "--csv", help="Write the trades (--date), the decisions (--start) or the trades that "
                      "differ (--baseline-trades) as CSV.")] = None,
    contributions: options.ContributionsOption = None,
    withdrawals: options.WithdrawalsOption = None,
    cash_flows: options.CashFlowsOption = None,
) -> None:
    """Compare a candidate policy with the one in production on the client's lots."""
    from taxharvest.workflows.blotter import DIFFERENCE_COLUMNS, BlotterShadow, read_blotter
    from taxharvest.workflows.shadow import DECISION_COLUMNS, TRADE_COLUMNS, Shadow

    tax_profile = options.profile(profile)
    if (baseline is None) == (baseline_trades is None):
        raise InputError("give either --baseline SPEC (a policy) or --baseline-trades FILE "
                         "(the firm's own trades)", field="baseline")
    if baseline_trades is not None and date is not None:
        raise InputError("--baseline-trades is a historical shadow: give --start/--end "
                         "(default: the blotter's dates), not --date", field="date")
    if baseline_trades is None and (date is None) == (start is None):
        raise InputError("give either --date D (today's decision) or --start D [--end D] "
                         "(historical shadow)", field="date")
    options.only_with("start", start is not None or baseline_trades is not None, {"end": end})
    options.only_with("start", date is None, {"contributions": contributions,
                                              "withdrawals": withdrawals,
                                              "cash-flows": cash_flows})
    options.only_with("market synthetic", prices is None, {"years": years})
    options.cadence(cadence)
    options.check({"te-limit": te_limit > 0}, "te-limit > 0")
    check_size(assets, years)
    transition = options.transition(max_gain, te_glide_years)
    out = options.outputs({"json": json_out, "csv": csv_out},
                          inputs=(lots, prices, sectors, baseline_trades, cash_flows))
    flows = read_cash_flows(contributions, withdrawals, cash_flows)
    for spec, option in ((policy, "policy"), (baseline, "baseline")):
        if spec is not None:
            options.policy(spec, tax_profile, option)
    blotter = read_blotter(baseline_trades) if baseline_trades is not None else None
    mk, seed = options.market(prices, sectors, market, assets, years, strict_data=strict_data,
                              max_gap_days=max_gap_days)
    if blotter is not None:
        blotter.check_dates(mk.dates)
        start, end = blotter.window(mk.dates, start, end)
    mk, first = decision_window(mk, date) if date is not None else window(mk, start, end)
    options.window_note(mk, first)
    holdings, value = read_initial_lots(lots, mk, first)
    runner = Shadow(policy, baseline, tax_profile, mk, holdings, initial_value=value,
                    te_limit=te_limit, cadence=cadence, seed=seed, cash_flows=flows,
                    transition=transition)
    if date is not None:
        with quiet_guardrail():
            result = runner.decision(first)
        columns, show = TRADE_COLUMNS, _print_decision
    elif blotter is not None:
        with quiet_guardrail(), options.progress() as bar:
            result = BlotterShadow(runner, blotter).run(
                first, progress=options.progress_task(bar, "shadow policy"))
        columns, show = DIFFERENCE_COLUMNS, _print_blotter
        skipped = len(blotter.trades) - result.config["replayed_trades"]
        if skipped:
            options.note(f"{skipped} of the blotter's {len(blotter.trades)} trades are dated "
                         f"on or before {first} (in the lots) or after {mk.dates[-1]}: not "
                         "replayed")
    else:
        with quiet_guardrail(), options.progress() as bar:
            bars = {role: options.progress_task(bar, f"shadow {role}")
                    for role in ("policy", "baseline")}
            result = runner.history(first, progress=lambda role, done, total:
                                    bars[role](done, total))
        columns, show = DECISION_COLUMNS, _print_history
    options.write(json_text(result.to_json()), out["json"], json_out)
    options.write(csv_text(result.csv_rows(), columns), out["csv"], None)
    if json_out != "-":
        show(result.to_json())


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
    for m in SHADOW:
        table.add_row(m.label, *[m.format(s[role][m.key]) for role in ("policy", "baseline")])
    table.add_row("divergent trades", *[f"{sum(s['divergent_trades'][role].values()):,}"
                                        for role in ("policy", "baseline")])
    console.print(table)
    if s["largest_divergence"]:
        top = Table(title="Largest divergence")
        for column in ("date", "$ traded differently", "policy harvested", "baseline harvested"):
            top.add_column(column, justify="right")
        for d in s["largest_divergence"]:
            top.add_row(d["date"], f"{d['divergence']:,.0f}", f"{d['policy_harvested_loss']:,.0f}",
                        f"{d['baseline_harvested_loss']:,.0f}")
        console.print(top)


def _print_blotter(doc: dict) -> None:
    s, c = doc["summary"], doc["config"]
    roles = ("policy", "baseline")
    table = Table(title=f"Shadow against {c['baseline']} from {c['start']}: {s['decisions']} "
                        f"decisions, agreement {s['agreement_rate']:.1%} "
                        f"({s['agreement_when_trading']:.1%} of the "
                        f"{s['decisions_with_trades']} with trades)")
    table.add_column("measure")
    for role in roles:
        table.add_column(f"{role}: {s[role]['name']}", justify="right")
    for m in SHADOW:
        table.add_row(m.label, *[m.format(s[role][m.key]) for role in roles])
    for label, key, measure in (("tax savings (settled)", "tax_savings_total", "tax_savings"),
                                ("max ex-ante TE as held", "max_te_held", "max_ex_ante_te")):
        table.add_row(label, *[MEASURES[measure].format(s[role][key]) for role in roles])
    console.print(table)
    rows = [(d, x) for d in doc["decisions"] for x in d["differences"]]
    if rows:
        shown = sorted(rows, key=lambda r: -abs(r[1]["policy_value"] - r[1]["baseline_value"])
                       )[:SHOWN_DIFFERENCES]
        diff = Table(title=f"Trades that differ ({len(rows)}"
                           + (f", the {len(shown)} largest" if len(shown) < len(rows) else "")
                           + "; by decision date, executed after it)")
        for column in ("decided", "ticker", "side", "policy $", "firm $", "policy reason",
                       "firm reason"):
            diff.add_column(column, justify="right" if column.endswith("$") else "left")
        for d, x in shown:
            diff.add_row(d["date"], x["ticker"], x["side"],
                         f"{x['policy_value']:,.0f}", f"{x['baseline_value']:,.0f}",
                         x["policy_reason"], x["baseline_reason"])
        console.print(diff)
    else:
        console.print("The firm's trades and the policy's agree at every decision.")
    washes = [w for d in doc["decisions"] for w in d["wash_sales"]]
    if not washes:
        console.print("The firm's trades created no wash sale.")
        return
    wash = Table(title=f"Wash sales the firm's trades created ({len(washes)}, "
                       f"${s['wash_sale_disallowed']:,.0f} disallowed)")
    for column in ("date", "line", "trade", "loss sale", "disallowed $", "replacement"):
        wash.add_column(column, justify="right" if column.endswith("$") else "left")
    for w in washes[:SHOWN_WASH_SALES]:
        wash.add_row(w["date"], str(w["line"]), w["trade"], _sales(w["sales"]),
                     f"{w['disallowed']:,.0f}", "; ".join(
                         f"{r['shares']:,.2f} {r['ticker']} bought {r['bought']} ({r['origin']})"
                         for r in w["replacements"]))
    console.print(wash)
    if len(washes) > SHOWN_WASH_SALES:
        console.print(f"  ... {len(washes) - SHOWN_WASH_SALES} more in the JSON")


def _sales(sales: list[dict]) -> str:
    return "; ".join(f"{x['shares']:,.2f} {x['ticker']} sold {x['date_sold']}"
                     + (f" (line {x['line']})" if x["line"] is not None else "") for x in sales)
