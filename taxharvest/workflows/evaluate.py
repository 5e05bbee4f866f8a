"""Head-to-head evaluation: policies on the same paths, per tax profile, honestly tabulated.

One :class:`EvalTask` backtests several policies on one path (a synthetic evaluation seed,
or a window of real prices) with the same environment; :func:`evaluate` fans tasks out with
:func:`~taxharvest.sim.parallel.run_tasks`, :func:`summarize` tabulates each policy over
the paths and :func:`paired` differences each policy with the profile's baseline path by
path (:mod:`taxharvest.sim.paired`: mean, 95% Student-t interval over the synthetic paths,
wins; the real-data path reported on its own, outside the interval). The sweep uses the
same task for the policies it trains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from taxharvest.agents.registry import make_policy
from taxharvest.envs.direct_index import DirectIndexEnv
from taxharvest.errors import InputError
from taxharvest.market.risk import TRADING_DAYS, WARMUP_DAYS
from taxharvest.market.scenarios import get_scenario, list_scenarios
from taxharvest.market.universe import MarketData
from taxharvest.sim.backtest import run_backtest
from taxharvest.sim.measures import EVALUATION, MEASURES
from taxharvest.sim.paired import PAIRED_MEASURES, interval, is_ppo, is_real, paired_table, wins
from taxharvest.sim.paired import signed as signed_diff
from taxharvest.sim.parallel import run_tasks
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.tax.law import TaxProfile, get_profile
from taxharvest.workflows.markets import crash_market, synthetic_market, window, years_to_end


@dataclass(frozen=True)
class EvalMarket:
    """One evaluation path: synthetic ``seed`` (``assets`` stocks over ``years``), or a
    ``market`` of real prices already cut to its window
    (:func:`~taxharvest.workflows.markets.window`: read and checked before any task runs)
    decided from ``start`` to its end, the benchmark reconstituted every ``rebalance``
    period (None: buy-and-hold). A synthetic path may carry the crash template ``scenario``,
    starting ``offset`` trading days into the episode."""

    label: str
    seed: int = 0
    assets: int = 500
    years: float = 10.0
    market: MarketData | None = None
    start: str | None = None
    rebalance: str | None = None
    scenario: str | None = None
    offset: int = 0

    def environment(self, profile: str | TaxProfile, cadence: str, te_limit: float | None,
                    initial_value: float = 1_000_000.0) -> tuple[DirectIndexEnv, dict | None]:
        """The environment of this path (an account of ``initial_value`` dollars) and the
        ``reset`` options that start it. ``te_limit`` None: the guardrail off (the
        environment's default limit then only scales its observations and reward)."""
        if self.market is None and self.scenario is not None:
            market = crash_market(self.assets, self.years, self.seed, self.scenario, self.offset)
            years, options = self.years, None
        elif self.market is None:
            market = synthetic_market(self.assets, self.years, self.seed)
            years, options = self.years, None
        else:
            market, years = self.market, years_to_end(self.market)
            options = {"start": self.start} if self.start is not None else None
        limit = {"guardrail": False} if te_limit is None else {"te_limit": te_limit}
        env = DirectIndexEnv(market=market, profile=profile, cadence=cadence,
                             random_start=False, warmup_days=WARMUP_DAYS, episode_years=years,
                             benchmark_rebalance=self.rebalance, initial_value=initial_value,
                             **limit)
        return env, options


def synthetic_paths(paths: int, assets: int, years: float, crash_share: float = 0.0
                    ) -> list[EvalMarket]:
    """Synthetic evaluation paths on seeds ``0 .. paths - 1``; a ``crash_share`` of them
    (evenly spread: every path whose share of crashes so far falls behind) carry a crash
    template, in turn the templates that fit in the episode, each starting at a day drawn
    from the path's seed among those that leave the whole template inside the episode."""
    days = int(years * TRADING_DAYS)
    templates = [name for name in list_scenarios() if get_scenario(name).n_days < days]
    markets, crashes = [], 0
    for seed in range(paths):
        if templates and crash_share > 0 and crashes < crash_share * (seed + 1) - 1e-9:
            scenario = templates[crashes % len(templates)]
            room = days - get_scenario(scenario).n_days
            offset = int(np.random.default_rng([seed, crashes]).integers(room))
            markets.append(EvalMarket(f"synthetic:{seed}+{scenario}", seed=seed, assets=assets,
                                      years=years, scenario=scenario, offset=offset))
            crashes += 1
        else:
            markets.append(EvalMarket(f"synthetic:{seed}", seed=seed, assets=assets, years=years))
    return markets


def real_paths(market: MarketData, first: str, starts: int = 1,
               rebalance: str | None = None) -> list[EvalMarket]:
    """The real prices ``market`` decided from ``first`` (label ``real``) and from each of
    the ``starts - 1`` trading days after it (``real+1d``, ...), each cut as ``backtest
    --start`` cuts it (:func:`~taxharvest.workflows.markets.window`): one history, several
    calendars. One start is one draw of where the funding day and the weekly decisions fall;
    on the shared 2010-2019 data five consecutive starts moved a policy's tax alpha by 0.05
    to 0.09 points and its decoupling by up to 10 points, more than policies differ (README,
    "Results"). Raises :class:`~taxharvest.errors.InputError` when a start leaves no day to
    trade."""
    row = market.date_index(first)
    if not 1 <= starts <= market.n_days - 2 - row:
        raise InputError(f"need 1 to {max(market.n_days - 2 - row, 1)} starts (the trading days "
                         f"from {first} that leave a day to trade), got {starts}",
                         field="starts")
    paths = []
    for k in range(starts):
        cut, start = window(market, str(market.dates[row + k]), None)
        paths.append(EvalMarket("real" if k == 0 else f"real+{k}d", market=cut, start=start,
                                rebalance=rebalance))
    return paths


@dataclass(frozen=True)
class EvalTask:
    """Backtest ``policies`` (name -> spec, e.g. ``{"ppo": "ppo:models/P"}``) on one path."""

    profile: str | TaxProfile
    policies: tuple[tuple[str, str], ...]
    market: EvalMarket
    cadence: str = "weekly"
    te_limit: float = 0.01


def run_eval_task(task: EvalTask) -> list[dict]:
    """One row per policy: the path, the policy's name and every measure (module-level, so
    that worker processes and Ray can run it)."""
    rows = []
    for name, spec in task.policies:
        env, options = task.market.environment(task.profile, task.cadence, task.te_limit)
        policy = make_policy(spec, task.profile, env)
        with quiet_guardrail():
            metrics = run_backtest(policy, env, seed=task.market.seed, options=options).metrics
        rows.append({"profile": get_profile(task.profile).name, "market": task.market.label,
                     "policy": name, "name": policy.name,
                     **{m.key: metrics[m.key] for m in EVALUATION}})
    return rows


def evaluate(tasks: Sequence[EvalTask], *, engine: str = "local", address: str | None = None,
             workers: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Every task's rows, in task order, whichever engine ran them."""
    results = run_tasks(run_eval_task, tasks, engine=engine, address=address, workers=workers,
                        progress=progress)
    return [row for rows in results for row in rows]


def summarize(rows: Sequence[dict]) -> list[dict]:
    """Per profile and policy over the synthetic paths: each measure's summary (the mean, or
    the worst path: :meth:`~taxharvest.sim.measures.Measure.summarize`), the spread of tax
    alpha, the real-data paths (tax alpha: their mean; ex-ante TE: the worst), and the
    policy's tax alpha relative to the best rule on the same paths."""
    out = []
    for profile in dict.fromkeys(r["profile"] for r in rows):
        mine = [r for r in rows if r["profile"] == profile]
        policies = list(dict.fromkeys(r["policy"] for r in mine))
        synthetic = [r for r in mine if not is_real(r["market"])]
        rule_alphas = ([r["tax_alpha"] for r in synthetic if r["policy"] == p]
                       for p in policies if not is_ppo(p) and p != "hold")
        best_rule = max((float(np.mean(a)) for a in rule_alphas if a), default=np.nan)
        for policy in policies:
            block = [r for r in synthetic if r["policy"] == policy]
            real = [r for r in mine if is_real(r["market"]) and r["policy"] == policy]
            alphas = np.array([r["tax_alpha"] for r in block], float)
            entry = {"profile": profile, "policy": policy, "name": block[0]["name"] if block
                     else real[0]["name"], "paths": len(block)}
            for m in EVALUATION:
                values = [r[m.key] for r in block]
                entry[m.key] = m.summarize(values) if values else np.nan
            entry["tax_alpha_std"] = float(alphas.std(ddof=1)) if len(alphas) > 1 else np.nan
            entry["tax_alpha_vs_best_rule"] = (entry["tax_alpha"] / best_rule - 1.0
                                               if best_rule and np.isfinite(best_rule) else np.nan)
            entry["real_tax_alpha"] = (float(np.mean([r["tax_alpha"] for r in real])) if real
                                       else np.nan)
            entry["real_max_ex_ante_te"] = max((r["max_ex_ante_te"] for r in real),
                                               default=np.nan)
            out.append(entry)
    return out


def markdown_table(summary: Sequence[dict]) -> str:
    """The summary as a Markdown table (README, closing notes)."""
    head = ("| profile | policy | tax alpha (synthetic, mean ± sd) | vs best rule | liquidated "
            "| active | max ex-ante TE (worst path) | tax alpha (real data) "
            "| max ex-ante TE (real) | withheld | budget |")
    lines = [head, "|" + "---|" * 11]
    for e in summary:
        lines.append(
            f"| {e['profile']} | {e['name']} | "
            + (f"{e['tax_alpha']:.2%} ± {_pct(e['tax_alpha_std'])} " if e["paths"] else "– ")
            + f"| {_pct(e['tax_alpha_vs_best_rule'], signed=True)} "
            f"| {_pct(e['after_tax_excess_liquidated'])} | {_pct(e['active_return'])} "
            f"| {_pct(e['max_ex_ante_te'])} | {_pct(e['real_tax_alpha'])} "
            f"| {_pct(e['real_max_ex_ante_te'])} | {_pct(e['harvest_withheld'])} "
            f"| {_pct(e['te_budget_share'])} |")
    return "\n".join(lines) + "\n"


def paired(rows: Sequence[dict], baseline: str | None = None) -> list[dict]:
    """Per profile, every policy minus the profile's baseline on the same paths
    (:func:`~taxharvest.sim.paired.paired_table`): ``baseline`` (a policy name) when given,
    else the best of ``optimizer``, ``tuned`` and ``monthly-all`` evaluated (else the best
    non-PPO policy). The interval pools the synthetic paths only; the real path, not a draw
    of the same process, is its own column."""
    return paired_table(rows, baseline)


def paired_markdown(table: Sequence[dict]) -> str:
    """The paired differences as a Markdown table (after :func:`markdown_table`)."""
    if not table:
        return ""
    labels = {key: MEASURES[key].label.partition(" (")[0] for key in PAIRED_MEASURES}
    head = ["profile", "policy", "baseline", "paths"]
    for key in PAIRED_MEASURES:
        head += [f"Δ {labels[key]} (mean)", "95% CI", "wins", f"Δ {labels[key]} (real)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in table:
        cells = [e["profile"], e["name"], e["baseline_name"],
                 str(e[PAIRED_MEASURES[0]]["n"])]
        for key in PAIRED_MEASURES:
            cell = e[key]
            cells += [signed_diff(cell["mean"]), interval(cell), wins(cell),
                      signed_diff(cell["real"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pct(value: float, signed: bool = False) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:+.0%}" if signed else f"{value:.2%}"
