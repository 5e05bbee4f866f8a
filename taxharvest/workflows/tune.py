"""Grid search behind the ``tuned`` policy: a threshold and a cadence per tax profile.

Each (threshold, cadence) of the grid runs on TRAINING synthetic paths only (seeds 1000
and up by default; seeds 0-99 are reserved for evaluation: ``--market synthetic:seed=N``
with N < 100 is out of sample) with the guardrail on, and is scored by its mean
pre-liquidation ``tax_alpha`` among the points that respect the TE limit; ties go to the
lower mean turnover.

The TE limit is a hard constraint: ``max_ex_ante_te`` (the ex-ante TE of each decided
portfolio, over every step of every path) at most ``te_limit``. When no point meets it, the
one with the lowest ``max_ex_ante_te`` is chosen and the entry says ``feasible: false``.

The default size (100 stocks, 5 years, 5 paths, 18 grid points: about a minute a profile
on 2 cores) keeps a full re-tune of the four presets within minutes. It stands in for the
500-stock book: the rule reads only per-stock loss features, but a smaller book has more
idiosyncratic TE per harvest, so the choice is a cheap proxy, not an optimum at 500.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from taxharvest.agents.rules import TUNED_PATH, ThresholdPolicy, read_tuned
from taxharvest.envs.direct_index import DirectIndexEnv
from taxharvest.errors import InputError
from taxharvest.io import write_atomic
from taxharvest.sim.backtest import run_backtest
from taxharvest.tax.law import TaxProfile, get_profile
from taxharvest.workflows.markets import EVALUATION_SEEDS, synthetic_market

THRESHOLDS = (0.0, 0.02, 0.05, 0.10, 0.15, 0.20)
CADENCES = ("weekly", "monthly", "quarterly")
TRAINING_SEEDS = tuple(range(1000, 1005))


@lru_cache(maxsize=16)
def _market(n_assets: int, years: float, seed: int):
    return synthetic_market(n_assets, years, seed)


def _score(task: tuple) -> dict:
    """One grid point on one training path (a top-level function, for worker processes)."""
    profile, threshold, cadence, seed, n_assets, years, te_limit = task
    env = DirectIndexEnv(market=_market(n_assets, years, seed), profile=profile,
                         te_limit=te_limit, episode_years=years, random_start=False)
    m = run_backtest(ThresholdPolicy(threshold, cadence), env, seed=seed).metrics
    return {key: m[key] for key in ("tax_alpha", "after_tax_excess_liquidated", "turnover",
                                    "max_ex_ante_te")}


def tune(
    profile: str | TaxProfile,
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    cadences: Sequence[str] = CADENCES,
    seeds: Sequence[int] = TRAINING_SEEDS,
    n_assets: int = 100,
    years: float = 5.0,
    te_limit: float = 0.01,
    n_jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Choose the threshold and cadence with the best mean tax alpha on training paths.

    Returns the ``tuned.yaml`` entry: ``threshold``, ``cadence``, ``tax_alpha``,
    ``max_ex_ante_te``, ``feasible``, the setting (``seeds``, ``n_assets``, ``years``,
    ``te_limit``) and ``grid``: every point's mean ``tax_alpha``,
    ``after_tax_excess_liquidated`` and ``turnover``, and its worst ``max_ex_ante_te``.
    """
    profile = get_profile(profile)
    reserved = sorted(set(seeds) & set(EVALUATION_SEEDS))
    if reserved:
        raise ValueError(f"seeds {reserved} are reserved for evaluation (0-99)")
    points = [(t, c) for c in cadences for t in thresholds]
    tasks = [(profile, t, c, s, n_assets, years, te_limit) for t, c in points for s in seeds]
    with ProcessPoolExecutor(n_jobs) if n_jobs > 1 else nullcontext() as pool:
        runs = []
        for run in (pool.map if pool else map)(_score, tasks):
            runs.append(run)
            if progress is not None:
                progress(len(runs), len(tasks))
    grid = []
    for k, (threshold, cadence) in enumerate(points):
        block = runs[k * len(seeds):(k + 1) * len(seeds)]
        point = {key: float(np.mean([r[key] for r in block])) for key in block[0]}
        point["max_ex_ante_te"] = max(r["max_ex_ante_te"] for r in block)
        grid.append({"threshold": threshold, "cadence": cadence,
                     **{key: round(value, 6) for key, value in point.items()}})
    feasible = [g for g in grid if g["max_ex_ante_te"] <= te_limit]
    if feasible:
        best = max(feasible, key=lambda g: (g["tax_alpha"], -g["turnover"]))
    else:
        best = min(grid, key=lambda g: g["max_ex_ante_te"])
    return {
        **{key: best[key] for key in ("threshold", "cadence", "tax_alpha", "max_ex_ante_te")},
        "feasible": bool(feasible),
        "seeds": list(seeds), "n_assets": n_assets, "years": years, "te_limit": te_limit,
        "grid": grid,
    }


def check_tuned_file(path: str | Path) -> Path:
    """``path`` as a tuned file to update, checked before tuning: new, or a readable tuned
    file (a mapping whose ``profiles`` is a mapping)."""
    try:
        data = read_tuned(path)
    except UnicodeDecodeError:
        raise InputError("not a text (YAML) tuned file", path=path, field="out") from None
    if not isinstance(data.get("profiles") or {}, dict):
        raise InputError("'profiles' must be a mapping of profile names", path=path,
                         field="out")
    return Path(path)


def write_tuned(entries: dict[str, dict], command: str, path: str | Path = TUNED_PATH) -> None:
    """Merge ``entries`` (profile name -> :func:`tune` result) into the tuned file, each
    stamped with the command and date that produced it."""
    data = read_tuned(path)
    profiles = dict(data.get("profiles") or {})
    today = dt.date.today().isoformat()
    for name, entry in entries.items():
        profiles[name] = {**entry, "command": command, "date": today}
    header = ("# Written by `taxharvest tune` (taxharvest/workflows/tune.py): real output, "
              "not to be edited by hand.\n# Scored on training seeds only; seeds 0-99 are "
              "reserved for evaluation.\n")
    write_atomic(path, header + yaml.safe_dump({"profiles": profiles}, sort_keys=False, width=200))

