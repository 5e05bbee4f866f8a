"""``taxharvest evaluate``: policies compared per profile on the same unseen paths."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from taxharvest.cli import options
from taxharvest.errors import InputError
from taxharvest.sim.quiet import quiet_guardrail


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
        options.profile(name)
    options.check({"paths": paths >= 0, "assets": assets >= 11, "years": years > 0,
                   "te-limit": te_limit > 0}, "paths >= 0, assets >= 11, years > 0, te-limit > 0")
    if (prices is None) != (sectors is None):
        raise InputError("--prices and --sectors go together", field="prices")
    for path, option in ((prices, "prices"), (sectors, "sectors")):
        if path is not None and not path.exists():
            raise InputError("file not found", path=path, field=option)
    json_path, md_path = options.output(json_out, "json"), options.output(markdown, "markdown")
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
    with quiet_guardrail(), options.progress() as bar:
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
