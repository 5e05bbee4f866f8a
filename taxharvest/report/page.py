"""The one report page every run kind is written on: a self-contained HTML file, plots
embedded as PNG, tables as HTML, nothing fetched; and the pieces every section uses
(formatting, tables, figures, axes)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from taxharvest.errors import InputError  # noqa: E402
from taxharvest.io import write_atomic  # noqa: E402

COLORS = ("#1f5fa8", "#d9822b", "#2f9e44", "#c2255c", "#7048e8", "#0c8599")


def write_page(title: str, sections: list[str], out: str | Path) -> Path:
    """The report page (``title``, the HTML ``sections``) written whole to ``out``."""
    out = Path(out)
    write_atomic(out, _PAGE.format(title=html.escape(title), body="\n".join(sections)))
    return out


def fmt(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if kind == "pct":
        return f"{value + 0.0:.2%}".replace("-0.00%", "0.00%")
    if kind == "money":
        return f"{value:,.0f}"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:.2f}"


def need(block: object, keys: Sequence[str], where: str) -> None:
    if not isinstance(block, dict):
        raise InputError(f"{where} must be a JSON object", field=where)
    for key in keys:
        if key not in block:
            raise InputError(f"{where} has no {key!r}", field=key)


def table(head: Sequence[str], rows: Sequence[Sequence[str]], small: bool = False) -> str:
    """An HTML table of already formatted cells (escaped here); first column left-aligned."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join((f"<th class='label'>{html.escape(str(c))}</th>" if i == 0 else
                          f"<td>{html.escape(str(c))}</td>") for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table{' class=small' if small else ''}><tr>{th}</tr>{body}</table>"


def figure(heading: str, draw: Callable, data, rows: int = 1) -> str:
    return (f"<h2>{html.escape(heading)}</h2>"
            f'<img src="{plot(draw, data, rows=rows)}" alt="{html.escape(heading)}">')


def meta(config: dict, keys: Sequence[str]) -> str:
    parts = [f"{k}: {config[k]}" for k in keys if config.get(k) not in (None, [], "")]
    return f"<p class='meta'>{html.escape(' · '.join(parts))}</p>"


def date_axis(ax) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def plot(draw: Callable, runs: dict[str, dict], rows: int = 1) -> str:
    fig, axes = plt.subplots(rows, 1, figsize=(10, 3.6 * rows), squeeze=False)
    for ax in axes[:, 0]:
        ax.grid(alpha=0.3)
    draw(axes[:, 0] if rows > 1 else axes[0, 0], runs)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def years_axis(ax) -> None:
    ax.xaxis.set_major_locator(mdates.YearLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto;
       color: #222; padding: 0 1em; }}
h1 {{ font-size: 1.6em; margin-bottom: 0.2em; }}
h2 {{ font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }}
.meta, .note {{ color: #555; font-size: 0.9em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }}
th.label {{ text-align: left; font-weight: normal; }}
table.small {{ font-size: 0.8em; margin: 0 1.5em 1em 0; }}
caption {{ text-align: left; font-weight: bold; padding-bottom: 4px; }}
.tables {{ display: flex; flex-wrap: wrap; align-items: flex-start; }}
img {{ max-width: 100%; }}
</style></head>
<body>
{body}
</body></html>
"""
