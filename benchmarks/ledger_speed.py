"""Ledger replay throughput: 100,000 random trades over 500 tickers.

Prints trades per second for the batch replay (one kernel call, as `taxharvest ledger`
does), for one kernel call per trade, and for a plain-Python FIFO lot list without any
wash-sale logic, measured in the same run as the baseline.

    python benchmarks/ledger_speed.py [--trades 100000] [--tickers 500]
"""

from __future__ import annotations

import argparse
import time
from collections import deque

import numpy as np

from taxharvest.tax import kernel
from taxharvest.tax.calendar import to_day
from taxharvest.tax.ledger import Ledger, Trades


def random_trades(n_trades: int, n_tickers: int, seed: int = 0) -> Trades:
    rng = np.random.default_rng(seed)
    ticker = rng.integers(0, n_tickers, n_trades)
    day = to_day("2015-01-02") + np.sort(rng.integers(0, 3650, n_trades))
    price = np.round(np.exp(rng.normal(4.0, 0.5, n_trades)), 2)
    qty = rng.integers(1, 100, n_trades).astype(float)
    side = np.where(rng.random(n_trades) < 0.45, kernel.SELL, kernel.BUY)
    held = np.zeros(n_tickers)
    for i in range(n_trades):  # sells never exceed holdings
        if side[i] == kernel.SELL:
            qty[i] = min(qty[i], held[ticker[i]])
            if qty[i] == 0:
                side[i], qty[i] = kernel.BUY, 10.0
        held[ticker[i]] += qty[i] if side[i] == kernel.BUY else -qty[i]
    return Trades.of(ticker, day, side, qty, price)


def replay_batch(trades: Trades, tickers: list[str]) -> Ledger:
    ledger = Ledger(tickers)
    ledger.apply(trades)
    return ledger


def replay_per_trade(trades: Trades, tickers: list[str]) -> Ledger:
    ledger = Ledger(tickers)
    for i in range(len(trades)):
        ledger.apply(Trades(*(f[i:i + 1] for f in (trades.ticker, trades.day, trades.side,
                                                     trades.qty, trades.price, trades.lot))))
    return ledger


def plain_python_fifo(trades: Trades, tickers: list[str]) -> dict:
    """Baseline: FIFO lots as deques of [shares, basis per share], no wash sales."""
    lots: dict[int, deque] = {i: deque() for i in range(len(tickers))}
    realized = 0.0
    for t, side, q, p in zip(trades.ticker.tolist(), trades.side.tolist(),
                             trades.qty.tolist(), trades.price.tolist(), strict=True):
        if side == kernel.BUY:
            lots[t].append([q, p])
            continue
        while q > 1e-9:
            lot = lots[t][0]
            take = min(lot[0], q)
            realized += take * (p - lot[1])
            lot[0] -= take
            q -= take
            if lot[0] <= 1e-9:
                lots[t].popleft()
    return {"realized": realized}


def best_of(fn, *args, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--tickers", type=int, default=500)
    args = parser.parse_args()
    trades = random_trades(args.trades, args.tickers)
    tickers = [f"T{i:03d}" for i in range(args.tickers)]
    replay_batch(random_trades(100, args.tickers, seed=1), tickers)  # compile / load cache

    batch = best_of(replay_batch, trades, tickers)
    per_trade = best_of(replay_per_trade, trades, tickers, repeat=1)
    baseline = best_of(plain_python_fifo, trades, tickers)
    ledger = replay_batch(trades, tickers)
    n = len(trades)
    print(f"ledger replay, {n:,} trades over {args.tickers} tickers "
          f"({len(ledger.sales()['shares']):,} lot sales, "
          f"{ledger.sales()['wash_sale_disallowed'].astype(bool).sum():,} wash sales)")
    print(f"  batch kernel (lots + wash sales):      {n / batch:>12,.0f} trades/s")
    print(f"  one kernel call per trade:             {n / per_trade:>12,.0f} trades/s")
    print(f"  baseline, plain-Python FIFO, no wash:  {n / baseline:>12,.0f} trades/s")
    print(f"  ratio batch / baseline:                {baseline / batch:>12.1f}x")


if __name__ == "__main__":
    main()
