"""Backtest: one policy through one episode of the environment, measured and explained."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from taxharvest.agents.base import Policy
from taxharvest.envs.direct_index import ASSET_FEATURES
from taxharvest.market.loader import corporate_action_records
from taxharvest.market.universe import MarketData
from taxharvest.sim import account
from taxharvest.sim.measures import BACKTEST_JSON, keys
from taxharvest.sim.metrics import (
    Daily,
    Trajectory,
    compute_metrics,
    rolling_te,
    yearly_measures,
)
from taxharvest.tax.law import tax_for_year
from taxharvest.tax.reporting import form_8949

JSON_KEYS = keys(BACKTEST_JSON)  # the headline measures of the run's JSON, in order
_INFO_SERIES = {  # Trajectory field <- info key
    "portfolio": "portfolio_value", "benchmark": "benchmark_value", "savings": "savings_account",
    "ex_ante_te": "ex_ante_te", "tax_savings": "tax_savings", "harvested_losses": "harvested_loss",
    "n_trades": "n_trades", "wash_sale_disallowed": "wash_sale_disallowed",
    "guardrail_status": "guardrail_status", "cash_flow": "cash_flow",
}
_BENCH = ASSET_FEATURES.index("benchmark_weight")
RELAXED = ("relaxed", "fallback")  # the decisions a run lists with their causes


@dataclass(frozen=True)
class BacktestResult:
    """What :func:`run_backtest` measured.

    Attributes:
        metrics: every scalar of :func:`~taxharvest.sim.metrics.compute_metrics`, plus
            ``runtime_s``.
        yearly: per year: ``tax_savings`` (of that tax year), ``harvested_losses``, ``sold``,
            ``te`` (realized), ``form_8949_rows`` (the reporting burden).
        series: per step, for plots: ``dates``, ``portfolio``, ``benchmark``, ``savings``,
            ``ex_ante_te``, ``rolling_te`` (None until its window fills), ``guardrail_status``.
        config: ``policy``, ``profile``, ``market``, ``te_limit``, ``cadence``, ``guardrail``,
            ``seed``, ``corporate_actions`` (what the loader inferred in the run's market:
            :func:`~taxharvest.market.loader.corporate_action_records`; empty for synthetic
            markets).
        decisions: one ``{"date", "ticker", "reason"}`` per harvest the policy asked for.
        form_8949: the Form 8949 rows of every sale in the run.
        trajectory: the series the measures were computed from.
        reward: the sum of the environment's rewards over the episode.
        relaxations: one ``{"date", "status", "reason"}`` per decision relaxed or fallen
            back, with its cause.
    """

    metrics: dict
    yearly: dict
    series: dict
    config: dict
    decisions: list[dict]
    form_8949: list[dict]
    trajectory: Trajectory
    reward: float = 0.0
    relaxations: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        """The run's JSON document: the headline measures, ``yearly``, ``series``,
        ``relaxations``, ``config``."""
        return {**{key: self.metrics[key] for key in JSON_KEYS}, "yearly": self.yearly,
                "series": self.series, "relaxations": self.relaxations, "config": self.config}


def run_backtest(
    policy: Policy,
    env: gym.Env,
    *,
    seed: int = 0,
    options: dict | None = None,
    fee: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Step ``env`` from reset to termination with ``policy`` and measure the run.

    Args:
        policy: any :class:`~taxharvest.agents.base.Policy`.
        env: a ``taxharvest/DirectIndex-v0`` environment (wrapped or not).
        seed, options: passed to ``env.reset``.
        fee: annual management fee for ``tax_alpha_net_of_fee``.
        progress: called as ``progress(steps_done, steps_total)`` after each step.
    """
    started = time.perf_counter()
    raw = env.unwrapped
    observation, info = env.reset(seed=seed, options=options)
    policy.reset()
    total = raw.n_decisions
    tickers = raw.market.tickers
    infos, decisions = [info], []
    bench_weights, intent = [], _Intent()
    done, reward = False, 0.0
    while not done:
        bench_weights.append(observation["assets"][:, _BENCH] / raw.n_assets)
        decision = policy.act(observation, info)
        intent.add(*raw.intent(decision.step_action), info["action_mask"])
        decisions += [{"date": info["date"], "ticker": tickers[i], "reason": reason}
                      for i, reason in sorted(decision.reasons.items())]
        observation, step_reward, terminated, truncated, info = env.step(decision.step_action)
        reward += step_reward
        infos.append(info)
        done = terminated or truncated
        if progress is not None:
            progress(len(infos) - 1, total)

    config = {
        "policy": policy.name, "profile": raw.profile.name, "market": raw.market.source,
        "te_limit": raw.te_limit, "cadence": raw.cadence,
        "guardrail": raw.guardrail is not None, "decision": raw.decision, "seed": seed,
        "corporate_actions": corporate_action_records(raw.market),
    }
    relaxations = [{"date": str(i["date"]), "status": i["guardrail_status"],
                    "reason": i["guardrail_reason"]}
                   for i in infos[1:] if i["guardrail_status"] in RELAXED]
    return measured_run(_trajectory(raw, infos, np.array(bench_weights)), raw.ledger,
                        account.settled_savings(raw), profile=raw.profile, config=config,
                        fee=fee, decisions=decisions, reward=float(reward),
                        runtime_s=time.perf_counter() - started, intent=intent.measures(),
                        relaxations=relaxations)


def measured_run(trajectory: Trajectory, ledger, savings: dict[str, float], *, profile,
                 config: dict, fee: float = 0.0, decisions: list[dict] | None = None,
                 reward: float = 0.0, runtime_s: float = 0.0,
                 intent: dict[str, float] | None = None,
                 relaxations: list[dict] | None = None) -> BacktestResult:
    """The measures, yearly table, series and Form 8949 rows of one run: its ``trajectory``,
    its account's ``ledger`` and the tax saving settled each year (``savings``, by year);
    ``config`` holds at least ``te_limit`` (a replayed book, e.g. a firm's, is measured
    by the same rules as a backtest); ``intent``: the policy's (:class:`_Intent`), None
    for a book no policy of ours decided."""
    # the last year is settled: the liquidation is the next year's realization
    year = int(trajectory.dates[-1].astype("datetime64[Y]").astype(int)) + 1970 + 1

    def year_tax(short: float, long: float, carry: tuple[float, float]) -> float:
        return tax_for_year(profile, year, short, long, *carry).total

    metrics = compute_metrics(trajectory, year_tax=year_tax, te_limit=config["te_limit"], fee=fee)
    rows = form_8949(ledger)
    steps = yearly_measures(trajectory)
    empty = {"harvested_losses": 0.0, "sold": 0.0, "te": 0.0}
    yearly = {year: {**steps.get(year, empty), "tax_savings": savings.get(year, 0.0),
                     "form_8949_rows": sum(row["date_sold"][:4] == year for row in rows)}
              for year in sorted(steps.keys() | savings.keys())}
    metrics.update(intent or dict.fromkeys(_Intent.KEYS), runtime_s=runtime_s)
    return BacktestResult(
        metrics=metrics,
        yearly=yearly,
        series={
            "dates": [str(d) for d in trajectory.dates],
            **{key: getattr(trajectory, key).tolist()
               for key in ("portfolio", "benchmark", "savings", "ex_ante_te")},
            "rolling_te": [None if np.isnan(x) else float(x) for x in rolling_te(trajectory)],
            "guardrail_status": list(trajectory.guardrail_status),
        },
        config=config,
        decisions=decisions or [],
        form_8949=rows,
        trajectory=trajectory,
        reward=reward,
        relaxations=relaxations or [],
    )


class _Intent:
    """What a policy asked of the decision program, against the ``optimizer``'s ask (every
    harvestable stock at preference 1, the whole TE budget): ``harvest_withheld``, the mean
    of ``1 - preference`` over the decisions' harvestable stocks, and ``te_budget_share``,
    the mean budget share asked per decision."""

    KEYS = ("harvest_withheld", "te_budget_share")

    def __init__(self) -> None:
        self.offered, self.withheld, self.budgets = 0, 0.0, []

    def add(self, preference: np.ndarray, te_budget: float, mask: np.ndarray) -> None:
        """One decision as the environment reads it (``DirectIndexEnv.intent``)."""
        offered = preference[mask]
        self.offered += offered.size
        self.withheld += float((1.0 - offered).sum())
        self.budgets.append(te_budget)

    def measures(self) -> dict[str, float]:
        return {"harvest_withheld": self.withheld / self.offered if self.offered else 0.0,
                "te_budget_share": float(np.mean(self.budgets)) if self.budgets else 1.0}


def _trajectory(raw, infos: list[dict], bench_weights: np.ndarray) -> Trajectory:
    """The measured series from the step infos, and the account's end state."""
    series = {field: np.array([i[key] for i in infos]) for field, key in _INFO_SERIES.items()}
    dates = np.array([i["date"] for i in infos], "datetime64[D]")
    basis = _benchmark_basis(raw.market, dates, series["benchmark"], bench_weights,
                             series["cash_flow"], raw.start_basis)
    sales = raw.ledger.sales()
    # a sale on day d belongs to the first step ending on or after d
    step = np.searchsorted(dates[1:].astype(np.int64), sales["sold"]) + 1
    sold = np.bincount(step, weights=sales["proceeds"], minlength=len(dates))[:len(dates)]
    return Trajectory(
        dates=dates,
        sold=sold,
        step_days=raw.step_days,
        daily=Daily(**raw.daily()),
        **account.end_state(raw, int(dates[-1].astype(np.int64))),
        benchmark_basis=basis,
        **series,
    )


def _benchmark_basis(market: MarketData, dates: np.ndarray, value: np.ndarray,
                     weights: np.ndarray, flows: np.ndarray, start: float) -> float:
    """The benchmark's cost basis at the horizon: ``start`` (the account's at the start: its
    funding, or a legacy book's basis, so that both sides carry the same embedded gain),
    plus the distributions it reinvested (each step's yields on the value and weights it
    had at the step's decision) and the deposits; a withdrawal sells a slice of it, basis
    pro rata."""
    with np.errstate(invalid="ignore", divide="ignore"):
        yields = np.nan_to_num((market.dividends[1:] + market.distributions[1:])
                               * market.splits[1:] / market.prices[:-1])
    cumulative = np.vstack([np.zeros(market.n_assets), np.cumsum(yields, axis=0)])
    rows = np.searchsorted(market.dates, dates)
    reinvested = value[:-1] * (weights * (cumulative[rows[1:]] - cumulative[rows[:-1]])).sum(1)
    basis = start
    for step, (added, flow) in enumerate(zip(reinvested, flows[1:], strict=True), start=1):
        basis += added
        basis = basis + flow if flow >= 0 else basis * (1.0 + flow / (value[step] - flow))
    return basis
