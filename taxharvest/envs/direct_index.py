"""`taxharvest/DirectIndex-v0`: a direct-indexed portfolio with lot-level taxes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from taxharvest.envs.benchmark import Benchmark
from taxharvest.envs.broker import LOT, Broker, Execution
from taxharvest.envs.cashflows import CashFlow, schedule
from taxharvest.envs.decision import DecisionRules, OptimizerRules
from taxharvest.envs.features import (
    ASSET_FEATURE_INDEX,
    ASSET_FEATURES,
    asset_observation,
    frozen_weights,
)
from taxharvest.envs.world import PROXY_SETS, build_world, draw_market, warmup_rows
from taxharvest.guardrails import GuardrailResult, TrackingErrorGuardrail
from taxharvest.market.risk import TRADING_DAYS, WARMUP_DAYS
from taxharvest.market.riskmodel import market_risk_model
from taxharvest.market.universe import MarketData
from taxharvest.optimize import Settings, TaxAwareOptimizer, TaxPosition
from taxharvest.tax.calendar import WASH_WINDOW_DAYS, year_of
from taxharvest.tax.clients import RANDOM_PROFILE, draw_profile
from taxharvest.tax.law import (
    TaxProfile,
    TaxSavingsTracker,
    default_tables,
    get_profile,
    marginal_rates,
    tax_for_year,
)
from taxharvest.tax.ledger import Ledger, Trades

CADENCE_DAYS = {"daily": 1, "weekly": 5, "monthly": 21}
DECISION_CORES = ("optimizer", "rules")
ACTION_TYPES = ("binary", "preference")
REWARDS = ("wealth", "tax")
GAIN_BUDGET_MARGIN = 0.1  # share of a gain budget left for the moves up to execution
MIN_TE_BUDGET = 0.01  # the least share of the TE budget a preference action may ask for
UNGUARDED_TE = 1.0  # the optimizer's TE bound with the guardrail off: no practical limit
# ... and its TE price (kappa of kappa * TE^2): a tenth of a guarded 1%-limit program's,
# enough to invest cash and pick replacements toward the benchmark, never to skip a harvest
# (gains are never sold to track without a bound)
UNGUARDED_RISK_PRICE = 3.0

PORTFOLIO_FEATURES = (
    "short_rate", "long_rate", "ytd_short_gain", "ytd_long_gain", "carry_short", "carry_long",
    "te_ratio", "te_budget", "index_vol_21d", "index_drawdown", "year_elapsed",
    "episode_remaining", "proxy_weight", "cash_weight", "harvestable_share",
    "next_short_rate", "next_long_rate", "usable_short", "usable_long", "frozen_te",
    "vol_regime",
)
LONG_VOL_DAYS = 252  # the index volatility the 21-day one is compared with (``vol_regime``)
ASSET = ASSET_FEATURE_INDEX

__all__ = ["ACTION_TYPES", "ASSET_FEATURES", "CADENCE_DAYS", "DECISION_CORES", "REWARDS",
           "PORTFOLIO_FEATURES", "DirectIndexEnv", "action_space", "observation_space"]


def observation_space(n: int, asset_width: int = len(ASSET_FEATURES),
                      portfolio_width: int = len(PORTFOLIO_FEATURES)) -> spaces.Dict:
    """The observation space for ``n`` stocks (narrower widths: a model's own features)."""
    return spaces.Dict({
        "assets": spaces.Box(-np.inf, np.inf, (n, asset_width), np.float32),
        "portfolio": spaces.Box(-np.inf, np.inf, (portfolio_width,), np.float32),
    })


def action_space(n: int, action: str) -> spaces.Space:
    """``MultiBinary(n)`` for ``binary``; ``Box(0, 1, (n + 1,))`` for ``preference``."""
    return spaces.MultiBinary(n) if action == "binary" else spaces.Box(0.0, 1.0, (n + 1,), np.float32)


class DirectIndexEnv(gym.Env):
    """A 500-stock direct-indexed account, two proxies per sector, real lot-level taxes.

    **Securities.** ``n`` stocks, then two replacement securities per sector: the market's
    sector proxy (a cap-weighted basket or a user-supplied ETF) and an equal-weighted
    basket of the sector's members (:mod:`taxharvest.envs.world`). Lots of all of them live
    in one :class:`~taxharvest.tax.ledger.Ledger`; every trade goes through its wash-sale
    rule (:mod:`taxharvest.envs.broker`).

    **Benchmark** (:mod:`taxharvest.envs.benchmark`): a total-return index of the stocks:
    distributions are reinvested across the index, so its weights drift with price returns.
    The account follows the same convention: dividends and distributions arrive as cash and
    cash is invested toward the benchmark weights, so a book that never harvests tracks it.

    **Observation** (``Dict``, float32, fresh arrays every step; no width depends on ``n``):
    ``assets`` ``(n, 13)``: per stock, in order ``ASSET_FEATURES``: unrealized return of the
    worst lot, of the position, share of value in loss lots, share of value short-term, age of
    the worst lot (years), days left in the buy-blocking window / 30 (a loss sale in the
    last 30 days), days left in the sell-blocking window / 30 (a purchase in the last 30
    days), annualized volatility (risk model), active weight and benchmark weight (both times
    ``n``), a harvestable flag, an excluded-or-unlisted flag, days until the worst lot turns
    long-term / 365 (0 unless it is a short-term loss). ``portfolio`` ``(21,)``, in order
    ``PORTFOLIO_FEATURES``: the profile's marginal short/long rates this year,
    year-to-date realized short/long gain and loss carryforwards (fractions of value),
    ex-ante TE over its limit and the budget left, 21-day index volatility, index drawdown,
    fraction of the year elapsed, of the episode remaining, weight in proxies and in cash,
    share of names harvestable; next year's marginal short/long rates (the income
    schedule); the short/long loss this year's gains and the ordinary offset can still use
    at full rate (fractions of value; :meth:`usable_losses`); the TE of the positions frozen
    by wash windows (underweights that may not be bought back, overweights that may not be
    sold) over the limit; 21-day over 252-day index volatility (the volatility regime).

    **Action**: the policy's intent for the decision core. ``action="binary"``:
    ``MultiBinary(n)``, 1 asks to harvest a stock. ``action="preference"``:
    ``Box(0, 1, (n + 1,))``, a harvest preference per stock (the weight on the tax value of
    its losses; 0 keeps them) and, last, the share of the TE budget this decision may use
    (at least ``MIN_TE_BUDGET``). Either action is ignored where a stock is not harvestable
    (no loss lot, a purchase in the last 30 days, excluded, not trading; ``action_mask``)
    and while the risk model warms up. Decisions use data up to day ``t``; orders execute
    at the prices of day ``t + lag``.

    **Decision core** (:mod:`taxharvest.envs.decision`). ``decision="optimizer"`` (the
    default): one tax-aware convex program per decision (:mod:`taxharvest.optimize`)
    chooses every trade: which lots to sell and how much, the replacements among the
    proxies and the other stocks, swap-backs, cash invested; ex-ante TE at most the limit
    times ``1 - te_buffer`` (room for a step of drift) with the positions frozen by wash
    windows priced at stressed volatility, no wash sale created, exclusions sold out, lots
    sold by specific identification; the trades are rounded to tickets within the limit
    itself (the rounding may use the room for drift). With ``guardrail=False`` the program
    has no TE bound.
    ``decision="rules"``: the heuristic pipeline kept for comparison: a harvested stock
    sells all its loss lots into the first of its sector's proxies not in a wash window;
    swap-backs from proxies whose gain is at most ``swap_back_max_gain``; cash invested in
    the benchmark's names; harvests taken largest loss first while the TE frozen by wash
    windows fits ``lock_budget * te_limit``; then the guardrail's L2 projection inside the
    limit.

    **Reward**: ``100 * (D_t - D_{t-1}) - te_penalty * (TE / te_limit)^2 * days / 252``
    where ``TE`` is the ex-ante tracking error of the decided portfolio and, with
    ``reward="wealth"`` (the default), ``D = (portfolio + savings account + this year's
    accrued tax saving) / benchmark`` (all in dollars; the savings account holds each year's
    settled tax saving, invested in the benchmark). ``reward="tax"`` leaves the portfolio
    out of ``D``: the tax saving alone, ``(savings account + accrued saving) / benchmark``,
    whose sum over an episode is its final value. Its active return, whose expectation the
    risk model takes as zero and whose risk the penalty prices, is the market noise that
    dwarfs one decision's tax value in the wealth reward.

    **Start**: with ``profile="random"`` a client is drawn (filing status, income, outside
    gains, state rate, an income path; :func:`~taxharvest.tax.clients.draw_profile`), the
    observation its only view of it. The account is funded at the benchmark's weights
    (excluded names' weight spread over their sector) on the start row, or takes
    ``initial_lots`` in kind (the benchmark account then starts at their value and basis,
    ``initial_value`` unused). The risk
    model is fed up to ``warmup_days`` of returns before the start; where the data holds
    fewer, the account holds and only invests its cash (no harvest, no guardrail) until the
    risk model has seen ``warmup_days`` (``info["warming_up"]``). A legacy book's transition
    (optimizer core): ``max_gain`` caps the net gain realized per calendar year (dollars),
    and ``te_glide_years`` lowers the TE bound linearly from the book's starting TE to the
    limit over that many years; a decision whose bound is above the limit reports
    ``relaxed`` with its cause (the glide path, or the gain budget when even the path's
    bound is unreachable).

    **Info**: ``ex_ante_te`` is the TE of the portfolio decided at this step under the risk
    model of the decision day (what the guardrail bounds); ``te_held`` the TE of the book as
    held at the end of the step, after its trades and the market's moves (where the next
    decision starts, and what the observation shows). The days between decisions are kept
    apart from the info: :meth:`daily` (every close since the reset), which the realized
    measures read.

    **Termination**: ``terminated`` at the end of the episode (``episode_years`` or the end of
    the data), after the last (partial) year's tax saving is settled; never truncated.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        n_assets: int = 500,
        market: MarketData | None = None,
        profile: str | TaxProfile = "mfj-800k",
        cadence: str = "weekly",
        te_limit: float = 0.01,
        guardrail: bool | TrackingErrorGuardrail = True,
        decision: str = "optimizer",
        action: str = "binary",
        reward: str = "wealth",
        exclusions: Iterable[str] = (),
        initial_lots: Sequence[dict] | None = None,
        max_gain: float | None = None,
        te_glide_years: float = 0.0,
        episode_years: float = 10.0,
        lag: int = 1,
        initial_value: float = 1_000_000.0,
        te_buffer: float = 0.1,
        lock_budget: float = 0.35,
        te_penalty: float = 0.05,
        swap_back_max_gain: float = 0.02,
        min_trade: float = 1e-5,
        warmup_days: int = WARMUP_DAYS,
        benchmark_rebalance: str | None = None,
        random_start: bool = True,
        scenario_probability: float = 0.0,
        equivalents: Iterable[Iterable[str]] = (),
        cash_flows: Iterable[CashFlow] = (),
        synthetic: dict | None = None,
        record_trades: bool = False,
        render_mode: str | None = None,
    ) -> None:
        if cadence not in CADENCE_DAYS:
            raise ValueError(f"cadence must be one of {sorted(CADENCE_DAYS)}, got {cadence!r}")
        if lag < 1:
            raise ValueError("lag must be at least one trading day (no look-ahead)")
        if decision not in DECISION_CORES:
            raise ValueError(f"decision must be one of {DECISION_CORES}, got {decision!r}")
        if action not in ACTION_TYPES:
            raise ValueError(f"action must be one of {ACTION_TYPES}, got {action!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        if benchmark_rebalance not in (None, "monthly", "quarterly", "annual"):
            raise ValueError("benchmark_rebalance must be None, 'monthly', 'quarterly' or "
                             f"'annual', got {benchmark_rebalance!r}")
        if render_mode not in (None, "ansi"):  # vector wrappers may ask for rgb_array
            gym.logger.warn(f"render_mode {render_mode!r} is not supported (only 'ansi')")
            render_mode = None
        self.market_template = market
        self.n_assets = market.n_assets if market is not None else int(n_assets)
        # ``profile="random"``: a fresh client every reset (:mod:`taxharvest.tax.clients`)
        self.random_profile = isinstance(profile, str) and profile == RANDOM_PROFILE
        self.profile = None if self.random_profile else get_profile(profile)
        self.cadence = cadence
        self.step_days = CADENCE_DAYS[cadence]
        self.te_limit = float(te_limit)
        if isinstance(guardrail, TrackingErrorGuardrail):
            self.guardrail: TrackingErrorGuardrail | None = guardrail
        else:
            # Project to (1 - te_buffer) of the limit: names in wash windows cannot be bought
            # back, so the book needs room for a step of market drift before the next decision.
            self.guardrail = (TrackingErrorGuardrail(te_limit=self.te_limit * (1.0 - te_buffer))
                              if guardrail else None)
        self.rules = DecisionRules(self.guardrail, self.te_limit, float(lock_budget),
                                   float(swap_back_max_gain), float(min_trade))
        self._warmup_rules = DecisionRules(None, self.te_limit, 1.0, float(swap_back_max_gain),
                                           float(min_trade))
        self.decision = decision
        if decision == "optimizer":
            settings = (Settings(te_limit=self.guardrail.te_limit) if self.guardrail is not None
                        else Settings(te_limit=UNGUARDED_TE,
                                      te_aversion=UNGUARDED_RISK_PRICE * UNGUARDED_TE**2))
            self.rules = OptimizerRules(TaxAwareOptimizer(settings, method="fast"),
                                        te_limit=self.te_limit if self.guardrail is not None else 0.0)
        self.exclusions = tuple(exclusions)
        self.initial_lots = list(initial_lots) if initial_lots is not None else None
        if max_gain is not None and not (np.isfinite(max_gain) and max_gain >= 0):
            raise ValueError(f"max_gain must be a non-negative amount, got {max_gain}")
        if not (np.isfinite(te_glide_years) and te_glide_years >= 0):
            raise ValueError(f"te_glide_years must be non-negative, got {te_glide_years}")
        if (max_gain is not None or te_glide_years > 0) and decision != "optimizer":
            raise ValueError("max_gain and te_glide_years need decision='optimizer'")
        self.max_gain = None if max_gain is None else float(max_gain)
        self.te_glide_years = float(te_glide_years)
        self.episode_years = float(episode_years)
        self.lag = int(lag)
        self.initial_value = float(initial_value)
        self.te_penalty = float(te_penalty)
        self.reward = reward
        self.warmup_days = int(warmup_days)
        self.benchmark_rebalance = benchmark_rebalance
        self.random_start = random_start
        self.scenario_probability = float(scenario_probability)
        self.equivalents = [tuple(g) for g in equivalents]
        self.cash_flows = tuple(cash_flows)
        self.synthetic = dict(synthetic or {})
        self.record_trades = record_trades
        self.render_mode = render_mode

        self.observation_space = observation_space(self.n_assets)
        self.action_type = action
        self.action_space = action_space(self.n_assets, action)

    # --- episode set-up ------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        market = draw_market(self.np_random, self.market_template, options,
                             n_assets=self.n_assets, years=self.episode_years,
                             warmup_days=self.warmup_days,
                             scenario_probability=self.scenario_probability,
                             synthetic=self.synthetic)
        self.world = world = build_world(market, self.exclusions)
        self.start = start = self._start_row(market, options)
        self.end = min(market.n_days - 1, start + int(round(self.episode_years * TRADING_DAYS)))

        first, self.decisions_from = warmup_rows(start, self.warmup_days)
        self.risk_model = market_risk_model(market, first_row=first, proxy_sets=PROXY_SETS)
        for row in range(first, start + 1):
            self.risk_model.update(world.returns[row])
        self._risk: tuple | None = None

        self.benchmark = Benchmark(market, start, self.benchmark_rebalance, world.n_securities)
        self.bench_units = self.initial_value  # the benchmark account, in index units
        self._flow_amounts, self._flow_fractions = schedule(self.cash_flows, market.dates, start)
        self.broker = Broker(world, start, self.initial_value, self.equivalents,
                             self.record_trades)
        if self.initial_lots is not None:
            self.broker.transfer_in(self.initial_lots)
            self.bench_units = self.broker.value  # the benchmark starts with the lots' value
        else:
            self.broker.fund(self._initial_target())
        # what the account cost (the legacy lots' basis): the benchmark's basis at the start
        self.start_basis = float(self.ledger.basis[self.ledger.shares > 0].sum() + self.ledger.cash)

        if self.random_profile:
            self.profile = draw_profile(self.np_random, int(year_of(world.days[start])),
                                        int(np.ceil(self.episode_years)) + 1)
        self.tracker = TaxSavingsTracker(self.profile)
        self.savings_units = 0.0  # savings account, in index units
        self._new_year(int(year_of(world.days[start])))
        self._accrued_key: tuple | None = None
        self._accrued = 0.0
        self.bench_peak = self._bench_value()
        # each row's close from the start: the account, the benchmark, the day's flow, cash
        self._days = np.zeros((self.end - start + 1, 4))
        self._days[0] = self.broker.value, self._bench_value(), 0.0, self.ledger.cash
        self.ex_ante_te = self.decision_te = self.start_te = self._te(self.broker.weights)
        self._wealth_ratio = self._reward_ratio()
        observation = self._observation()
        return observation, self._info(0.0, Execution(), None, 0.0)

    def _start_row(self, market: MarketData, options: dict) -> int:
        horizon = int(round(self.episode_years * TRADING_DAYS))
        latest_start = max(self.warmup_days, market.n_days - 1 - horizon)
        if "start" in options:
            return min(market.date_index(options["start"]), market.n_days - 2)
        if self.random_start and self.market_template is not None \
                and latest_start > self.warmup_days:
            return int(self.np_random.integers(self.warmup_days, latest_start + 1))
        return min(self.warmup_days, market.n_days - 2)

    def _initial_target(self) -> np.ndarray:
        """Benchmark weights with excluded names' weight spread over their sector's members."""
        world, n = self.world, self.n_assets
        sectors = world.market.sectors
        bench = self.benchmark.stock_weights(self.start)
        target = np.where(world.excluded[:n] | ~world.trading(self.start), 0.0, bench)
        for s in range(len(world.market.sector_names)):
            in_sector = sectors == s
            if target[in_sector].sum() > 0:
                target[in_sector] *= bench[in_sector].sum() / target[in_sector].sum()
        return target / target.sum()

    # --- stepping ------------------------------------------------------------------------

    def step(self, action):
        preference, te_budget = self.intent(action)
        broker = self.broker
        value_before, bench_before = broker.value, self._bench_value()
        guard = self._decide(preference, te_budget)
        broker.trades = []
        tax_savings, done = 0.0, Execution()
        first, last = self.t + 1, min(self.t + self.step_days, self.end)
        while self.t < last:
            done += broker.advance()
            tax_savings += self._close_year_if_new(int(self.world.days[self.t]))
            self.risk_model.update(self.world.returns[self.t])
            self._risk = None
            self._days[self.t - self.start, [0, 1, 3]] = (broker.marked_value(),
                                                         self._bench_value(), self.ledger.cash)
        # the step's scheduled flows are paid on its last row, as the firm blotter pays them:
        # each step's growth (benchmark and account) then excludes them exactly
        flowed, sales = self._cash_flow(self._flow_amounts[first:last + 1].sum(),
                                        self._flow_fractions[first:last + 1].sum())
        done += sales
        terminated = self.t >= self.end
        if terminated:
            tax_savings += self._settle_year()
        broker.refresh()
        self._days[self.t - self.start] = broker.value, self._bench_value(), flowed, self.ledger.cash
        self.ex_ante_te = self._te(broker.weights)
        ratio = self._reward_ratio()
        reward = 100.0 * (ratio - self._wealth_ratio) - self.te_penalty * (
            self.decision_te / self.te_limit) ** 2 * self.step_days / TRADING_DAYS
        self._wealth_ratio = ratio
        active = (broker.value - flowed) / value_before - (self._bench_value() - flowed) / bench_before
        observation = self._observation()
        return observation, float(reward), terminated, False, self._info(
            tax_savings, done, guard, active, flowed)

    def intent(self, action) -> tuple[np.ndarray, float]:
        """``(n,)`` harvest preferences in ``[0, 1]`` and the TE budget share of an action:
        ``n`` entries (binary or preferences, the whole budget) or ``n + 1`` (the last the
        budget share)."""
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        n = self.n_assets
        if action.shape[0] not in (n, n + 1):
            raise ValueError(f"action must have {n} entries (or {n + 1} with the TE budget "
                             f"share last), got {action.shape[0]}")
        if not np.isfinite(action).all():
            raise ValueError("action must be finite")
        action = np.clip(action, 0.0, 1.0)
        te_budget = max(float(action[n]), MIN_TE_BUDGET) if action.shape[0] > n else 1.0
        return action[:n], te_budget

    def _decide(self, preference: np.ndarray, te_budget: float) -> GuardrailResult | None:
        """Turn the intent into an order (queued) under the decision rules of the day."""
        execute_at = min(self.t + self.lag, self.end)
        blocks = self.broker.blocks(int(self.world.days[execute_at]))
        warming_up = self.t < self.decisions_from
        if isinstance(self.rules, OptimizerRules) and not warming_up:
            day = int(self.world.days[execute_at])
            decision = self.rules.decide(preference, self.broker, blocks, self._bench_weights(),
                                         self.risk, self._tax_position(day), execute_at, day,
                                         te_budget, self._gain_left(day), self._glide_target())
        else:
            rules = self._warmup_rules if warming_up else self.rules
            decision = rules.decide((preference > 0) & (not warming_up), self.broker, blocks,
                                    self._bench_weights(), self.risk, self._rates[1], execute_at)
        self.decision_te = decision.te
        if decision.order is not None:
            self.broker.orders.append(decision.order)
        return decision.guard if self.guardrail is not None else None

    def _gain_left(self, day: int) -> float | None:
        """The net realized gain the ``max_gain`` budget of the year of ``day`` (the orders'
        execution) still allows (None: no budget), less a margin: orders execute at that
        day's prices, not the decision's."""
        if self.max_gain is None:
            return None
        short, long = self.ledger.realized(int(year_of(day)))
        return max(self.max_gain - short - long, 0.0) * (1.0 - GAIN_BUDGET_MARGIN)

    def _glide_target(self) -> float | None:
        """The transition's TE bound today: from the TE the book started at down to the
        program's bound, linearly over ``te_glide_years`` (None once reached, or without)."""
        bound = self.rules.optimizer.settings.te_limit
        if self.te_glide_years <= 0 or self.start_te <= bound:
            return None
        left = 1.0 - (self.t - self.start) / (self.te_glide_years * TRADING_DAYS)
        return bound + (self.start_te - bound) * left if left > 0 else None

    def _cash_flow(self, amount: float, fraction: float) -> tuple[float, Execution]:
        """A deposit or withdrawal today of ``amount`` dollars and ``fraction`` of the
        account's value, paid into (out of) both the account and the benchmark account."""
        t = self.t
        amount = amount + fraction * self.broker.value
        if amount == 0.0:
            return 0.0, Execution()
        flowed, sales = self.broker.cash_flow(amount)
        self.bench_units += flowed / self.benchmark.value(t)
        return flowed, sales

    # --- tax -----------------------------------------------------------------------------

    def _tax_position(self, day: int) -> TaxPosition:
        """What a dollar realized on ``day`` (the orders' execution) is worth: its year's
        marginal rates up to the gains (plus the ordinary offset) the client can still use
        that year, less the carryforward coming in; a discounted carryforward beyond (IRC
        §1211(b), §1212(b)). Orders of the year's last decision may execute in the next
        year: its rates and what it can use then. Each character's capacity is its own; the
        program pools them where the two rates are equal (:class:`TaxPosition`)."""
        next_year = int(year_of(day)) > self.year
        short_rate, long_rate = self._next_rates if next_year else self._rates
        capacity_short, capacity_long = self.usable_losses(next_year=next_year)
        return TaxPosition(
            short_rate=short_rate, long_rate=long_rate,
            carry_rate=self.rules.carry_discount * min(short_rate, long_rate),
            capacity_short=capacity_short, capacity_long=capacity_long)

    def usable_losses(self, *, next_year: bool = False) -> tuple[float, float]:
        """Dollars of short/long loss the client can still use this year (or, ``next_year``,
        in the next) at full rate: the outside gains of the character (short-term: plus the
        ordinary offset) and the portfolio's gains realized so far in the year, less the
        carryforward coming into it (the client's own and what the portfolio added: for the
        next year, what this year passes on as it stands; negative where losses already
        exceed them)."""
        short, long = self.ledger.realized(self.year)
        carry = self.tracker.carry_with
        if next_year:
            passed = tax_for_year(self.profile, self.year, short, long, *carry)
            short, long, carry = 0.0, 0.0, (passed.carry_short_out, passed.carry_long_out)
        year = self.year + next_year
        income = self.profile.for_year(year)
        law = default_tables().law(self.profile.filing, year, self.profile.indexing,
                                   self.profile.inflation)
        return (income.outside_short_gain + law.loss_limit + short - carry[0],
                income.outside_long_gain + long - carry[1])

    def _new_year(self, year: int) -> None:
        self.year = year
        self._year_start = int(np.datetime64(f"{year}-01-01", "D").astype(np.int64))
        # the client's own carryforward into the year, and the one the year passes on
        carry = self.tracker.carry_base
        passed = tax_for_year(self.profile, year, 0.0, 0.0, *carry)
        self._baseline_tax = passed.total  # the year's tax without the portfolio
        self._rates = marginal_rates(self.profile, year, carry_short=carry[0],
                                     carry_long=carry[1])
        self._next_rates = marginal_rates(self.profile, year + 1,
                                          carry_short=passed.carry_short_out,
                                          carry_long=passed.carry_long_out)

    def _close_year_if_new(self, day: int) -> float:
        """Settle the year's tax saving when ``day`` starts a new year."""
        year = int(year_of(day))
        if year == self.year:
            return 0.0
        saving = self._settle_year()
        self._new_year(year)
        return saving

    def _settle_year(self) -> float:
        short, long = self.ledger.realized(self.year)
        saving = self.tracker.settle(self.year, short, long)
        self.savings_units += saving / self.benchmark.value(self.t)
        self._accrued_key = None
        return saving

    def _accrued_saving(self) -> float:
        """This year's tax saving so far; 0 once the year is settled (the episode's end: the
        saving is then in the savings account)."""
        history = self.tracker.history
        if history and history[-1].year == self.year:
            return 0.0
        short, long = self.ledger.realized(self.year)
        key = (self.year, short, long, len(self.tracker.history))
        if key != self._accrued_key:
            self._accrued = self._baseline_tax - tax_for_year(
                self.profile, self.year, short, long, *self.tracker.carry_with).total
            self._accrued_key = key
        return self._accrued

    # --- the account, read-only: what runs and reports may read beyond observation and info

    @property
    def t(self) -> int:
        """The current row of the episode's market."""
        return self.broker.t

    @property
    def market(self) -> MarketData:
        """The episode's market."""
        return self.world.market

    @property
    def date(self) -> np.datetime64:
        """The current day."""
        return self.world.market.dates[self.t]

    @property
    def securities(self) -> tuple[str, ...]:
        """The account's ``m`` securities: the stocks, then the replacement securities."""
        return self.world.names

    @property
    def sector_of(self) -> np.ndarray:
        """``(m,)`` sector of every security."""
        return self.world.sector_of

    @property
    def n_decisions(self) -> int:
        """Decisions from the episode's start to its end."""
        return -(-(self.end - self.start) // self.step_days)

    @property
    def ledger(self) -> Ledger:
        """The account's lots, sales and wash-sale state (read it; trades go through
        :meth:`step`)."""
        return self.broker.ledger

    @property
    def trade_log(self) -> list[Trades]:
        """Every batch of trades the account made, in order (a replay gives the ledger)."""
        return self.broker.trade_log

    def holdings(self) -> dict[str, np.ndarray | float]:
        """``weights`` and ``benchmark_weights`` ``(m,)``, ``value`` and ``cash`` now."""
        return {"weights": self.broker.weights.copy(),
                "benchmark_weights": self._bench_weights().copy(),
                "value": self.broker.value, "cash": self.ledger.cash}

    def wash_windows(self) -> tuple[np.ndarray, np.ndarray]:
        """``(m,)`` dates of the last loss sale and the last purchase of every security's
        equivalence group (NaT where none): a purchase within 30 days after the first, or a
        loss sale within 30 days after the second, is a wash sale."""
        lots = self.ledger

        def dates(days: np.ndarray) -> np.ndarray:
            out = days[lots.group].astype("datetime64[D]")
            return np.where(days[lots.group] < -10**8, np.datetime64("NaT"), out)

        return dates(lots.last_loss_sale), dates(lots.last_buy)

    def tax_years(self) -> list:
        """The settled tax years (:class:`~taxharvest.tax.law.TaxSaving`), in order."""
        return list(self.tracker.history)

    def carryforwards(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The ``(short, long)`` loss carryforwards into the next year to settle: the client's
        own without the portfolio, and with it."""
        return self.tracker.carry_base, self.tracker.carry_with

    # --- internal state views ------------------------------------------------------------

    @property
    def days(self) -> np.ndarray:
        return self.world.days

    @property
    def excluded(self) -> np.ndarray:
        return self.world.excluded[: self.n_assets]

    @property
    def features(self) -> np.ndarray:
        return self.broker.features

    @property
    def bench_path(self) -> np.ndarray:
        return self.benchmark.path

    @property
    def risk(self):
        """Today's :class:`FactorRisk`, estimated on first use after the day's update."""
        return self._risk_and_volatility()[0]

    @property
    def volatility(self) -> np.ndarray:
        """Annualized volatility of every security under today's risk model."""
        return self._risk_and_volatility()[1]

    def _risk_and_volatility(self) -> tuple:
        if self._risk is None:
            risk = self.risk_model.risk()
            self._risk = (risk, risk.volatility())
        return self._risk

    def daily(self) -> dict[str, np.ndarray]:
        """Every trading day's close from the reset to now: ``dates``, the account's value
        (``portfolio``), the benchmark's (``benchmark``), the day's deposits (+) and
        withdrawals (-) paid into both (``cash_flow``) and the account's cash (``cash``: a
        dividend's waits for the next decision), each ``(days + 1,)``. The realized TE of
        DOMAIN §4 is read from these daily values, whatever the decision cadence."""
        rows = self.t - self.start + 1
        values = self._days[:rows]
        return {"dates": self.market.dates[self.start:self.t + 1], "portfolio": values[:, 0],
                "benchmark": values[:, 1], "cash_flow": values[:, 2], "cash": values[:, 3]}

    def _bench_value(self) -> float:
        return self.bench_units * self.benchmark.value(self.t)

    def _savings_value(self) -> float:
        return self.savings_units * self.benchmark.value(self.t)

    def _bench_weights(self) -> np.ndarray:
        return self.benchmark.weights(self.t)

    def _weights(self) -> tuple[np.ndarray, float]:
        return self.broker.weights, self.broker.value

    def _te(self, weights: np.ndarray) -> float:
        return self.risk.tracking_error(weights - self._bench_weights())

    def _reward_ratio(self) -> float:
        """``D`` of the reward (see the class)."""
        held = self.broker.value if self.reward == "wealth" else 0.0
        return (held + self._savings_value() + self._accrued_saving()) / self._bench_value()

    def _observation(self) -> dict[str, np.ndarray]:
        n, broker, world = self.n_assets, self.broker, self.world
        day = int(world.days[self.t])
        weights, value = broker.weights, broker.value
        lots = broker.ledger
        assets = np.empty((n, len(ASSET_FEATURES)), np.float32)
        blocks = broker.blocks(day)
        self.action_mask = blocks.harvestable & (self.t >= self.decisions_from)
        asset_observation(broker.features, day, lots.last_loss_sale, lots.last_buy, lots.group,
                          self.volatility, weights, self._bench_weights(), world.excluded[:n],
                          world.trading(self.t), self.action_mask, WASH_WINDOW_DAYS, assets)
        short, long = lots.realized(self.year)
        carry_short, carry_long = self.tracker.carry_with
        bench_value = self._bench_value()
        self.bench_peak = max(self.bench_peak, bench_value)
        frozen = frozen_weights(weights - self._bench_weights(), blocks.buy_blocked,
                                blocks.sell_blocked)
        usable_short, usable_long = self.usable_losses()
        long_vol = self.benchmark.volatility(self.t, LONG_VOL_DAYS)
        portfolio = np.array([
            self._rates[0], self._rates[1], short / value, long / value,
            carry_short / value, carry_long / value,
            self.ex_ante_te / self.te_limit, max(0.0, 1.0 - self.ex_ante_te / self.te_limit),
            self.benchmark.volatility(self.t),
            bench_value / self.bench_peak - 1.0, (day - self._year_start) / 365.0,
            (self.end - self.t) / max(self.end - self.start, 1),
            weights[n:].sum(), lots.cash / value, assets[:, ASSET.harvestable].mean(),
            self._next_rates[0], self._next_rates[1], usable_short / value, usable_long / value,
            self.risk.tracking_error(frozen) / self.te_limit,
            self.benchmark.volatility(self.t) / long_vol if long_vol > 0 else 1.0,
        ], dtype=np.float32)
        return {"assets": assets, "portfolio": portfolio}

    def _info(self, tax_savings: float, done: Execution, guard: GuardrailResult | None,
              active: float, cash_flow: float = 0.0) -> dict:
        return {
            "date": str(self.market.dates[self.t]),
            "tax_savings": float(tax_savings),
            "harvested_loss": float(done.harvested),
            "wash_sale_disallowed": float(done.disallowed),
            "ex_ante_te": float(self.decision_te),
            "te_held": float(self.ex_ante_te),
            "active_return": float(active),
            "n_trades": int(done.n_trades),
            "portfolio_value": self.broker.value,
            "benchmark_value": self._bench_value(),
            "savings_account": self._savings_value(),
            "cash_flow": float(cash_flow),
            "guardrail_status": guard.status if guard is not None else "off",
            "guardrail_distance": float(guard.distance) if guard is not None else 0.0,
            "guardrail_reason": guard.reason if guard is not None else "",
            "warming_up": bool(self.t < self.decisions_from),
            "action_mask": self.action_mask.copy(),
            **({"trades": list(self.broker.trades)} if self.record_trades else {}),
        }

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        weights, value = self.broker.weights, self.broker.value
        n = self.n_assets
        short, long = self.ledger.realized(self.year)
        lines = [
            f"{self.market.dates[self.t]}  value {value:,.0f}  benchmark {self._bench_value():,.0f}"
            f"  savings {self._savings_value():,.0f}",
            f"  ex-ante TE {self.ex_ante_te:.2%} (limit {self.te_limit:.2%})  proxies "
            f"{weights[n:].sum():.1%}  cash {self.ledger.cash / value:.2%}",
            f"  {self.year} realized: short {short:,.0f}  long {long:,.0f}  lots "
            f"{int((self.ledger.shares > 0).sum())}  names at a loss "
            f"{int((self.features[:n, LOT.loss_shares] > 0).sum())}/{n}",
        ]
        return "\n".join(lines) + "\n"

