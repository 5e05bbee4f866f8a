"""What the commands share: the console, option types, checks of option values, progress
and output.

Every argument and input file is checked before a run starts, so a mistake exits 2 with one
line naming the option (:class:`~taxharvest.errors.InputError`) and writes nothing;
outputs are written whole (atomically) after the run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from taxharvest.errors import InputError
from taxharvest.io import write_atomic
from taxharvest.market.universe import MarketData

console = Console()

PolicyOption = Annotated[str, typer.Option(
    help="hold | threshold:X[@cadence] | monthly-all | tuned | ppo:PATH")]
ProfileOption = Annotated[str, typer.Option(
    help="Tax profile: single-60k, mfj-250k, mfj-800k, mfj-800k-ca.")]
RayOption = Annotated[str | None, typer.Option(
    help="Run on Ray: auto (the cluster of `ray start`), local (a private instance) or a "
         "cluster ADDRESS; default: local processes.")]
WorkersOption = Annotated[int | None, typer.Option(
    help="Local worker processes (or CPUs of --ray local); default: all cores.")]
REBALANCE = ("monthly", "quarterly", "annual")


def progress() -> Progress:
    """A progress display on stderr, gone when done."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=True)


def progress_task(bar: Progress, description: str) -> Callable[[int, int], None]:
    """A new task on ``bar`` and its ``progress(done, total)`` callback."""
    task = bar.add_task(description, total=None)
    return lambda done, total: bar.update(task, completed=done, total=total)


def profile(name: str):
    """The tax profile preset ``name``."""
    from taxharvest.tax.law import get_profile

    try:
        return get_profile(name)
    except ValueError as err:
        raise InputError(str(err), field="profile") from None


def check(conditions: dict[str, bool], rule: str) -> None:
    """Raise for the first option whose condition fails (NaN fails every comparison)."""
    for name, ok in conditions.items():
        if not ok:
            raise InputError(f"out of range; need {rule}", field=name)


def cadence(value: str) -> str:
    """A decision cadence of the environment."""
    from taxharvest.envs.direct_index import CADENCE_DAYS

    if value not in CADENCE_DAYS:
        raise InputError(f"unknown cadence {value!r}; expected one of "
                         f"{', '.join(CADENCE_DAYS)}", field="cadence")
    return value


def output(path: str | Path | None, option: str) -> Path | None:
    """An output path whose folder exists (checked before the run), or None (or ``-``)."""
    if path is None or str(path) == "-":
        return None
    path = Path(path)
    if not path.parent.exists():
        raise InputError(f"output folder {path.parent} does not exist", field=option)
    return path


def write(text: str, path: Path | None, option: str | None) -> None:
    """``text`` to ``path`` (atomically), or to stdout when the option was ``-``."""
    if option == "-":
        sys.stdout.write(text)
    elif path is not None:
        write_atomic(path, text)


def exclusions(text: str | None, mk: MarketData) -> list[str]:
    """``--exclude`` items (tickers and ``sector:NAME``), each known to the market."""
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    sectors = {s.lower() for s in mk.sector_names}
    tickers = {t.upper() for t in mk.tickers}
    for item in items:
        if item.lower().startswith("sector:"):
            if item.split(":", 1)[1].strip().lower() not in sectors:
                raise InputError(f"unknown sector in {item!r}; sectors are "
                                 f"{', '.join(mk.sector_names)}", field="exclude")
        elif item.upper() not in tickers:
            raise InputError(f"unknown ticker {item!r} (not in the market)", field="exclude")
    return items
