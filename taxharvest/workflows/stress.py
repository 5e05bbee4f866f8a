"""Crash stress tests: each crash template on Monte Carlo paths, guardrail on and off.

Path ``i`` of a template is the synthetic market of seed ``seed_base + i`` with the template
(:func:`~taxharvest.market.scenarios.inject_scenario`, its own noise seeded by the same
seed) starting ``offset`` trading days after the risk model's warm-up: the book is bought
at the peak, so every lot is under water in the crash, the hardest case for a harvester.
The episode lasts ``years`` or, when longer, the template plus ``RECOVERY_DAYS``. A
historical window (``START:END`` on real data) runs once, on the data, from ``START``.

Each (scenario, path, policy, guardrail on/off) is one :func:`run_backtest`; its row keeps
the backtest's measures under the backtest JSON's names (:data:`MEASURES`) and adds:

- ``max_rolling_te_in_window``: the largest 63-day rolling realized TE whose window
  overlaps the crash (DOMAIN §4: the maximum rolling TE inside crash windows);
- ``proxied_at_peak``: stocks below half their benchmark weight while their sector proxy is
  held, in the book after the decision of the largest ex-ante TE (``peak_date``): the names
  held only through proxies at the worst point;
- ``relaxations``: each decision where the guardrail relaxed the limit or fell back, with
  its date, status and cause (``info["guardrail_reason"]``);
- ``te_path``: dates, ex-ante TE and rolling realized TE of every decision, for plots.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from taxharvest.agents.registry import make_policy
from taxharvest.envs.cashflows import CashFlow
from taxharvest.envs.direct_index import CADENCE_DAYS, DirectIndexEnv
from taxharvest.errors import InputError
from taxharvest.market.risk import TRADING_DAYS, WARMUP_DAYS
from taxharvest.market.scenarios import get_scenario, list_scenarios
from taxharvest.market.universe import MarketData
from taxharvest.sim import account
from taxharvest.sim.backtest import run_backtest
from taxharvest.sim.measures import MEASURES as REGISTRY
from taxharvest.sim.measures import STRESS, keys
from taxharvest.sim.metrics import rolling_windows
from taxharvest.sim.parallel import run_tasks
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.sim.steplog import StepLog
from taxharvest.tax.law import TaxProfile, get_profile
from taxharvest.workflows.markets import (
    check_size,
    crash_market,
    historical_window,
    years_to_end,
)

OFFSET_DAYS = 63  # trading days from the first decision to the crash: a full rolling window
RECOVERY_DAYS = 21  # trading days kept after a template that outlasts ``years``
MEASURES = keys(STRESS)  # a row's measures, under the backtest JSON's names


def parse_scenarios(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Template names and ``(start, end)`` windows from ``gfc-2008,2018-09-20:2018-12-24`` (or
    ``all``: every template). Raises :class:`InputError` naming the bad item."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InputError("no scenario given", field="scenarios")
    names, windows = [], []
    known = list_scenarios()
    for item in items:
        if item == "all":
            names += [n for n in known if n not in names]
        elif item in known:
            names += [item] if item not in names else []
        elif ":" in item:
            start, _, end = item.partition(":")
            try:
                lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
            except ValueError:
                raise InputError(f"cannot parse window {item!r} (expected "
                                 "YYYY-MM-DD:YYYY-MM-DD)", field="scenarios") from None
            if hi <= lo:
                raise InputError(f"window {item!r} ends before it starts", field="scenarios")
            windows.append((str(lo), str(hi)))
        else:
            raise InputError(f"unknown scenario {item!r}; templates are {', '.join(known)}, "
                             "or a window START:END on --prices data", field="scenarios")
    return names, windows


@dataclass(frozen=True)
class StressTask:
    """One run of a stress test (picklable, self-contained: its seeds and market)."""

    scenario: str
    path: int
    seed: int
    policy: str
    role: str  # "policy" or "baseline"
    profile: TaxProfile
    guardrail: bool
    te_limit: float
    cadence: str
    n_assets: int
    years: float
    offset: int
    market: MarketData | None = None  # a historical window (with its warm-up); None: synthetic
    start: str | None = None  # first decision of a historical window
    cash_flows: tuple[CashFlow, ...] = ()  # the account's deposits and withdrawals
    lots: tuple[dict, ...] = ()  # a legacy book taken in kind (empty: funded at the benchmark)
    max_gain: float | None = None  # the transition's yearly net gain budget
    te_glide_years: float = 0.0  # the transition's TE glide path


def episode_years(scenario: str, years: float, offset: int) -> float:
    """The episode of a template: ``years``, or the template and its recovery if longer."""
    return max(years, (offset + get_scenario(scenario).n_days + RECOVERY_DAYS) / TRADING_DAYS)


def run_stress_task(task: StressTask) -> dict:
    """One stress row (a module-level function for worker processes and Ray)."""
    if task.market is None:
        years = episode_years(task.scenario, task.years, task.offset)
        market = crash_market(task.n_assets, years, task.seed, task.scenario, task.offset)
        crash = WARMUP_DAYS + task.offset
        window = (str(market.dates[crash]),
                  str(market.dates[crash + get_scenario(task.scenario).n_days - 1]))
        options = None
    else:
        market, years = task.market, years_to_end(task.market)
        window = tuple(task.scenario.split(":"))
        options = {"start": task.start}
    env = DirectIndexEnv(market=market, profile=task.profile, cadence=task.cadence,
                         te_limit=task.te_limit, guardrail=task.guardrail, random_start=False,
                         episode_years=years, warmup_days=WARMUP_DAYS,
                         cash_flows=task.cash_flows, initial_lots=list(task.lots) or None,
                         max_gain=task.max_gain, te_glide_years=task.te_glide_years)
    policy = make_policy(task.policy, task.profile, env)
    log = StepLog(env, probe=account.proxied)
    with quiet_guardrail():
        result = run_backtest(policy, log, seed=task.seed, options=options)
    series = result.series
    rolling, first, last = rolling_windows(result.trajectory)
    inside = (last >= np.datetime64(window[0])) & (first <= np.datetime64(window[1]))
    peak = int(np.argmax(series["ex_ante_te"]))
    return {
        "scenario": task.scenario, "path": task.path, "seed": task.seed,
        "policy": policy.name, "role": task.role, "guardrail": task.guardrail,
        **{key: result.metrics[key] for key in MEASURES},
        "max_rolling_te_in_window": float(rolling[inside].max()) if inside.any() else None,
        "proxied_at_peak": log.probes[peak],
        "peak_date": series["dates"][peak],
        "window": list(window),
        "market": result.config["market"],
        "relaxations": result.relaxations,
        "te_path": {"dates": series["dates"],
                    "ex_ante_te": [round(x, 7) for x in series["ex_ante_te"]],
                    "rolling_te": [None if v is None else round(v, 7)
                                   for v in series["rolling_te"]]},
    }


@dataclass(frozen=True)
class StressResult:
    """A stress test's rows (task order), its configuration, headline and summary."""

    rows: list[dict]
    config: dict
    headline: dict

    @property
    def summary(self) -> list[dict]:
        return summarize(self.rows)

    def to_json(self) -> dict:
        return {"kind": "stress", "config": self.config, "headline": self.headline,
                "summary": self.summary, "results": self.rows}


def summarize(rows: list[dict]) -> list[dict]:
    """Per scenario, policy and guardrail mode, over its paths: each measure's summary over
    paths (:meth:`~taxharvest.sim.measures.Measure.summarize`: the largest TEs, mean
    harvested losses and tax alpha), the largest rolling TE in the crash window, decoupling
    (``decoupling_mean``, ``decoupling_max``), the most names proxied at a peak, and the
    total guardrail interventions and relaxations."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["policy"], r["guardrail"]), []).append(r)
    out = []
    for (scenario, policy, guardrail), block in groups.items():
        values = {key: [r[key] for r in block if r[key] is not None]
                  for key in ("max_ex_ante_te", "max_rolling_te", "max_rolling_te_in_window",
                              "proxied_at_peak", "decoupling", "harvested_losses", "tax_alpha",
                              "guardrail_interventions")}
        summary = {key: REGISTRY[key].summarize(values[key])
                   for key in ("max_ex_ante_te", "max_rolling_te", "harvested_losses",
                               "tax_alpha")}
        out.append({
            "scenario": scenario, "policy": policy, "guardrail": guardrail, "paths": len(block),
            "max_ex_ante_te": summary["max_ex_ante_te"],
            "max_rolling_te": summary["max_rolling_te"],
            **{key: max(values[key], default=None)
               for key in ("max_rolling_te_in_window", "proxied_at_peak")},
            "decoupling_mean": float(np.mean(values["decoupling"])),
            "decoupling_max": max(values["decoupling"]),
            "harvested_losses": summary["harvested_losses"],
            "tax_alpha": summary["tax_alpha"],
            "guardrail_interventions": sum(values["guardrail_interventions"]),
            "guardrail_relaxed": sum(len(r["relaxations"]) for r in block),
        })
    return out


class StressTest:
    """Crash templates and historical windows, ``paths`` Monte Carlo paths each, guardrail on
    and off, for ``policy`` and an optional ``baseline``.

    Args:
        policy, baseline: policy specs (:func:`~taxharvest.agents.registry.make_policy`).
        profile: tax profile (a preset name, a profile file or the profile).
        scenarios: template names (:func:`list_scenarios`).
        windows: ``(start, end)`` historical windows of ``market``.
        market: real data for ``windows`` (its days before ``start`` warm the risk model up).
        paths: synthetic paths per template; path ``i`` has seed ``seed_base + i``.
        te_limit, cadence: the environment's.
        n_assets, years: synthetic universe and (minimum) episode length.
        offset: trading days between the first decision and the crash.
        cash_flows: the account's deposits and withdrawals in every run
            (:class:`~taxharvest.envs.cashflows.CashFlow`; the benchmark sees the same).
        lots: a legacy book every run takes in kind (validated against the markets, e.g. by
            :func:`~taxharvest.workflows.holdings.read_initial_lots`); empty: funded at the
            benchmark.
        transition: its ``max_gain`` and ``te_glide_years``.
    """

    def __init__(self, policy: str, profile: str | TaxProfile, *, baseline: str | None = None,
                 scenarios: Sequence[str] = (), windows: Sequence[tuple[str, str]] = (),
                 market: MarketData | None = None, paths: int = 4, te_limit: float = 0.01,
                 cadence: str = "weekly", n_assets: int = 200, years: float = 3.0,
                 seed_base: int = 0, offset: int = OFFSET_DAYS,
                 cash_flows: Sequence[CashFlow] = (), lots: Sequence[dict] = (),
                 transition: dict | None = None) -> None:
        try:
            self.profile = get_profile(profile)
        except InputError:
            raise
        except ValueError as err:
            raise InputError(str(err), field="profile") from None
        unknown = [s for s in scenarios if s not in list_scenarios()]
        checks = {
            "scenarios": (bool(scenarios or windows) and not unknown,
                          f"unknown or no scenarios {unknown}; templates are "
                          f"{', '.join(list_scenarios())}"),
            "prices": (market is not None or not windows,
                       "historical windows need real data (--prices and --sectors)"),
            "paths": (paths >= 1, "need at least one path"),
            "te-limit": (te_limit > 0, "must be positive"),
            "cadence": (cadence in CADENCE_DAYS, f"must be one of {', '.join(CADENCE_DAYS)}"),
            "offset": (offset >= 0, "must be at least 0"),
        }
        for name, (ok, message) in checks.items():
            if not ok:
                raise InputError(message, field=name)
        check_size(n_assets, years)
        self.policies = [(policy, "policy")] + ([(baseline, "baseline")] if baseline else [])
        for spec, _ in self.policies:
            if not spec.startswith("ppo:"):  # a PPO folder is checked against its environment
                make_policy(spec, self.profile)
        self.scenarios, self.market, self.paths = list(scenarios), market, paths
        self.windows = [self._window(lo, hi) for lo, hi in windows]
        self.te_limit, self.cadence, self.n_assets, self.years = te_limit, cadence, n_assets, years
        self.seed_base, self.offset = seed_base, offset
        self.cash_flows = tuple(cash_flows)
        self.lots, self.transition = tuple(lots), dict(transition or {})

    def _window(self, start: str, end: str) -> tuple[str, MarketData, str]:
        """``(name, market cut to the warm-up before start .. end, first decision)``."""
        try:
            cut, first = historical_window(self.market, start, end)
        except ValueError as err:
            raise InputError(f"window {start}:{end}: {err}", field="scenarios") from None
        return f"{start}:{end}", cut, first

    def tasks(self) -> list[StressTask]:
        """Every run, in the order of the rows: scenario, path, policy, guardrail on/off."""
        common = {"profile": self.profile, "te_limit": self.te_limit, "cadence": self.cadence,
                  "n_assets": self.n_assets, "years": self.years, "offset": self.offset,
                  "cash_flows": self.cash_flows, "lots": self.lots, **self.transition}
        runs = [(name, i, self.seed_base + i, None, None)
                for name in self.scenarios for i in range(self.paths)]
        runs += [(name, 0, 0, market, start) for name, market, start in self.windows]
        return [StressTask(scenario=name, path=i, seed=seed, policy=spec, role=role,
                           guardrail=guardrail, market=market, start=start, **common)
                for name, i, seed, market, start in runs
                for spec, role in self.policies for guardrail in (True, False)]

    def run(self, *, engine: str = "local", address: str | None = None,
            workers: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> StressResult:
        """Run every task through :func:`run_tasks` and summarize."""
        rows = run_tasks(run_stress_task, self.tasks(), engine=engine, address=address,
                         workers=workers, progress=progress)
        config = {"policies": [spec for spec, _ in self.policies],
                  "profile": self.profile.name, "scenarios": self.scenarios,
                  "windows": [w[0] for w in self.windows],
                  "paths": self.paths, "seed_base": self.seed_base, "te_limit": self.te_limit,
                  "cadence": self.cadence, "n_assets": self.n_assets, "years": self.years,
                  "offset": self.offset, "warmup_days": WARMUP_DAYS, "engine": engine,
                  "cash_flows": [asdict(flow) for flow in self.cash_flows],
                  "lots": len(self.lots), **self.transition}
        return StressResult(rows, config, headline(rows, self.te_limit))


def headline(rows: list[dict], te_limit: float) -> dict:
    """Guardrail on: the largest ex-ante TE of any row against the limit, every relaxation
    with its cause, and any row above the limit without one. Per policy: decoupling (largest
    and mean over rows) and largest ex-ante TE, guardrail on and off."""
    on = [r for r in rows if r["guardrail"]]
    worst = max(on, key=lambda r: r["max_ex_ante_te"]) if on else None
    where = ("scenario", "path", "policy")
    relaxations = [{**{k: r[k] for k in where}, **x} for r in on for x in r["relaxations"]]
    above = [r for r in on if r["max_ex_ante_te"] > te_limit * (1 + 1e-9)]
    policies: dict[str, dict] = {}
    for r in rows:
        mode = policies.setdefault(r["policy"], {}).setdefault("on" if r["guardrail"] else "off",
                                                              [])
        mode.append(r)
    return {
        "te_limit": te_limit,
        "guardrail_on": None if worst is None else {
            "max_ex_ante_te": worst["max_ex_ante_te"],
            "within_limit": not above,
            "worst": {**{k: worst[k] for k in where}, "date": worst["peak_date"]},
            "relaxations": relaxations,
            "above_limit_unexplained": [{k: r[k] for k in where} for r in above
                                        if not r["relaxations"]],
        },
        "policies": {
            name: {mode: {"max_decoupling": max(r["decoupling"] for r in block),
                          "mean_decoupling": float(np.mean([r["decoupling"] for r in block])),
                          "max_ex_ante_te": max(r["max_ex_ante_te"] for r in block),
                          "max_proxied_at_peak": max(r["proxied_at_peak"] for r in block)}
                   for mode, block in modes.items()}
            for name, modes in policies.items()
        },
    }
