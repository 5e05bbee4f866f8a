"""``taxharvest report`` and ``taxharvest demo``: HTML pages of runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from taxharvest.cli import options
from taxharvest.cli.options import console
from taxharvest.errors import InputError


def report(
    run: Annotated[Path, typer.Argument(
        help="A JSON result: backtest, breakeven, comparison, evaluation, frontier, shadow, "
             "stress or sweep.")],
    out: Annotated[Path, typer.Option(help="The HTML file to write.")],
    title: Annotated[str | None, typer.Option(help="Page title.")] = None,
) -> None:
    """Render a run's JSON as a self-contained HTML report."""
    from taxharvest.report import render_report

    path = options.outputs({"out": out}, inputs=(run,), stdout=())["out"]
    try:
        document = json.loads(run.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror}", path=run) from None
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON: {err.msg}", path=run, row=err.lineno) from None
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text file", path=run) from None
    try:
        written = render_report(document, path, title=title)
    except InputError as err:
        raise InputError(err.message, path=run, field=err.field) from None
    console.print(f"Report: {written}")


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's outputs.")] = Path("runs/demo"),
) -> None:
    """Run the main job on the built-in synthetic market."""
    from taxharvest.workflows.demo import run_demo

    run_demo(out, console)
