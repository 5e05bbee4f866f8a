"""`make demo`: the main job on the built-in synthetic market."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console

from taxharvest.io import csv_text, json_text, write_atomic
from taxharvest.tax.reporting import FORM_8949_COLUMNS, form_8949, sales_records, totals
from taxharvest.tax.trades import read_trades, replay


def example_trades(seed: int = 7, n_tickers: int = 20, years: int = 3) -> str:
    """A monthly loss-harvesting history over random-walk prices, as a trade CSV."""
    rng = np.random.default_rng(seed)
    months = np.arange(np.datetime64("2023-01"), np.datetime64("2023-01") + 12 * years)
    prices = 100 * np.exp(np.cumsum(rng.normal(0.005, 0.08, (len(months), n_tickers)), axis=0))
    lines = ["date,ticker,side,shares,price"]
    basis = np.full(n_tickers, np.nan)
    for m, month in enumerate(months):
        day = str(month.astype("datetime64[D]") + 2)
        for t in range(n_tickers):
            price = round(float(prices[m, t]), 2)
            if np.isnan(basis[t]):
                lines.append(f"{day},S{t:02d},buy,100,{price}")
                basis[t] = price
            elif price < 0.9 * basis[t]:  # harvest, then buy back next month: a wash sale
                lines.append(f"{day},S{t:02d},sell,100,{price}")
                basis[t] = np.nan
    return "\n".join(lines) + "\n"


def run_demo(out: Path, console: Console) -> None:
    out.mkdir(parents=True, exist_ok=True)
    trades_path = out / "trades.csv"
    write_atomic(trades_path, example_trades())
    ledger = replay(read_trades(trades_path))
    write_atomic(out / "ledger.json", json_text({"sales": sales_records(ledger),
                                                  "totals": totals(ledger)}))
    write_atomic(out / "form8949.csv", csv_text(form_8949(ledger), FORM_8949_COLUMNS))
    summary = totals(ledger)
    console.print(f"Replayed {trades_path}: {len(sales_records(ledger))} lot sales, "
                  f"wash sales disallowed {summary['wash_sale_disallowed']:,.2f}")
    console.print(f"Outputs in {out}/: ledger.json, form8949.csv")
