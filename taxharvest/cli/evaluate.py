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
             "threshold:X, ppo:PATH.")] = "ppo,tuned,monthly-all",
    paths: Annotated[int, typer.Option(help="Synthetic evaluation paths (seeds 0..N-1).")] = 4,
    assets: Annotated[int, typer.Option(help="Stocks per synthetic path.")] = 500,
    years: Annotated[float, typer.Option(help="Years per synthetic path.")] = 10.0,
    prices: Annotated[Path | None, typer.Option(help="Real prices for one more path.")] = None,
    sectors: Annotated[Path | None, typer.Option(help="ticker,sector file for --prices.")
    ] = None,
    start: Annotated[str | None, typer.Option(
        help="Real data: first day (default: after the risk model's warm-up; earlier, the "
             "book holds until the warm-up completes).")] = None,
    rebalance: Annotated[str | None, typer.Option(
        help="Real data: benchmark reconstitution (monthly, quarterly, annual).")] = None,
    strict_data: options.StrictDataOption = False,
    models: Annotated[Path, typer.Option(help="Folder of the shipped policies.")
    ] = Path("models"),
    te_limit: Annotated[float, typer.Option(help="Tracking-error limit.")] = 0.01,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Rows and summary as JSON (- for stdout).")] = None,
    markdown: Annotated[Path | None, typer.Option(help="The summary as a Markdown table.")
    ] = None,
    ray: options.RayOption = None,
    workers: options.WorkersOption = None,
) -> None:
    """Compare policies per profile on the same unseen paths (synthetic, and real data)."""
    from taxharvest.io import json_text
    from taxharvest.sim.parallel import engine_of
    from taxharvest.tax.law import PROFILES
    from taxharvest.workflows.evaluate import (
        EvalMarket,
        EvalTask,
        markdown_table,
        summarize,
    )
    from taxharvest.workflows.evaluate import evaluate as run_evaluation
    from taxharvest.workflows.markets import EVALUATION_SEEDS, check_size, window

    names = list(PROFILES) if profiles.strip() == "all" else _items(profiles, "profiles")
    clients = {name: options.profile(name) for name in names}  # presets or profile files
    specs = _items(policies, "policies")
    options.check({"paths": 0 <= paths <= len(EVALUATION_SEEDS), "te-limit": te_limit > 0,
                   "workers": workers is None or workers >= 1},
                  f"0 <= paths <= {len(EVALUATION_SEEDS)} (the seeds reserved for evaluation), "
                  "te-limit > 0, workers >= 1")
    check_size(assets, years)
    options.only_with("prices", prices is not None, {"start": start, "rebalance": rebalance})
    options.rebalance(rebalance)
    paths_out = options.outputs({"json": json_out, "markdown": markdown},
                                inputs=(prices, sectors))
    engine, address = engine_of(ray)
    tasks_specs = {name: tuple(_policy(spec, clients[name], models) for spec in specs)
                   for name in names}
    markets = [EvalMarket(f"synthetic:{seed}", seed=seed, assets=assets, years=years)
               for seed in range(paths)]
    if prices is not None:
        mk, _ = options.market(prices, sectors, strict_data=strict_data)
        mk, first = window(mk, start, None)
        options.window_note(mk, first)
        markets.append(EvalMarket("real", market=mk, start=first, rebalance=rebalance))
    if not markets:
        raise InputError("nothing to evaluate: give --paths > 0 or --prices", field="paths")
    tasks = [EvalTask(clients[name], tasks_specs[name], market, te_limit=te_limit)
             for name in names for market in markets]
    with quiet_guardrail(), options.progress() as bar:
        task = bar.add_task(f"evaluate ({len(tasks)} paths x policies)", total=len(tasks))
        rows = run_evaluation(tasks, engine=engine, address=address, workers=workers,
                              progress=lambda done, total: bar.update(task, completed=done))
    summary = summarize(rows)
    table = markdown_table(summary)
    config = {"profiles": names, "policies": specs, "paths": paths, "assets": assets,
              "years": years, "te_limit": te_limit, "prices": prices and str(prices),
              "start": markets[-1].start if prices is not None else None,
              "rebalance": rebalance}
    options.write(json_text({"kind": "evaluation", "config": config, "rows": rows,
                             "summary": summary}), paths_out["json"], json_out)
    options.write(table, paths_out["markdown"], None)
    if json_out is None or str(json_out) != "-":
        sys.stdout.write(table)


def _items(text: str, option: str) -> list[str]:
    """The comma-separated items of ``--option``: at least one, none twice."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InputError("give at least one, comma-separated", field=option)
    twice = sorted({item for item in items if items.count(item) > 1})
    if twice:
        raise InputError(f"{', '.join(twice)} given twice", field=option)
    return items


def _policy(spec: str, profile, models: Path) -> tuple[str, str]:
    """``(name, spec)`` of one ``--policies`` item, checked now (``ppo``: the model named after
    the profile in ``--models``)."""
    if spec == "ppo":
        folder = models / profile.name
        if not (folder / "model.zip").exists():
            raise InputError(f"no trained policy in {folder}", field="models")
        options.policy(f"ppo:{folder}", profile, "models")
        return "ppo", f"ppo:{folder}"
    options.policy(spec, profile, "policies")
    return spec, spec
