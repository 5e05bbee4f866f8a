"""``taxharvest ledger``: a trade history replayed with lot-level tax accounting."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from taxharvest.cli import options
from taxharvest.cli.options import console
from taxharvest.errors import InputError


class Relief(str, Enum):
    fifo = "fifo"
    hifo = "hifo"


def ledger(
    trades: Annotated[Path, typer.Argument(help="CSV with date,ticker,side,shares,price[,lot_id].")],
    lots: Annotated[Relief, typer.Option(help="Lot relief for sells without a lot_id.")] = Relief.fifo,
    json_out: Annotated[
        str | None, typer.Option("--json", help="Write sales, open lots and totals as JSON (- for stdout).")
    ] = None,
    form8949: Annotated[
        Path | None, typer.Option("--form8949", help="Write Form 8949 rows as CSV.")
    ] = None,
    equivalent: Annotated[
        list[str] | None,
        typer.Option(help="Substantially identical tickers, comma-separated (repeatable): GOOG,GOOGL."),
    ] = None,
) -> None:
    """Replay a trade history with lot-level tax accounting and wash sales."""
    from taxharvest.io import csv_text, json_text
    from taxharvest.tax.reporting import FORM_8949_COLUMNS, form_8949, sales_records, totals
    from taxharvest.tax.trades import read_trades, replay

    out = options.outputs({"json": json_out, "form8949": form8949}, inputs=(trades,))
    groups = [list(dict.fromkeys(t.strip().upper() for t in g.split(",") if t.strip()))
              for g in equivalent or []]
    for group in groups:
        if len(group) < 2:
            raise InputError(f"an equivalence group needs two or more tickers, got "
                             f"{','.join(group) or 'none'}", field="equivalent")
    book = replay(read_trades(trades), relief=lots.value, equivalents=groups)
    summary = totals(book)
    if json_out is not None:
        lots_out = [
            {k: lot[k] for k in ("ticker", "shares", "date_acquired", "cost_basis")}
            for lot in book.open_lots()
        ]
        options.write(json_text({"sales": sales_records(book), "open_lots": lots_out,
                                 "totals": summary}), out["json"], json_out)
    if form8949 is not None:
        options.write(csv_text(form_8949(book), FORM_8949_COLUMNS), out["form8949"], None)
    if json_out is None:
        _print_summary(summary, len(book.sales()["shares"]), len(book.open_lots()))


def _print_summary(summary: dict, n_sales: int, n_open: int) -> None:
    table = Table(title=f"Realized gains ({n_sales} lot sales, {n_open} open lots)")
    for column in ("year", "short-term gain", "long-term gain", "wash sale disallowed"):
        table.add_column(column, justify="right")
    rows = {**summary["by_year"], "total": summary}
    for year, block in rows.items():
        table.add_row(
            year,
            *(_cents(block[key]) for key in ("short_term_gain", "long_term_gain",
                                               "wash_sale_disallowed")),
        )
    console.print(table)


def _cents(value: float) -> str:
    """Dollars to the cent, a rounding remainder shown as 0.00 (not -0.00)."""
    return f"{round(value, 2) + 0.0:,.2f}"
