"""The tug-of-war between tax alpha and tracking error: each policy across TE limits.

For every policy and TE limit (``None``: the guardrail off, as
``DirectIndexEnv(guardrail=False)``) one :func:`~taxharvest.sim.backtest.run_backtest` per
path, the paths of ``evaluate`` (:class:`~taxharvest.workflows.evaluate.EvalMarket`:
synthetic evaluation seeds, or a window of real prices). Each run measures
:data:`~taxharvest.report.frontier.FRONTIER` (Form 8949 rows: the mean over the run's
calendar years); per policy and limit the summary over paths is the mean, or the worst path
for the maxima (:meth:`~taxharvest.sim.measures.Measure.summarize`). The guardrail bounds
each decision's ex-ante TE (on the risk model); the realized TE follows it only as well as
the model forecasts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from taxharvest.agents.registry import make_policy
from taxharvest.errors import InputError
from taxharvest.report.frontier import FORM_8949_ROWS, FRONTIER, limit_label
from taxharvest.sim.backtest import run_backtest
from taxharvest.sim.measures import keys
from taxharvest.sim.parallel import run_tasks
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.tax.law import TaxProfile, get_profile
from taxharvest.workflows.evaluate import EvalMarket

MEASURED = tuple(key for key in keys(FRONTIER) if key != FORM_8949_ROWS.key)  # in metrics


def parse_policies(text: str) -> list[str]:
    """Policy specs from ``hold,monthly-all,tuned``: at least one, none twice (each checked
    by :func:`~taxharvest.agents.registry.make_policy` before the run)."""
    specs = [item.strip() for item in text.split(",") if item.strip()]
    if not specs:
        raise InputError("give at least one policy, e.g. monthly-all,tuned", field="policies")
    twice = sorted({spec for spec in specs if specs.count(spec) > 1})
    if twice:
        raise InputError(f"{', '.join(twice)} given twice", field="policies")
    return specs


def parse_te_limits(text: str) -> tuple[float | None, ...]:
    """TE limits from ``0.0025,0.01,none`` (fractions; ``none``: the guardrail off),
    ascending, ``none`` last; at least one, none twice."""
    limits = [_te_limit(item.strip()) for item in text.split(",") if item.strip()]
    if not limits:
        raise InputError("give at least one TE limit, e.g. 0.005,0.01,none", field="te-limits")
    if len(set(limits)) < len(limits):
        raise InputError(f"a TE limit is given twice in {text!r}", field="te-limits")
    return tuple(sorted(limits, key=lambda limit: math.inf if limit is None else limit))


def _te_limit(item: str) -> float | None:
    if item.lower() == "none":
        return None
    try:
        limit = float(item)
    except ValueError:
        limit = math.nan
    if not 0 < limit < 1:  # NaN fails too
        raise InputError(f"cannot read TE limit {item!r}; expected a fraction above 0 and "
                         "below 1 (0.01 is 1%) or none (the guardrail off)", field="te-limits")
    return limit


@dataclass(frozen=True)
class FrontierTask:
    """One backtest: ``policy`` for ``profile`` on one path under ``te_limit`` (None: the
    guardrail off)."""

    profile: TaxProfile
    policy: str
    market: EvalMarket
    te_limit: float | None
    cadence: str = "weekly"


def run_frontier_task(task: FrontierTask) -> dict:
    """One row: the path, the policy, the limit and every measure (module-level, for
    workers)."""
    env, options = task.market.environment(task.profile, task.cadence, task.te_limit)
    policy = make_policy(task.policy, task.profile, env)
    with quiet_guardrail():
        result = run_backtest(policy, env, seed=task.market.seed, options=options)
    return {"path": task.market.label, "policy": task.policy, "name": policy.name,
            "te_limit": task.te_limit, **{key: result.metrics[key] for key in MEASURED},
            FORM_8949_ROWS.key: float(np.mean([year["form_8949_rows"]
                                               for year in result.yearly.values()]))}


def summarize(rows: Sequence[dict]) -> list[dict]:
    """Per policy and limit (in row order): every measure's summary over paths."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["policy"], row["te_limit"]), []).append(row)
    return [{"policy": policy, "name": block[0]["name"], "te_limit": te_limit,
             "paths": len(block), **{m.key: m.summarize(r[m.key] for r in block)
                                     for m in FRONTIER}}
            for (policy, te_limit), block in groups.items()]


def frontier(
    profile: str | TaxProfile,
    policies: Sequence[str],
    te_limits: Sequence[float | None],
    markets: Sequence[EvalMarket],
    *,
    cadence: str = "weekly",
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """The frontier document (``kind: frontier``): ``config``, ``rows`` (per policy and limit)
    and ``results`` (one per policy, limit and path).

    Raises :class:`InputError` (before anything runs) for no policy, limit or path, a limit
    not above 0, or a policy spec the profile cannot run.
    """
    profile = get_profile(profile)
    checks = {"policies": (bool(policies), "need at least one policy"),
              "te-limits": (bool(te_limits) and all(x is None or x > 0 for x in te_limits),
                            "need TE limits above 0 (None: the guardrail off)"),
              "paths": (bool(markets), "need at least one path (--paths N or --prices)")}
    for name, (ok, message) in checks.items():
        if not ok:
            raise InputError(message, field=name)
    for spec in policies:
        if not spec.strip().startswith("ppo:"):  # a PPO folder is checked by its environment
            make_policy(spec, profile)
    tasks = [FrontierTask(profile, spec, market, te_limit, cadence)
             for spec in policies for te_limit in te_limits for market in markets]
    results = run_tasks(run_frontier_task, tasks, engine=engine, address=address,
                        workers=workers, progress=progress)
    synthetic = [m for m in markets if m.market is None]
    return {
        "kind": "frontier",
        "title": f"Tax alpha against tracking error: {profile.name}",
        "config": {"profile": profile.name, "policies": list(policies),
                   "te_limits": list(te_limits),
                   "te_limit_labels": [limit_label(x) for x in te_limits],
                   "paths": [m.label for m in markets],
                   "assets": synthetic[0].assets if synthetic else None,
                   "years": synthetic[0].years if synthetic else None,
                   "cadence": cadence, "engine": engine},
        "rows": summarize(results),
        "results": results,
    }
