"""`taxharvest/DirectIndex-v0`: a direct-indexed portfolio with lot-level taxes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from taxharvest.envs.features import (
    N_LOT_FEATURES,
    asset_observation,
    lot_features,
    propose,
    select_within_lock_budget,
    wash_blocks,
)
from taxharvest.guardrails import TrackingErrorGuardrail
from taxharvest.guardrails.program import factor_loadings
from taxharvest.market.risk import WARMUP_DAYS
from taxharvest.market.riskmodel import market_risk_model
from taxharvest.market.synthetic import SyntheticMarket
from taxharvest.market.universe import MarketData, basket_levels
from taxharvest.tax import kernel
from taxharvest.tax.calendar import ANNIVERSARY, DAY_BASE, WASH_WINDOW_DAYS, year_of
from taxharvest.tax.law import (
    TaxProfile,
    TaxSavingsTracker,
    get_profile,
    marginal_rates,
    tax_saving,
)
from taxharvest.tax.ledger import Ledger, Trades

CADENCE_DAYS = {"daily": 1, "weekly": 5, "monthly": 21}
TRADING_DAYS = 252
SELL_CUSHION = 0.10
MAX_MARKET_DRAWS = 20
PROXY_SETS = 2  # replacement securities per sector: the market's proxy, an equal-weight basket

ASSET_FEATURES = (
    "worst_lot_return", "unrealized_return", "loss_value_share", "short_term_share",
    "worst_lot_age", "buy_block_days", "sell_block_days", "volatility",
    "active_weight", "benchmark_weight", "harvestable", "excluded",
)
PORTFOLIO_FEATURES = (
    "short_rate", "long_rate", "ytd_short_gain", "ytd_long_gain", "carry_short", "carry_long",
    "te_ratio", "te_budget", "index_vol_21d", "index_drawdown", "year_elapsed",
    "episode_remaining", "proxy_weight", "cash_weight", "harvestable_share",
)


class _UnfitDraw(Exception):
    """A crash window drawn at random did not fit the market; the reset draws again."""


@dataclass
class _Order:
    """Share deltas decided on one day, executed ``lag`` trading days later."""

    execute_at: int
    shares: np.ndarray  # (m,) signed: negative sells (HIFO: loss lots first), positive buys
    harvest: np.ndarray  # (n,) bool: names whose loss lots this order harvests
    swap_back: np.ndarray  # (n,) bool: names bought back from their proxy
    adjustment: np.ndarray  # (m,) weight the guardrail added (+) or removed (-)


class DirectIndexEnv(gym.Env):
    """A 500-stock direct-indexed account, two proxies per sector, real lot-level taxes.

    **Securities.** ``n`` stocks, then two replacement securities per sector: the market's
    sector proxy (a cap-weighted basket or a user-supplied ETF) and an equal-weighted
    basket of the sector's members. Baskets of many companies are not substantially
    identical to any member, and two different indexes not to each other, so a harvest can
    park in whichever of the pair is free of a wash window, and a swap back can be funded
    from whichever may be sold (how primary/secondary replacement tickers work in practice).
    Lots of all of them live in one :class:`~taxharvest.tax.ledger.Ledger`; every trade
    goes through its wash-sale rule.

    **Observation** (``Dict``, float32, fresh arrays every step):
    ``assets`` ``(n, 12)``: per stock, in order ``ASSET_FEATURES``: unrealized return of the
    worst lot, of the position, share of value in loss lots, share of value short-term, age of
    the worst lot (years), days left in the buy-blocking window / 30 (a loss sale in the
    last 30 days), days left in the sell-blocking window / 30 (a purchase in the last 30
    days), annualized volatility (risk model), active weight and benchmark weight (both times
    ``n``), a harvestable flag, an excluded-or-unlisted flag. ``portfolio`` ``(15,)``, in
    order ``PORTFOLIO_FEATURES``: the profile's marginal short/long rates this year,
    year-to-date realized short/long gain and loss carryforwards (fractions of value),
    ex-ante TE over its limit and the budget left, 21-day index volatility, index drawdown,
    fraction of the year elapsed, of the episode remaining, weight in proxies and in cash,
    share of names harvestable.

    **Action** ``MultiBinary(n)``: 1 harvests a stock: all its lots at a loss are sold and
    the proceeds go to the first of its sector's proxies not in a wash window. Ignored
    where the stock is not harvestable (no loss lot, a purchase in the last 30 days, both
    proxies in wash windows, excluded, not trading). Every decision also swaps back: a
    stock underweight after a harvest whose 30-day window has closed is bought back from
    its sector's proxies that may be sold and whose gain is at most ``swap_back_max_gain``. Cash (dividends,
    delistings) is invested in the benchmark's names that may be bought. With
    ``guardrail=True`` the proposed weights are projected inside ``te_limit`` (no buys in
    wash windows, no loss sales after recent buys, exclusions at zero), aiming at
    ``(1 - te_buffer) * te_limit`` to leave room for drift, and (guardrail on) harvests are
    taken largest loss first only while the ex-ante TE frozen by wash windows (shortfalls
    that cannot be bought back, overweights that cannot be sold) stays within
    ``lock_budget * te_limit``: the rest of the limit is room for volatility to jump.
    Decisions use data up to day ``t``; orders execute at the prices of day ``t + lag``.

    **Reward**: ``100 * (D_t - D_{t-1}) - te_penalty * (TE / te_limit)^2 * days / 252``
    where ``D = (portfolio + savings account + this year's accrued tax saving) / benchmark``
    (all in dollars; the savings account holds each year's settled tax saving, invested
    in the benchmark) and ``TE`` the ex-ante tracking error of the decided portfolio.

    **Info**: ``ex_ante_te`` is the TE of the portfolio decided at this step under the risk
    model of the decision day (what the guardrail bounds); ``te_held`` the TE of the book as
    held at the end of the step, after its trades and the market's moves (where the next
    decision starts, and what the observation shows).

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
        exclusions: Iterable[str] = (),
        initial_lots: Sequence[dict] | None = None,
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
        synthetic: dict | None = None,
        record_trades: bool = False,
        render_mode: str | None = None,
    ) -> None:
        if cadence not in CADENCE_DAYS:
            raise ValueError(f"cadence must be one of {sorted(CADENCE_DAYS)}, got {cadence!r}")
        if lag < 1:
            raise ValueError("lag must be at least one trading day (no look-ahead)")
        if render_mode not in (None, "ansi"):  # vector wrappers may ask for rgb_array
            gym.logger.warn(f"render_mode {render_mode!r} is not supported (only 'ansi')")
            render_mode = None
        self.market_template = market
        self.n_assets = market.n_assets if market is not None else int(n_assets)
        self.profile = get_profile(profile)
        self.cadence = cadence
        self.step_days = CADENCE_DAYS[cadence]
        self.te_limit = float(te_limit)
        self.lock_budget = float(lock_budget)
        if isinstance(guardrail, TrackingErrorGuardrail):
            self.guardrail: TrackingErrorGuardrail | None = guardrail
        else:
            # Project to (1 - te_buffer) of the limit: names in wash windows cannot be bought
            # back, so the book needs room for a step of market drift before the next decision.
            self.guardrail = (TrackingErrorGuardrail(te_limit=self.te_limit * (1.0 - te_buffer))
                              if guardrail else None)
        self.exclusions = tuple(exclusions)
        self.initial_lots = list(initial_lots) if initial_lots is not None else None
        self.episode_years = float(episode_years)
        self.lag = int(lag)
        self.initial_value = float(initial_value)
        self.te_penalty = float(te_penalty)
        self.swap_back_max_gain = float(swap_back_max_gain)
        self.min_trade = float(min_trade)
        self.warmup_days = int(warmup_days)
        if benchmark_rebalance not in (None, "monthly", "quarterly", "annual"):
            raise ValueError("benchmark_rebalance must be None, 'monthly', 'quarterly' or "
                             f"'annual', got {benchmark_rebalance!r}")
        self.benchmark_rebalance = benchmark_rebalance
        self.random_start = random_start
        self.scenario_probability = float(scenario_probability)
        self.equivalents = [tuple(g) for g in equivalents]
        self.synthetic = dict(synthetic or {})
        self.record_trades = record_trades
        self._trades: list[dict] = []
        self.render_mode = render_mode

        n = self.n_assets
        self.observation_space = spaces.Dict({
            "assets": spaces.Box(-np.inf, np.inf, (n, len(ASSET_FEATURES)), np.float32),
            "portfolio": spaces.Box(-np.inf, np.inf, (len(PORTFOLIO_FEATURES),), np.float32),
        })
        self.action_space = spaces.MultiBinary(n)

    # --- episode set-up ------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        for _ in range(MAX_MARKET_DRAWS):
            try:
                self.market = self._episode_market(options)
                break
            except _UnfitDraw:  # a randomly drawn crash window did not fit: draw again
                continue
        else:
            raise RuntimeError(f"no crash window fitted in {MAX_MARKET_DRAWS} drawn markets")
        mk = self.market
        n, k = mk.n_assets, len(mk.sector_names)
        self.n_securities = m = n + PROXY_SETS * k
        self.sector_of = np.concatenate([mk.sectors, np.tile(np.arange(k), PROXY_SETS)]
                                        ).astype(np.int64)
        self.excluded = self._exclusion_mask(mk)
        self.excluded_all = np.concatenate([self.excluded, np.zeros(m - n, bool)])

        # Second proxy per sector: the equal-weighted basket of its members (a different
        # index from the market's sector proxy, so not substantially identical to it).
        alternate = 100.0 * basket_levels(mk.total_returns, np.ones(n), mk.sectors, k)
        proxies = np.hstack([mk.proxy_prices, alternate])
        self.prices_all = np.hstack([mk.prices, proxies])
        with np.errstate(invalid="ignore", divide="ignore"):
            proxy_returns = np.vstack([np.zeros((1, proxies.shape[1])),
                                       proxies[1:] / proxies[:-1] - 1])
        self.returns_all = np.hstack([mk.total_returns, proxy_returns])
        self.days = mk.dates.astype(np.int64)

        horizon = int(round(self.episode_years * TRADING_DAYS))
        latest_start = max(self.warmup_days, mk.n_days - 1 - horizon)
        if "start" in options:
            start = int(np.searchsorted(mk.dates, np.datetime64(options["start"], "D")))
            start = max(start, 1)
        elif self.random_start and self.market_template is not None and latest_start > self.warmup_days:
            start = int(self.np_random.integers(self.warmup_days, latest_start + 1))
        else:
            start = min(self.warmup_days, mk.n_days - 2)
        self.start = start
        self.end = min(mk.n_days - 1, start + horizon)
        self.t = start

        first = max(1, start - self.warmup_days)
        self.risk_model = market_risk_model(mk, first_row=first, proxy_sets=PROXY_SETS)
        for row in range(first, start + 1):
            self.risk_model.update(self.returns_all[row])
        self._risk: tuple | None = None

        listed = np.isfinite(mk.prices[start])
        self._build_benchmark(start)
        stops = np.zeros(mk.n_days, bool)
        stops[mk.last_trading_index[mk.last_trading_index < mk.n_days - 1]] = True
        self._corporate_action_days = (
            (mk.splits != 1.0).any(axis=1) | (mk.dividends != 0).any(axis=1) | stops)
        self._bench_cache: tuple[int, np.ndarray] = (-1, np.empty(0))
        self.last_price = np.where(np.isfinite(self.prices_all[start]), self.prices_all[start], 0.0)
        for row in range(start):  # last known price of anything not trading on the start day
            seen = np.isfinite(self.prices_all[row]) & (self.last_price == 0)
            self.last_price[seen] = self.prices_all[row][seen]

        names = tuple(mk.tickers) + tuple(mk.proxy_names) + tuple(
            f"{sector} equal-weight basket" for sector in mk.sector_names)
        self.ledger = Ledger(names, relief="hifo",
                             equivalents=self.equivalents, slots=8, cash=self.initial_value)
        self.trade_log: list[Trades] = []
        self._fund_initial_portfolio(listed)

        self.tracker = TaxSavingsTracker(self.profile)
        self.savings_units = 0.0  # savings account, in benchmark units
        self.year = int(year_of(self.days[start]))
        self._year_start = int(np.datetime64(f"{self.year}-01-01", "D").astype(np.int64))
        self._rates = marginal_rates(self.profile, self.year)
        self._accrued_key: tuple | None = None
        self._accrued = 0.0
        self.orders: list[_Order] = []
        self.features = np.zeros((m, N_LOT_FEATURES))
        self._refresh_features()
        self.bench_peak = self._bench_value()
        self.ex_ante_te = self.decision_te = self._te(self._weights()[0])
        self._wealth_ratio = self._after_tax_ratio()
        self.disallowed_total = 0.0
        observation = self._observation()
        return observation, self._info(tax_savings=0.0, harvested=0.0, disallowed=0.0,
                                       n_trades=0, guard=None, active=0.0)

    def _episode_market(self, options: dict) -> MarketData:
        if self.market_template is not None:
            market = self.market_template
        else:
            years = self.episode_years + self.warmup_days / TRADING_DAYS + 0.05
            seed = int(self.np_random.integers(2**31 - 1))
            market = SyntheticMarket(n_assets=self.n_assets, years=years, seed=seed,
                                     **self.synthetic).generate()
        scenario = options.get("scenario")
        if scenario is None and self.scenario_probability > 0:
            if self.np_random.random() < self.scenario_probability:
                from taxharvest.market.scenarios import list_scenarios

                names = list_scenarios()
                scenario = names[int(self.np_random.integers(len(names)))]
        if scenario is not None:
            from taxharvest.market.scenarios import ScenarioWindowError, inject_scenario

            at = options.get("scenario_date")
            drawn = at is None
            if drawn:
                lo = self.warmup_days + 21
                hi = max(lo + 1, market.n_days - 300)
                at = market.dates[int(self.np_random.integers(lo, hi))]
            try:
                market = inject_scenario(market, scenario, start_date=at,
                                         seed=int(self.np_random.integers(2**31 - 1)))
            except ScenarioWindowError:
                if drawn:
                    raise _UnfitDraw from None
                raise
        return market

    def _exclusion_mask(self, mk: MarketData) -> np.ndarray:
        mask = np.zeros(mk.n_assets, bool)
        tickers = {t.upper(): i for i, t in enumerate(mk.tickers)}
        sectors = {s.lower(): i for i, s in enumerate(mk.sector_names)}
        for item in self.exclusions:
            if item.lower().startswith("sector:"):
                name = item.split(":", 1)[1].strip().lower()
                if name not in sectors:
                    raise ValueError(f"unknown sector in exclusions: {item!r}; "
                                     f"sectors are {', '.join(mk.sector_names)}")
                mask |= mk.sectors == sectors[name]
            elif item.upper() in tickers:
                mask[tickers[item.upper()]] = True
            else:
                raise ValueError(f"unknown ticker in exclusions: {item!r}")
        return mask

    def _fund_initial_portfolio(self, listed: np.ndarray) -> None:
        mk, n = self.market, self.market.n_assets
        day = self.days[self.start]
        if self.initial_lots is not None:
            lots = sorted(self.initial_lots, key=lambda lot: str(lot["date_acquired"]))
            rows = [self.ledger.ticker_index[str(lot["ticker"]).upper()] for lot in lots]
            acquired = [int(np.datetime64(str(lot["date_acquired"]), "D").astype(np.int64))
                        for lot in lots]
            shares = [float(lot["shares"]) for lot in lots]
            price = [float(lot["cost_basis"]) / float(lot["shares"]) for lot in lots]
            self._execute(Trades.of(rows, acquired, kernel.BUY, shares, price))
            self.ledger.cash = 0.0
            return
        # Benchmark weights with excluded names' weight spread over their sector's members.
        bench = self._bench_weights()[:n]
        target = np.where(self.excluded | ~listed, 0.0, bench)
        for s in range(len(mk.sector_names)):
            in_sector = mk.sectors == s
            if target[in_sector].sum() > 0:
                target[in_sector] *= bench[in_sector].sum() / target[in_sector].sum()
        target /= target.sum()
        rows = np.flatnonzero(target > 0)
        price = self.last_price[rows]
        shares = target[rows] * self.initial_value / price
        self._execute(Trades.of(rows, day, kernel.BUY, shares, price))

    # --- stepping ------------------------------------------------------------------------

    def step(self, action):
        action = np.asarray(action).reshape(-1).astype(bool)
        if action.shape[0] != self.n_assets:
            raise ValueError(f"action must have {self.n_assets} entries, got {action.shape[0]}")
        value_before, bench_before = self._portfolio_value(), self._bench_value()
        guard = self._decide(action)
        tax_savings = harvested = disallowed = 0.0
        n_trades = 0
        self._trades = []
        last = min(self.t + self.step_days, self.end)
        while self.t < last:
            self.t += 1
            s, h, d, c = self._advance_day()
            tax_savings += s
            harvested += h
            disallowed += d
            n_trades += c
        terminated = self.t >= self.end
        if terminated:
            tax_savings += self._settle_year()
        self._refresh_features()
        weights, _ = self._weights()
        self.ex_ante_te = self._te(weights)
        ratio = self._after_tax_ratio()
        days = self.step_days
        reward = 100.0 * (ratio - self._wealth_ratio) - self.te_penalty * (
            self.decision_te / self.te_limit) ** 2 * days / TRADING_DAYS
        self._wealth_ratio = ratio
        active = (self._portfolio_value() / value_before) - (self._bench_value() / bench_before)
        observation = self._observation()
        info = self._info(tax_savings=tax_savings, harvested=harvested, disallowed=disallowed,
                          n_trades=n_trades, guard=guard, active=active)
        return observation, float(reward), terminated, False, info

    def _decide(self, action: np.ndarray):
        """Turn the action into a proposal, guard it, and queue the order."""
        n, m = self.n_assets, self.n_securities
        exec_row = min(self.t + self.lag, self.end)
        exec_day = self.days[exec_row]
        weights, value = self._weights()
        price = self.last_price
        buy_blocked, sell_blocked, park, harvestable = self._blocks(exec_day)
        harvest = self._within_lock_budget(action & harvestable, weights, value, buy_blocked,
                                           sell_blocked, park)
        if (self.guardrail is None and not harvest.any() and weights[n:].sum() <= 0.0
                and 1.0 - weights.sum() <= self.min_trade):
            self.decision_te = self.ex_ante_te  # nothing to harvest, swap back or invest
            return None

        bench = self._bench_weights()
        proposal, gap = np.empty(m), np.empty(n)
        propose(weights, harvest, self.features[:n, 5], price, value, bench, buy_blocked,
                sell_blocked, park, self.features[:, 1], self.excluded,
                np.isfinite(self.prices_all[self.t, :n]), self.market.sectors,
                self.swap_back_max_gain, self.min_trade, proposal, gap)

        guard = None
        target = proposal
        if self.guardrail is not None:
            gain_cost = np.clip(self.features[:, 1], 0.0, None) / np.maximum(
                1.0 + self.features[:, 1], 1e-9) * self._rates[1]
            guard = self.guardrail.project(
                proposal / proposal.sum(), bench, self.risk,
                current=weights / max(weights.sum(), 1e-12),
                no_buy=buy_blocked | (proposal < weights - 1e-12),
                excluded=self.excluded_all | (price <= 0),
                no_sell=sell_blocked,
                gain_cost=gain_cost,
            )
            target = guard.weights
        delta = (target - weights) * value
        delta[np.abs(delta) < self.min_trade * value] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = np.where(price > 0, delta / price, 0.0)
        self.decision_te = self._te(target)
        if shares.any():
            self.orders.append(_Order(
                execute_at=exec_row, shares=shares, harvest=harvest & (shares[:n] < 0),
                swap_back=gap > 0,
                adjustment=target - proposal / proposal.sum() if guard is not None else
                np.zeros(m)))
        return guard

    def _advance_day(self) -> tuple[float, float, float, int]:
        """Move to day ``self.t``: prices, risk, corporate actions, orders, year end."""
        mk, t = self.market, self.t
        day = self.days[t]
        saving = 0.0
        new_year = int(year_of(day))
        if new_year != self.year:
            saving = self._settle_year()
            self.year = new_year
            self._year_start = int(np.datetime64(f"{self.year}-01-01", "D").astype(np.int64))
            self._rates = marginal_rates(self.profile, self.year)
        self.risk_model.update(self.returns_all[t])
        self._risk = None
        row = self.prices_all[t]
        trading = np.isfinite(row)
        self.last_price[trading] = row[trading]
        n = mk.n_assets
        harvested = disallowed = 0.0
        n_trades = 0
        if self._corporate_action_days[t]:
            split_rows = np.flatnonzero(mk.splits[t] != 1.0)
            if split_rows.size:
                self._execute(Trades.of(split_rows, day, kernel.SPLIT, mk.splits[t, split_rows],
                                        0.0))
            positions = self.ledger.shares[:n].sum(axis=1)
            self.ledger.cash += float(np.nansum(mk.dividends[t] * positions))
            delisted = np.flatnonzero((mk.last_trading_index == t) & (t < mk.n_days - 1)
                                      & (positions > 0))
            if delisted.size:  # a stop forces a sale at the last price
                harvested, disallowed, n_trades = self._execute_sells(
                    delisted, positions[delisted], day)
        while self.orders and self.orders[0].execute_at <= t:
            h, d, c = self._execute_order(self.orders.pop(0), day)
            harvested += h
            disallowed += d
            n_trades += c
        return saving, harvested, disallowed, n_trades

    def _within_lock_budget(self, harvest: np.ndarray, weights: np.ndarray, value: float,
                            buy_blocked: np.ndarray, sell_blocked: np.ndarray,
                            park: np.ndarray) -> np.ndarray:
        """Harvests, largest loss first, while the TE frozen by wash windows fits the budget.

        A harvested stock cannot be bought back for 30 days, and its sector proxy, just
        bought, cannot be sold at a loss for 30 days: whatever volatility does, those
        shortfalls and overweights stay. The ex-ante TE of the frozen parts of the active
        weights may use ``lock_budget`` of the limit; the rest is the guardrail's room.
        Locked TE grows with volatility, so the default 0.35 leaves room for volatility to
        rise about 2.6-fold (crashes triple it) before the locked part alone fills the limit.
        """
        if not harvest.any() or self.guardrail is None or self.lock_budget >= 1.0:
            return harvest
        risk = self.risk
        candidates = np.flatnonzero(harvest)
        candidates = candidates[np.argsort(-self.features[candidates, 6], kind="stable")]
        sold = self.features[candidates, 5] * self.last_price[candidates] / value
        accepted = select_within_lock_budget(
            candidates, sold, park[self.market.sectors], weights - self._bench_weights(),
            buy_blocked, sell_blocked, factor_loadings(risk), risk.specific_var,
            (self.lock_budget * self.te_limit) ** 2)
        kept = np.zeros_like(harvest)
        kept[candidates[accepted]] = True
        return kept

    def _execute_order(self, order: _Order, day: int) -> tuple[float, float, int]:
        price = self.last_price
        held = self.ledger.shares.sum(axis=1)
        sells = np.flatnonzero(order.shares < 0)
        recent = sells[day - self.ledger.last_buy[self.ledger.group[sells]] <= WASH_WINDOW_DAYS]
        if recent.size:  # never sell at a loss what a recent purchase would wash
            lots = self.ledger
            at_loss = (lots.shares[recent] * price[recent, None] < lots.basis[recent] - 1e-9).any(1)
            sells = np.setdiff1d(sells, recent[at_loss])
        qty = np.minimum(-order.shares[sells], held[sells])
        harvest = sells[sells < self.n_assets][order.harvest[sells[sells < self.n_assets]]]
        if harvest.size:  # a harvest sells only the lots still at a loss at execution
            lots = self.ledger
            at_loss = lots.shares[harvest] * price[harvest, None] < lots.basis[harvest]
            still = np.where(at_loss, lots.shares[harvest], 0.0).sum(axis=1)
            position = np.searchsorted(sells, harvest)
            qty[position] = np.minimum(qty[position], still)
        harvested, disallowed, n_sells = self._execute_sells(
            sells[qty > 0], qty[qty > 0], day, order)
        buys = np.flatnonzero((order.shares > 0) & (price > 0))
        buy_blocked = self._blocks(day)[0]
        buys = buys[~buy_blocked[buys]]  # never create a wash sale by our own purchase
        cost = order.shares[buys] * price[buys]
        scale = min(1.0, max(self.ledger.cash, 0.0) / cost.sum()) if cost.sum() > 0 else 0.0
        if buys.size and scale > 0:
            trades = Trades.of(buys, day, kernel.BUY, order.shares[buys] * scale, price[buys])
            self._execute(trades)
            if self.record_trades:
                self._record(trades, order, None)
        return harvested, disallowed, n_sells + int(buys.size if scale > 0 else 0)

    def _execute_sells(self, rows: np.ndarray, qty: np.ndarray, day: int,
                       order: _Order | None = None) -> tuple[float, float, int]:
        """Sell (HIFO: loss lots first); return harvested loss, disallowed loss, trades."""
        if rows.size == 0:
            return 0.0, 0.0, 0
        before = self.ledger.n_sales
        disallowed_before = self.disallowed_total
        trades = Trades.of(rows, day, kernel.SELL, qty, self.last_price[rows])
        self._execute(trades)
        sales = self.ledger.sales(start=before)
        gain = sales["gain"]
        self.disallowed_total = self.ledger.total_disallowed
        if self.record_trades:
            self._record(trades, order, sales)
        return float(-gain[gain < 0].sum()), self.disallowed_total - disallowed_before, int(rows.size)

    def _record(self, trades: Trades, order: _Order | None, sales: dict | None) -> None:
        """Audit trail: each executed trade with its reason and, for sells, the lots sold."""
        n, date = self.n_assets, str(self.market.dates[self.t])
        names = self.ledger.tickers
        for row, qty, price in zip(trades.ticker, trades.qty, trades.price, strict=True):
            sell = sales is not None
            if order is None:
                reason = "forced sale: the security stopped trading"
            elif row < n and sell and order.harvest[row]:
                reason = "harvest: sell the lots at a loss"
            elif row < n and not sell and order.swap_back[row]:
                reason = "swap back: wash window closed"
            elif row >= n:
                reason = "fund swap-backs" if sell else "proxy for harvested names"
            else:
                reason = "rebalance toward the benchmark" if sell else "invest cash"
            if order is not None and abs(order.adjustment[row]) > 1e-6:
                reason += f" (guardrail adjusted by {order.adjustment[row]:+.3%} of value)"
            entry = {"date": date, "ticker": names[row], "side": "sell" if sell else "buy",
                     "shares": float(qty), "price": float(price), "reason": reason}
            if sell:
                mine = sales["row"] == row
                entry["lots"] = [
                    {"date_acquired": str(np.datetime64(int(a), "D")), "shares": float(q),
                     "cost_basis": float(b), "gain": float(g)}
                    for a, q, b, g in zip(sales["acquired"][mine], sales["shares"][mine],
                                          sales["cost_basis"][mine], sales["gain"][mine],
                                          strict=True)]
                entry["realized_gain"] = float(sales["gain"][mine].sum())
            self._trades.append(entry)

    def _execute(self, trades: Trades) -> None:
        self.ledger.apply(trades)
        self.trade_log.append(trades)

    # --- tax -----------------------------------------------------------------------------

    def _settle_year(self) -> float:
        short, long = self.ledger.realized(self.year)
        saving = self.tracker.settle(self.year, short, long)
        self.savings_units += saving / self._bench_value()
        self._accrued_key = None
        return saving

    def _accrued_saving(self) -> float:
        short, long = self.ledger.realized(self.year)
        key = (self.year, short, long, len(self.tracker.history))
        if key != self._accrued_key:
            self._accrued = tax_saving(self.profile, self.year, short, long,
                                       self.tracker.carry_base, self.tracker.carry_with).saving
            self._accrued_key = key
        return self._accrued

    # --- state views ---------------------------------------------------------------------

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
            # exposures are 1 to the market (factor 0) and 1 to the own sector (factor 1 + s)
            cov, sector = risk.factor_cov, 1 + self.sector_of
            factor_var = cov[0, 0] + 2.0 * cov[0, sector] + cov[sector, sector]
            self._risk = (risk, np.sqrt(factor_var + risk.specific_var))
        return self._risk

    def _build_benchmark(self, start: int) -> None:
        """Benchmark units held per segment between reconstitutions, and its value path.

        Buy-and-hold of total returns from ``start``; with ``benchmark_rebalance`` the
        benchmark is reset on the first trading day of each period to its target weights
        over the names listed that day (equal weights when the market's benchmark is
        equal-weighted, so a late listing joins at its first reconstitution). Each segment
        uses only prices up to its first day.
        """
        mk = self.market
        levels = np.cumprod(1.0 + np.nan_to_num(mk.total_returns), axis=0)
        base = np.asarray(mk.benchmark_weights, float)
        equal = np.allclose(base[base > 0], base[base > 0].max())
        rows = [start]
        if self.benchmark_rebalance is not None:
            months = mk.dates.astype("datetime64[M]").astype(np.int64)
            step = {"monthly": 1, "quarterly": 3, "annual": 12}[self.benchmark_rebalance]
            new_period = np.flatnonzero((np.diff(months) != 0) & (months[1:] % step == 0)) + 1
            rows += [int(r) for r in new_period if r > start]
        units, value = [], 1.0
        for r in rows:
            listed = np.isfinite(mk.prices[r])
            if r == start:
                target = np.where(listed, base * levels[r], 0.0)
            else:
                value = float(levels[r] @ units[-1])
                target = np.where(listed, 1.0 if equal else base, 0.0)
            units.append(target / target.sum() * value / levels[r])
        self.bench_levels = levels
        self._bench_rows = np.asarray(rows)
        self._bench_units = np.asarray(units)
        segment = np.searchsorted(self._bench_rows, np.arange(mk.n_days), side="right") - 1
        segment = np.maximum(segment, 0)
        # value path, read only up to the current day
        self.bench_path = np.einsum("tn,tn->t", levels, self._bench_units[segment])
        log_returns = np.concatenate([[0.0], np.diff(np.log(self.bench_path))])
        self._index_r1, self._index_r2 = np.cumsum(log_returns), np.cumsum(log_returns**2)
        self._segment = segment

    def _index_vol(self, window: int = 21) -> float:
        """Annualized volatility of the benchmark's last ``window`` daily returns (to today)."""
        lo = max(self.start, self.t - window)
        count = self.t - lo
        if count < 2:
            return 0.0
        total = self._index_r1[self.t] - self._index_r1[lo]
        squares = self._index_r2[self.t] - self._index_r2[lo]
        return float(np.sqrt(max(squares / count - (total / count) ** 2, 0.0) * TRADING_DAYS))

    def _bench_value(self) -> float:
        return float(self.initial_value * self.bench_path[self.t])

    def _bench_weights(self) -> np.ndarray:
        if self._bench_cache[0] != self.t:
            values = self.bench_levels[self.t] * self._bench_units[self._segment[self.t]]
            self._bench_cache = (self.t, np.concatenate(
                [values / values.sum(), np.zeros(self.n_securities - self.n_assets)]))
        return self._bench_cache[1]

    def _portfolio_value(self) -> float:
        return self._weights()[1]

    def _weights(self) -> tuple[np.ndarray, float]:
        """Weights of every security in the account (cash is the rest) and its value, as of
        the last refresh of the lot features (after every price or ledger change)."""
        return self._weights_cache

    def _te(self, weights: np.ndarray) -> float:
        return self.risk.tracking_error(weights - self._bench_weights())

    def _after_tax_ratio(self) -> float:
        bench = self._bench_value()
        savings = self.savings_units * bench
        return (self._portfolio_value() + savings + self._accrued_saving()) / bench

    def _blocks(self, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """On ``day``: per security buy-blocked and sell-blocked; per sector the proxy row
        a harvest may park in (-1: none); per stock harvestable.

        Buying would wash a loss sale of the last 30 days; a name bought in the last 30
        days may not be sold while any of its lots is less than ``SELL_CUSHION`` above its
        basis (prices move before the order executes).
        """
        n, m = self.n_assets, self.n_securities
        buy_blocked, sell_blocked = np.empty(m, np.bool_), np.empty(m, np.bool_)
        park = np.empty(len(self.market.sector_names), np.int64)
        harvestable = np.empty(n, np.bool_)
        wash_blocks(day, self.ledger.last_loss_sale, self.ledger.last_buy, self.ledger.group,
                    self.features[:, 0], self.features[:n, 5], self.excluded,
                    np.isfinite(self.prices_all[self.t, :n]), self.market.sectors,
                    WASH_WINDOW_DAYS, SELL_CUSHION, buy_blocked, sell_blocked, park, harvestable)
        return buy_blocked, sell_blocked, park, harvestable

    def _refresh_features(self) -> None:
        lot_features(self.ledger.shares, self.ledger.basis, self.ledger.acq, self.ledger.used,
                     self.last_price, self.days[self.t], ANNIVERSARY, DAY_BASE, self.features)
        values = self.features[:, 7]
        total = float(values.sum()) + self.ledger.cash
        self._weights_cache = (values / total, total)

    def _observation(self) -> dict[str, np.ndarray]:
        n = self.n_assets
        day = self.days[self.t]
        weights, value = self._weights()
        assets = np.empty((n, len(ASSET_FEATURES)), np.float32)
        self.action_mask = self._blocks(day)[3]
        asset_observation(self.features, day, self.ledger.last_loss_sale, self.ledger.last_buy,
                          self.ledger.group, self.volatility, weights, self._bench_weights(),
                          self.excluded, np.isfinite(self.prices_all[self.t, :n]),
                          self.action_mask, WASH_WINDOW_DAYS, assets)
        short, long = self.ledger.realized(self.year)
        carry_short, carry_long = self.tracker.carry_with
        index_vol = self._index_vol()
        bench_value = self._bench_value()
        self.bench_peak = max(self.bench_peak, bench_value)
        portfolio = np.array([
            self._rates[0], self._rates[1], short / value, long / value,
            carry_short / value, carry_long / value,
            self.ex_ante_te / self.te_limit, max(0.0, 1.0 - self.ex_ante_te / self.te_limit),
            index_vol,
            bench_value / self.bench_peak - 1.0, (day - self._year_start) / 365.0,
            (self.end - self.t) / max(self.end - self.start, 1),
            weights[n:].sum(), self.ledger.cash / value, assets[:, 10].mean(),
        ], dtype=np.float32)
        return {"assets": assets, "portfolio": portfolio}

    def _info(self, *, tax_savings, harvested, disallowed, n_trades, guard, active) -> dict:
        return {
            "date": str(self.market.dates[self.t]),
            "tax_savings": float(tax_savings),
            "harvested_loss": float(harvested),
            "wash_sale_disallowed": float(disallowed),
            "ex_ante_te": float(self.decision_te),
            "te_held": float(self.ex_ante_te),
            "active_return": float(active),
            "n_trades": int(n_trades),
            "portfolio_value": self._portfolio_value(),
            "benchmark_value": self._bench_value(),
            "savings_account": self.savings_units * self._bench_value(),
            "guardrail_status": guard.status if guard is not None else "off",
            "guardrail_distance": float(guard.distance) if guard is not None else 0.0,
            "guardrail_reason": guard.reason if guard is not None else "",
            "action_mask": self.action_mask.copy(),
            **({"trades": list(self._trades)} if self.record_trades else {}),
        }

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        weights, value = self._weights()
        n = self.n_assets
        short, long = self.ledger.realized(self.year)
        lines = [
            f"{self.market.dates[self.t]}  value {value:,.0f}  benchmark {self._bench_value():,.0f}"
            f"  savings {self.savings_units * self._bench_value():,.0f}",
            f"  ex-ante TE {self.ex_ante_te:.2%} (limit {self.te_limit:.2%})  proxies "
            f"{weights[n:].sum():.1%}  cash {self.ledger.cash / value:.2%}",
            f"  {self.year} realized: short {short:,.0f}  long {long:,.0f}  lots "
            f"{int((self.ledger.shares > 0).sum())}  names at a loss "
            f"{int((self.features[:n, 5] > 0).sum())}/{n}",
        ]
        return "\n".join(lines) + "\n"
