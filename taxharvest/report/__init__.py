"""Reports: one self-contained HTML page per run, plots embedded.

The report reads run JSON only (what the commands write), never the simulation: a document
is recognized by its top-level ``kind`` and its sections are built by the module of that
kind, all on the one page of :mod:`taxharvest.report.page`. A document missing what its
kind needs, or whose content is damaged (a value of the wrong type or shape), raises
:class:`~taxharvest.errors.InputError` naming the field where it can.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from taxharvest.errors import InputError
from taxharvest.report import backtest, breakeven, evaluation, frontier, shadow, stress, sweep
from taxharvest.report.backtest import runs_of
from taxharvest.report.page import need, write_page

# kind -> (sections of the page, keys the document needs, default title); a document of
# any other kind is a backtest or a comparison of backtests (``runs_of`` says which).
KINDS: dict[str, tuple[Callable[[dict], list[str]], tuple[str, ...], str]] = {
    "stress": (stress.sections, ("config", "headline", "summary", "results"),
               "Crash stress test"),
    "shadow": (shadow.sections, ("mode", "config"), "Shadow run"),
    "sweep": (sweep.sections, ("config", "summary", "results"), "PPO sweep"),
    "evaluation": (evaluation.sections, ("rows", "summary"), "Policy evaluation"),
    "breakeven": (breakeven.sections, ("config", "summary", "break_even"), "Fee break-even"),
    "frontier": (frontier.sections, ("config", "rows"), "Tax alpha against tracking error"),
}
BACKTEST = (backtest.sections, (), "taxharvest report")


def render_report(document: dict, out: str | Path, *, title: str | None = None) -> Path:
    """Write the HTML report of ``document`` to ``out`` (written whole or not at all)."""
    kind = document.get("kind") if isinstance(document, dict) else None
    if kind is not None and (not isinstance(kind, str) or kind not in ("comparison", *KINDS)):
        raise InputError(f"unknown document kind {kind!r}; the report reads backtests and "
                         f"{', '.join(('comparison', *KINDS))}", field="kind")
    render, keys, default = KINDS.get(kind, BACKTEST)
    if keys:
        need(document, keys, kind)
    try:
        body = render(document)
        title = str(title or document.get("title") or default)
    except InputError:
        raise
    except KeyError as err:
        raise InputError(f"the {kind or 'backtest'} document is damaged: no {err.args[0]!r} "
                         "where the report needs one", field=str(err.args[0])) from None
    except (TypeError, ValueError, AttributeError, IndexError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"the {kind or 'backtest'} document is damaged: a value of the wrong "
                         f"type or shape ({detail})") from None
    return write_page(title, [f"<h1>{html.escape(title)}</h1>", *body], out)


__all__ = ["KINDS", "render_report", "runs_of"]
