"""Shadow runs: a candidate policy beside the one in production, on the client's own lots.

Both modes build the environment from the client's holdings (``initial_lots``), so the
lots, their wash-sale windows and the guardrail are the real ones:

- :meth:`Shadow.decision`: what each policy would trade on date ``D``. Only data up to ``D``
  are used: the market is cut at ``D`` and one flat trading day is appended, so the orders
  (which the environment executes on the next trading day) are priced at ``D``'s close.
  Each trade carries the environment's reason (with any guardrail adjustment), the policy's
  own reason, the lots sold with their gains, and the wash-sale window of its security on
  ``D``. A proposal's tax saving values its realized short- and long-term gains at the
  profile's marginal rates of ``D``'s year (:func:`marginal_value`).
- :meth:`Shadow.history`: both policies through the same market from ``start`` (same data,
  same seed), decision by decision: which names each harvested, the dollars traded
  differently, and the measures of each run (:mod:`taxharvest.sim.metrics`). Both accounts
  (and their benchmark) receive the same ``cash_flows``.

Against the trades a firm's own engine made (its blotter) rather than one of the project's
policies: :mod:`taxharvest.workflows.blotter`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import ClassVar

import numpy as np

from taxharvest.agents.registry import make_policy
from taxharvest.envs.cashflows import CashFlow
from taxharvest.envs.direct_index import DirectIndexEnv
from taxharvest.market.risk import WARMUP_DAYS
from taxharvest.market.universe import MarketData
from taxharvest.sim import account
from taxharvest.sim.backtest import run_backtest
from taxharvest.sim.measures import SHADOW
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.sim.steplog import StepLog
from taxharvest.tax.calendar import to_day, year_of
from taxharvest.tax.law import get_profile, marginal_gain_rates, marginal_rates
from taxharvest.tax.reporting import schedule_d
from taxharvest.workflows.markets import years_to_end

ROLES = ("policy", "baseline")
TOP_DATES = 5  # dates of largest divergence in the summary
SHARE_TOLERANCE = 1e-3  # relative difference in shares below which two trades agree
DECISION_COLUMNS = ("date", "agree", "policy_harvested", "baseline_harvested",
                    "policy_harvested_loss", "baseline_harvested_loss", "divergence",
                    "divergent_trades")
TRADE_COLUMNS = ("ticker", "side", "differs", "policy_shares", "baseline_shares",
                 "policy_value", "baseline_value", "policy_reason", "baseline_reason", "wash")
_HARVEST = "harvest"


def marginal_value(profile, year: int, short: float, long: float) -> float:
    """Tax saved this year by realizing net ``short`` and ``long`` gains (negative: losses),
    at the profile's marginal rates: a net loss at the rate of one more loss
    (:func:`~taxharvest.tax.law.marginal_rates`), a net gain at the rate of one more gain.
    A loss larger than this year can absorb is valued as if it could (part of it would
    carry forward: deferred, not lost)."""
    loss, gain = marginal_rates(profile, year), marginal_gain_rates(profile, year)
    return 0.0 - sum(x * (gain if x > 0 else loss)[k] for k, x in enumerate((short, long)))


def flat_next_day(market: MarketData) -> MarketData:
    """``market`` with one more trading day whose prices repeat the last day's (no
    dividends, no splits, zero returns), so orders decided on the last day execute there."""
    nxt = np.busday_offset(market.dates[-1], 1, roll="forward")
    trading = np.isfinite(market.prices[-1])

    def more(array: np.ndarray, row: np.ndarray) -> np.ndarray:
        return np.vstack([array, row[None]])

    return replace(
        market, dates=np.append(market.dates, nxt),
        prices=more(market.prices, market.prices[-1]),
        dividends=more(market.dividends, np.zeros(market.n_assets)),
        splits=more(market.splits, np.ones(market.n_assets)),
        total_returns=more(market.total_returns, np.where(trading, 0.0, np.nan)),
        proxy_prices=more(market.proxy_prices, market.proxy_prices[-1]),
        regime=np.append(market.regime, market.regime[-1]))


def trade_key(trade: dict) -> tuple[str, str]:
    """A trade's ``(ticker, side)``: what two sides' trades are matched by."""
    return trade["ticker"], trade["side"]


def shares_differ(a: float, b: float) -> bool:
    """Whether two share counts differ by more than :data:`SHARE_TOLERANCE` of the larger."""
    return abs(a - b) > SHARE_TOLERANCE * max(abs(a), abs(b), 1e-9)


def base_reason(reason: str) -> str:
    """The environment's reason without its guardrail adjustment."""
    return reason.split(" (guardrail", 1)[0]


def _harvested(trades: list[dict]) -> set[str]:
    return {t["ticker"] for t in trades if t["reason"].startswith(_HARVEST)}


@dataclass(frozen=True)
class ShadowDecision:
    """Both proposals for one date.

    Attributes:
        date: the decision date.
        proposals: per role (``policy``, ``baseline``): ``name``, ``trades`` (each with
            ``ticker``, ``side``, ``shares``, ``price``, ``value``, ``reason`` (the
            environment's, with any guardrail adjustment), ``policy_reason``, ``wash`` and,
            for sells, ``lots`` and ``realized_gain``), ``harvested``, ``declined`` (asked
            to harvest, not executed: lock budget, guardrail or wash window), ``realized_short``,
            ``realized_long``, ``tax_saving``, ``ex_ante_te``, ``te_held``,
            ``guardrail_status`` and ``guardrail_reason``.
        differences: one row per (ticker, side) the proposals trade differently, the largest
            difference in dollars first.
        config: what the proposals were built from.
    """

    date: str
    proposals: dict[str, dict]
    differences: list[dict]
    config: dict

    def to_json(self) -> dict:
        return {"kind": "shadow", "mode": "decision", "date": self.date,
                "config": self.config, "proposals": self.proposals,
                "differences": self.differences}

    def csv_rows(self) -> list[dict]:
        """Every traded (ticker, side), both proposals side by side (:data:`TRADE_COLUMNS`)."""
        by_role = {role: {trade_key(t): t for t in p["trades"]}
                   for role, p in self.proposals.items()}
        keys = sorted(set().union(*by_role.values()))
        rows = []
        for key in keys:
            row = {"ticker": key[0], "side": key[1], "wash": ""}
            for role in ROLES:
                trade = by_role[role].get(key, {})
                row[f"{role}_shares"] = trade.get("shares", 0.0)
                row[f"{role}_value"] = trade.get("value", 0.0)
                row[f"{role}_reason"] = trade.get("reason", "")
                row["wash"] = row["wash"] or trade.get("wash", "")
            row["differs"] = shares_differ(row["policy_shares"], row["baseline_shares"])
            rows.append(row)
        return rows


@dataclass(frozen=True)
class ShadowHistory:
    """Both policies through one market, compared decision by decision.

    Attributes:
        decisions: per decision (:data:`DECISION_COLUMNS`): the names each harvested
            (executed), the losses each realized, ``divergence`` (dollars traded differently:
            the sum over tickers and sides of the absolute difference in value) and the
            count of trades without a match in the other run.
        summary: ``agreement_rate`` (share of decisions where both harvested the same
            names), ``divergent_trades`` by role and reason, per role the run's measures
            (``tax_alpha``, ``tracking_error``, ``max_ex_ante_te``, ...) and the
            ``largest_divergence`` dates.
        runs: per role, the backtest JSON of the run (``series`` for plots) and its
            ``schedule_d`` totals.
        config: what the runs were built from.
    """

    decisions: list[dict]
    summary: dict
    runs: dict[str, dict]
    config: dict
    mode: ClassVar[str] = "history"

    def to_json(self) -> dict:
        return {"kind": "shadow", "mode": self.mode, "config": self.config,
                "summary": self.summary, "decisions": self.decisions, "runs": self.runs}

    def csv_rows(self) -> list[dict]:
        return [{**d, "policy_harvested": " ".join(d["policy_harvested"]),
                 "baseline_harvested": " ".join(d["baseline_harvested"])}
                for d in self.decisions]


class Shadow:
    """A candidate ``policy`` and the ``baseline`` in production, on the client's lots.

    Args:
        policy, baseline: policy specs (:func:`~taxharvest.agents.registry.make_policy`);
            ``baseline`` None when the production side is a firm's blotter
            (:mod:`taxharvest.workflows.blotter`).
        profile: the client's tax profile.
        market: the market (real or synthetic), cut to the data the runs may see.
        lots: the client's lots (``ticker``, ``shares``, ``date_acquired``, ``cost_basis``),
            validated (e.g. by :func:`~taxharvest.workflows.holdings.read_initial_lots`).
        initial_value: the lots' value on the first decision date (the benchmark starts
            there).
        te_limit, cadence: the environment's.
        seed: the reset seed of both runs.
        cash_flows: the account's deposits and withdrawals in a historical shadow
            (:class:`~taxharvest.envs.cashflows.CashFlow`).
        transition: a legacy book's ``max_gain`` and ``te_glide_years``
            (:class:`~taxharvest.envs.direct_index.DirectIndexEnv`).
    """

    def __init__(self, policy: str, baseline: str | None, profile: str, market: MarketData,
                 lots: list[dict], *, initial_value: float, te_limit: float = 0.01,
                 cadence: str = "weekly", seed: int = 0,
                 cash_flows: Sequence[CashFlow] = (), transition: dict | None = None) -> None:
        self.specs = {"policy": policy, **({"baseline": baseline} if baseline else {})}
        self.profile = get_profile(profile)
        for spec in self.specs.values():
            if not spec.startswith("ppo:"):  # a PPO folder is checked against its environment
                make_policy(spec, self.profile)
        self.market, self.lots, self.initial_value = market, list(lots), float(initial_value)
        self.te_limit, self.cadence, self.seed = float(te_limit), cadence, int(seed)
        self.cash_flows = tuple(cash_flows)
        self.transition = dict(transition or {})

    def environment(self, market: MarketData, cash_flows: Sequence[CashFlow] = ()
                    ) -> DirectIndexEnv:
        """The client's account on ``market`` (its lots, an audit trail of every trade)."""
        return DirectIndexEnv(market=market, profile=self.profile, cadence=self.cadence,
                              te_limit=self.te_limit, initial_lots=self.lots,
                              initial_value=self.initial_value, random_start=False,
                              warmup_days=WARMUP_DAYS, record_trades=True,
                              episode_years=years_to_end(market), cash_flows=cash_flows,
                              **self.transition)

    def config(self, **extra) -> dict:
        """What the runs are built from, with ``extra``."""
        return {**self.specs,
                "profile": self.profile.name, "market": self.market.source,
                "te_limit": self.te_limit, "cadence": self.cadence, "seed": self.seed,
                "lots": len(self.lots), "initial_value": self.initial_value,
                "cash_flows": [asdict(flow) for flow in self.cash_flows],
                **self.transition, **extra}

    def decision(self, date: str) -> ShadowDecision:
        """Both policies' trades for ``date`` (a trading day of the market; data after it are
        not used)."""
        day = np.datetime64(date, "D")
        market = flat_next_day(self.market.slice(self.market.dates[0], day))
        with quiet_guardrail():
            proposals = {role: self._propose(spec, market, str(market.dates[-2]))
                         for role, spec in self.specs.items()}
        by_role = {role: {trade_key(t): t for t in p["trades"]} for role, p in proposals.items()}
        differences = []
        for key in sorted(set(by_role["policy"]) | set(by_role["baseline"])):
            a, b = (by_role[role].get(key, {}) for role in ROLES)
            if shares_differ(a.get("shares", 0.0), b.get("shares", 0.0)):
                differences.append({
                    "ticker": key[0], "side": key[1],
                    **{f"{role}_{field}": trade.get(field, default)
                       for role, trade in zip(ROLES, (a, b), strict=True)
                       for field, default in (("shares", 0.0), ("value", 0.0), ("reason", ""))}})
        differences.sort(key=lambda d: -abs(d["policy_value"] - d["baseline_value"]))
        return ShadowDecision(str(market.dates[-2]), proposals, differences,
                              self.config(priced_at="the close of the decision date"))

    def _propose(self, spec: str, market: MarketData, date: str) -> dict:
        env = self.environment(market)
        observation, info = env.reset(seed=self.seed, options={"start": date})
        policy = make_policy(spec, self.profile, env)
        policy.reset()
        decision = policy.act(observation, info)
        tickers = env.securities
        wash = {name: account.wash_status(env, row) for row, name in enumerate(tickers)}
        reasons = {tickers[i]: reason for i, reason in decision.reasons.items()}
        _, _, _, _, info = env.step(decision.step_action)
        sales = env.ledger.sales()
        short = float(sales["gain"][~sales["long_term"]].sum())
        long = float(sales["gain"][sales["long_term"]].sum())
        trades = [{**t, "value": t["shares"] * t["price"],
                   "policy_reason": reasons.get(t["ticker"], ""), "wash": wash[t["ticker"]]}
                  for t in info["trades"]]
        harvested = sorted(_harvested(trades))
        return {
            "name": policy.name, "trades": trades, "harvested": harvested,
            "declined": [{"ticker": name, "policy_reason": reason}
                         for name, reason in sorted(reasons.items()) if name not in harvested],
            "realized_short": short, "realized_long": long,
            "tax_saving": marginal_value(self.profile, int(year_of(to_day(date))), short, long),
            "ex_ante_te": info["ex_ante_te"], "te_held": info["te_held"],
            "guardrail_status": info["guardrail_status"],
            "guardrail_reason": info["guardrail_reason"],
        }

    def history(self, start: str, *,
                progress: Callable[[str, int, int], None] | None = None) -> ShadowHistory:
        """Both policies from ``start`` to the end of the market, compared decision by
        decision; ``progress(role, done, total)`` after each step."""
        logs, results = {}, {}
        for role, spec in self.specs.items():
            env = self.environment(self.market, self.cash_flows)
            logs[role] = StepLog(env)
            with quiet_guardrail():
                results[role] = run_backtest(
                    make_policy(spec, self.profile, env), logs[role], seed=self.seed,
                    options={"start": start},
                    progress=None if progress is None else
                    lambda done, total, role=role: progress(role, done, total))
        infos = [logs[role].infos for role in ROLES]
        decisions, unmatched = [], {role: Counter() for role in ROLES}
        for before, *after in zip(infos[0][:-1], infos[0][1:], infos[1][1:], strict=True):
            trades = [a["trades"] for a in after]
            value, shares = [Counter() for _ in ROLES], [Counter() for _ in ROLES]
            for dollars, count, block in zip(value, shares, trades, strict=True):
                for t in block:
                    dollars[trade_key(t)] += t["shares"] * t["price"]
                    count[trade_key(t)] += t["shares"]
            divergent = 0
            for role, mine, theirs, block in zip(ROLES, shares, shares[::-1], trades,
                                                 strict=True):
                for t in block:
                    if shares_differ(mine[trade_key(t)], theirs.get(trade_key(t), 0.0)):
                        unmatched[role][base_reason(t["reason"])] += 1
                        divergent += 1
            names = [sorted(_harvested(block)) for block in trades]
            decisions.append({
                "date": before["date"], "agree": names[0] == names[1],
                "policy_harvested": names[0], "baseline_harvested": names[1],
                "policy_harvested_loss": after[0]["harvested_loss"],
                "baseline_harvested_loss": after[1]["harvested_loss"],
                "divergence": float(sum(abs(value[0][k] - value[1][k])
                                        for k in value[0].keys() | value[1].keys())),
                "divergent_trades": divergent,
            })
        largest = sorted(decisions, key=lambda d: -d["divergence"])[:TOP_DATES]
        summary = {
            "decisions": len(decisions),
            "agreement_rate": float(np.mean([d["agree"] for d in decisions])) if decisions
            else 1.0,
            "decisions_with_harvest": sum(bool(d["policy_harvested"] or d["baseline_harvested"])
                                          for d in decisions),
            "divergent_trades": {role: dict(unmatched[role].most_common()) for role in ROLES},
            "largest_divergence": [{k: d[k] for k in ("date", "divergence",
                                                      "policy_harvested_loss",
                                                      "baseline_harvested_loss")}
                                   for d in largest if d["divergence"] > 0],
            **{role: {"name": results[role].config["policy"],
                      **{m.key: results[role].metrics[m.key] for m in SHADOW}}
               for role in ROLES},
        }
        runs = {role: {**results[role].to_json(),
                       "schedule_d": schedule_d(results[role].form_8949)} for role in ROLES}
        return ShadowHistory(decisions, summary, runs, self.config(start=start))
