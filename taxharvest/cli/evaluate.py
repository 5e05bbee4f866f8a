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
        help="Comma-separated: ppo (the profile's shipped model), optimizer, tuned, "
             "monthly-all, hold, threshold:X, ppo:PATH.")] = "ppo,tuned,monthly-all",
    baseline: Annotated[str | None, typer.Option(
        help="The policy (one of --policies) every other is paired with, path by path; "
             "default: the best (mean tax alpha) of optimizer, tuned and monthly-all "
             "evaluated, else the best non-PPO policy. The 95% interval of the paired "
             "difference is over the synthetic paths; the --prices paths, not independent "
             "draws of the same process, are shown on their own (their mean).")] = None,
    paths: Annotated[int, typer.Option(help="Synthetic evaluation paths (seeds 0..N-1).")] = 4,
    crash_share: Annotated[float, typer.Option(
        help="Share of the synthetic paths that carry a crash template (the templates that "
             "fit in the episode in turn, each wholly inside it).")] = 0.0,
    assets: Annotated[int, typer.Option(help="Stocks per synthetic path.")] = 500,
    years: Annotated[float, typer.Option(help="Years per synthetic path.")] = 10.0,
    prices: Annotated[Path | None, typer.Option(
        help="Real prices for one more path (paired separately, outside the interval).")
    ] = None,
    sectors: Annotated[Path | None, typer.Option(help="ticker,sector file for --prices.")
    ] = None,
    start: Annotated[str | None, typer.Option(
        help="Real data: first day (default: after the risk model's warm-up; earlier, the "
             "book holds until the warm-up completes).")] = None,
    starts: Annotated[int | None, typer.Option(
        help="Real data: decide from each of the first N trading days from --start, one "
             "path each (one history, N calendars; default 1).")] = None,
    rebalance: Annotated[str | None, typer.Option(
        help="Real data: benchmark reconstitution (monthly, quarterly, annual).")] = None,
    strict_data: options.StrictDataOption = False,
    max_gap_days: options.MaxGapOption = None,
    models: Annotated[Path, typer.Option(help="Folder of the shipped policies.")
    ] = Path("models"),
    te_limit: Annotated[float, typer.Option(help="Tracking-error limit.")] = 0.01,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Rows, summary and paired differences as JSON (- for stdout).")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(
        help="The summary and the paired differences as Markdown tables.")] = None,
    ray: options.RayOption = None,
    workers: options.WorkersOption = None,
) -> None:
    """Compare policies per profile on the same unseen paths (synthetic, and real data).

    Beside the summary, each policy is paired with the profile's baseline path by path: the
    mean difference of tax alpha and of the after-tax excess liquidated, its 95% Student-t
    interval over the synthetic paths (n/a with one path), the paths won, and the
    difference on the real path, which the interval leaves out.
    """
    from taxharvest.io import json_text
    from taxharvest.sim.parallel import engine_of
    from taxharvest.tax.law import PROFILES
    from taxharvest.workflows.evaluate import (
        EvalTask,
        markdown_table,
        paired,
        paired_markdown,
        summarize,
        synthetic_paths,
    )
    from taxharvest.workflows.evaluate import evaluate as run_evaluation
    from taxharvest.workflows.markets import EVALUATION_SEEDS, check_size

    names = list(PROFILES) if profiles.strip() == "all" else _items(profiles, "profiles")
    clients = {name: options.profile(name) for name in names}  # presets or profile files
    specs = _items(policies, "policies")
    if baseline is not None and baseline.strip() not in specs:
        raise InputError(f"{baseline!r} is not one of --policies ({', '.join(specs)})",
                         field="baseline")
    options.check({"paths": 0 <= paths <= len(EVALUATION_SEEDS), "te-limit": te_limit > 0,
                   "crash-share": 0 <= crash_share <= 1,
                   "workers": workers is None or workers >= 1},
                  f"0 <= paths <= {len(EVALUATION_SEEDS)} (the seeds reserved for evaluation), "
                  "te-limit > 0, 0 <= crash-share <= 1, workers >= 1")
    check_size(assets, years)
    options.only_with("prices", prices is not None, {"start": start, "starts": starts,
                                                     "rebalance": rebalance,
                                                     "strict-data": strict_data,
                                                     "max-gap-days": max_gap_days})
    options.rebalance(rebalance)
    paths_out = options.outputs({"json": json_out, "markdown": markdown},
                                inputs=(prices, sectors))
    engine, address = engine_of(ray)
    tasks_specs = {name: tuple(_policy(spec, clients[name], models) for spec in specs)
                   for name in names}
    markets = synthetic_paths(paths, assets, years, crash_share)
    real = []
    if prices is not None:
        mk, _ = options.market(prices, sectors, strict_data=strict_data,
                               max_gap_days=max_gap_days)
        real = options.real_paths(mk, start, starts, rebalance)
        markets += real
    if not markets:
        raise InputError("nothing to evaluate: give --paths > 0 or --prices", field="paths")
    tasks = [EvalTask(clients[name], tasks_specs[name], market, te_limit=te_limit)
             for name in names for market in markets]
    with quiet_guardrail(), options.progress() as bar:
        task = bar.add_task(f"evaluate ({len(tasks)} paths x policies)", total=len(tasks))
        rows = run_evaluation(tasks, engine=engine, address=address, workers=workers,
                              progress=lambda done, total: bar.update(task, completed=done))
    summary = summarize(rows)
    pairs = paired(rows, baseline.strip() if baseline is not None else None)
    table = markdown_table(summary)
    config = {"profiles": names, "policies": specs, "baseline": baseline, "paths": paths,
              "crash_share": crash_share,
              "assets": assets, "years": years, "te_limit": te_limit,
              "prices": prices and str(prices),
              "start": real[0].start if real else None,
              "starts": len(real) if real else None,
              "rebalance": rebalance}
    options.write(json_text({"kind": "evaluation", "config": config, "rows": rows,
                             "summary": summary, "paired": pairs}), paths_out["json"], json_out)
    pairs_md = paired_markdown(pairs)
    options.write(table + ("\n" + pairs_md if pairs_md else ""), paths_out["markdown"], None)
    if json_out is None or str(json_out) != "-":
        sys.stdout.write(table)
        _print_paired(pairs, rows)


def _print_paired(pairs: list[dict], rows: list[dict]) -> None:
    """The paired differences per profile: the baseline named, one row per policy."""
    from rich import box
    from rich.table import Table

    from taxharvest.sim.measures import MEASURES
    from taxharvest.sim.paired import PAIRED_MEASURES, interval, is_real, signed, wins

    real = any(is_real(r["market"]) for r in rows)
    for profile in dict.fromkeys(r["profile"] for r in rows):
        mine = [e for e in pairs if e["profile"] == profile]
        if not mine:
            options.console.print(f"{profile}: one policy, nothing to pair")
            continue
        first = mine[0]
        options.console.print(f"{profile}: baseline {first['baseline_name']}, "
                              f"{first['baseline_by']}", soft_wrap=True)
        table = Table(title=f"{profile}: policy minus baseline {first['baseline_name']} "
                            "on the same paths", box=box.SIMPLE_HEAD, pad_edge=False,
                      collapse_padding=True)
        for head in ("policy", "measure", "paths", "Δ mean", "95% CI", "wins",
                     *(("Δ real",) if real else ())):
            table.add_column(head, justify="left" if head in ("policy", "measure")
                             else "right", no_wrap=True)
        for e in mine:
            for k, key in enumerate(PAIRED_MEASURES):
                cell = e[key]
                table.add_row(e["name"] if k == 0 else "", MEASURES[key].short, str(cell["n"]),
                              signed(cell["mean"]), interval(cell), wins(cell),
                              *((signed(cell["real"]),) if real else ()))
        options.console.print(table)


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
