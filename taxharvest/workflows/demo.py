"""`make demo`: the main job on the built-in synthetic market.

Five harvesters (``hold``, ``monthly-all``, ``tuned``, ``optimizer`` and the shipped PPO
policy of the profile) run with the guardrail on through one synthetic 500-stock market over
ten years;
the comparison goes to the terminal, and a run folder gets the JSON results and an HTML
report.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from taxharvest.agents.registry import make_policy
from taxharvest.envs.direct_index import DirectIndexEnv
from taxharvest.io import check_folder, json_text, write_atomic
from taxharvest.report import render_report
from taxharvest.sim.backtest import run_backtest
from taxharvest.sim.measures import DEMO
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.workflows.markets import synthetic_market

POLICIES = ("hold", "monthly-all", "tuned", "optimizer")


def run_demo(out: Path, console: Console, *, profile: str = "mfj-800k-ca", n_assets: int = 500,
             years: float = 10.0, seed: int = 0, models: Path = Path("models")) -> dict:
    """Run the comparison and write ``results.json`` and ``report.html`` into ``out``."""
    check_folder(out, "out", parents=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    market = synthetic_market(n_assets, years, seed=seed)
    specs = list(POLICIES)
    model = models / profile
    if (model / "model.zip").exists():
        specs.append(f"ppo:{model}")
    else:
        console.print(f"no trained policy in {model}/: train one with `taxharvest train "
                      f"--profile {profile}`; comparing the rules only", style="yellow",
                      markup=False)
    console.print(f"Synthetic market: {n_assets} stocks, {years:g} years, seed {seed}; "
                  f"profile {profile}; weekly decisions; guardrail on (TE limit 1%)")
    runs: dict[str, dict] = {}
    columns = (TextColumn("{task.description:<12}", markup=False), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn())
    with quiet_guardrail(), Progress(*columns, console=console) as progress:
        for spec in specs:
            env = DirectIndexEnv(market=market, profile=profile, random_start=False,
                                 episode_years=years, cadence="weekly")
            name = "ppo" if spec.startswith("ppo:") else spec
            task = progress.add_task(name, total=None)
            result = run_backtest(
                make_policy(spec, profile, env=env), env, seed=seed,
                progress=lambda done, total, task=task: progress.update(task, completed=done,
                                                                         total=total))
            runs[name] = result.to_json()
    document = {"kind": "comparison", "runs": runs,
                "title": f"taxharvest demo: {profile}, {n_assets} stocks, {years:g} years"}
    write_atomic(out / "results.json", json_text(document))
    report = render_report(document, out / "report.html")
    console.print(_table(runs))
    console.print(f"Report: {report}   results: {out / 'results.json'}   "
                  f"({time.perf_counter() - started:.0f} s)", markup=False)
    return document


def _table(runs: dict[str, dict]) -> Table:
    table = Table(title="After-tax comparison, guardrail on (synthetic market)")
    table.add_column("policy", no_wrap=True)
    for m in DEMO:
        table.add_column(m.short, justify="right", no_wrap=True)
    for name, run in runs.items():
        table.add_row(name, *[m.cell(run[m.key]) for m in DEMO])
    return table
