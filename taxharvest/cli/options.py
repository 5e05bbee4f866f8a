"""What the commands share: the consoles, option types, checks of option values and
outputs, progress and the market of the ``--prices`` options.

Every argument, input file and output path is checked before a run starts, so a mistake
exits 2 with one line naming the option (:class:`~taxharvest.errors.InputError`) and writes
nothing; outputs are written whole (atomically) after the run. Text is printed without
rich markup (:data:`console`, :data:`stderr`): paths, policy names and messages such as
``pip install 'taxharvest[ray]'`` appear exactly as written.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from taxharvest.errors import InputError
from taxharvest.io import check_output, write_atomic
from taxharvest.market.universe import MarketData

console = Console(markup=False)  # results (stdout)
stderr = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)  # notes, errors

PolicyOption = Annotated[str, typer.Option(
    help="hold | threshold:X[@cadence] | monthly-all | tuned | optimizer | ppo:PATH")]
PROFILE_HELP = ("Tax profile: single-60k, mfj-250k, mfj-800k, mfj-800k-ca, or a YAML file "
                "(`taxharvest profile show NAME` prints one).")
ProfileOption = Annotated[str, typer.Option(help=PROFILE_HELP)]
RayOption = Annotated[str | None, typer.Option(
    help="Run on Ray: auto (the cluster of `ray start`), local (a private instance) or a "
         "cluster ADDRESS; default: local processes.")]
WorkersOption = Annotated[int | None, typer.Option(
    help="Local worker processes (or CPUs of --ray local); default: all cores.")]
StrictDataOption = Annotated[bool, typer.Option(
    "--strict-data", help="Refuse --prices data whose raw and adjusted prices disagree on a "
                          "day (an inferred split or distribution) instead of inferring it.")]
MaxGapOption = Annotated[int | None, typer.Option(
    "--max-gap-days", min=0, help="Fill a ticker's runs of missing --prices days up to this "
    "long with its last price (a trading halt; default 5); a longer gap is an error.")]
ContributionsOption = Annotated[str | None, typer.Option(
    help="Deposits: AMOUNT/PERIOD or PERCENT%/PERIOD, PERIOD month, quarter or year "
         "(e.g. 5000/month); invested toward the benchmark.")]
WithdrawalsOption = Annotated[str | None, typer.Option(
    help="Withdrawals, as --contributions (e.g. 2%/year); sold tax-aware.")]
CashFlowsOption = Annotated[Path | None, typer.Option(
    help="Dated cash flows: CSV date,amount (positive deposits, negative withdrawals).")]
MaxGainOption = Annotated[float | None, typer.Option(
    help="Transition of a legacy book: net gain it may realize per calendar year, in dollars "
         "(the TE limit is relaxed, with its cause, where the budget cannot reach it).")]
GlideOption = Annotated[float, typer.Option(
    help="Transition: years over which the TE bound falls from the starting book's TE to "
         "--te-limit (decisions above the limit report relaxed: glide path).")]
REBALANCE = ("monthly", "quarterly", "annual")
ACTION_LABELS = {  # corporate-action kind -> (one, many), for the terminal count
    "split": ("split", "splits"),
    "distribution": ("distribution", "distributions"),
    "distribution-recorded-as-dividend": ("large dividend read as a distribution",
                                          "large dividends read as distributions"),
}


def print_error(error: InputError) -> None:
    """The one line of a user mistake, on stderr."""
    stderr.print(Text.assemble(("error: ", "bold red"), str(error)))


_NOTES: list[str] = []


def note(text: str) -> None:
    """A note on the run (the corporate actions found, the warm-up), printed on stderr once
    the command has succeeded (so that an error stays the only line, and ``--json -``
    clean)."""
    _NOTES.append(text)


def checked_command(command: Callable) -> Callable:
    """``command`` refusing NaN and infinity in its float options (typer parses ``nan`` and
    ``inf``), naming the option, and printing its notes when it succeeds; every command is
    registered through it."""
    @functools.wraps(command)
    def checked(**values):
        _NOTES.clear()
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise InputError(f"must be a finite number, got {value}",
                                 field=name.replace("_", "-"))
        result = command(**values)
        for text in _NOTES:
            stderr.print(text)
        _NOTES.clear()
        return result

    return checked


def progress() -> Progress:
    """A progress display on stderr, gone when done."""
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=stderr, transient=True,
                    disable=not stderr.is_terminal)


def progress_task(bar: Progress, description: str) -> Callable[[int, int], None]:
    """A new task on ``bar`` and its ``progress(done, total)`` callback."""
    task = bar.add_task(description, total=None)
    return lambda done, total: bar.update(task, completed=done, total=total)


def profile(name: str):
    """The tax profile of ``--profile``: a preset name or a YAML profile file."""
    from taxharvest.tax.law import get_profile

    try:
        return get_profile(name)
    except InputError:
        raise
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
    """An output path that can be written (checked before the run: :func:`check_output`),
    or None (also for ``-``, stdout)."""
    if path is None or str(path) == "-":
        return None
    return check_output(path, option)


def outputs(paths: dict[str, str | Path | None], inputs: Iterable[Path | None] = (),
            stdout: Iterable[str] = ("json",)) -> dict[str, Path | None]:
    """Every output of a command (option -> path), each checked by :func:`output` before
    anything runs or is written; no two the same file, none one of the command's
    ``inputs``; ``-`` (stdout, None here) only for the options of ``stdout``."""
    checked, seen = {}, {}
    given = {Path(p).resolve(): p for p in inputs if p is not None}
    for option, value in paths.items():
        if value is not None and str(value) == "-" and option not in stdout:
            raise InputError("cannot go to stdout (-); give a file", field=option)
        path = checked[option] = output(value, option)
        if path is None:
            continue
        key = path.resolve()
        if key in seen:
            raise InputError(f"--{seen[key]} already writes this file", path=path, field=option)
        if key in given:
            raise InputError("is an input of this command; give another output file",
                             path=path, field=option)
        seen[key] = option
    return checked


def write(text: str, path: Path | None, option: str | Path | None) -> None:
    """``text`` to ``path`` (atomically), or to stdout when the option was ``-``."""
    if option is not None and str(option) == "-":
        sys.stdout.write(text)
    elif path is not None:
        write_atomic(path, text)


def exclusions(text: str | None, mk: MarketData) -> list[str]:
    """``--exclude`` items (tickers and ``sector:NAME``), each known to the market, once."""
    items = list(dict.fromkeys(item.strip() for item in (text or "").split(",") if item.strip()))
    sectors = {s.lower() for s in mk.sector_names}
    tickers = {t.upper() for t in mk.tickers}
    for item in items:
        if item.lower().startswith("sector:"):
            if item.split(":", 1)[1].strip().lower() not in sectors:
                raise InputError(f"unknown sector in {item!r}; sectors are "
                                 f"{', '.join(mk.sector_names)}", field="exclude")
        elif item.upper() not in tickers:
            raise InputError(f"unknown ticker {item!r} (not in the market)", field="exclude")
    from taxharvest.envs.world import exclusion_mask

    if exclusion_mask(mk, items).all():
        raise InputError("excludes every stock of the market; nothing is left to hold",
                         field="exclude")
    return items


def transition(max_gain: float | None, te_glide_years: float) -> dict:
    """The environment's transition settings, checked (``--max-gain``, ``--te-glide-years``)."""
    check({"max-gain": max_gain is None or (math.isfinite(max_gain) and max_gain >= 0),
           "te-glide-years": math.isfinite(te_glide_years) and 0 <= te_glide_years <= 100},
          "max-gain >= 0 dollars, 0 <= te-glide-years <= 100")
    return {"max_gain": max_gain, "te_glide_years": te_glide_years}


def only_with(other: str, present: bool, given: dict[str, object]) -> None:
    """Refuse any option of ``given`` (name -> value, None or False when not given) that
    applies only with ``--other`` when that is absent."""
    for name, value in given.items():
        if not present and value is not None and value is not False:
            raise InputError(f"--{name} applies only with --{other}", field=name)


def rebalance(value: str | None) -> str | None:
    """A benchmark reconstitution period, or None (buy-and-hold)."""
    if value is not None and value not in REBALANCE:
        raise InputError(f"unknown --rebalance {value!r}; expected {', '.join(REBALANCE)}",
                         field="rebalance")
    return value


def market(prices: Path | None, sectors: Path | None, spec: str | None = None,
           assets: int | None = None, years: float | None = None, *,
           strict_data: bool = False, max_gap_days: int | None = None
           ) -> tuple[MarketData, int]:
    """The market of the ``--prices/--sectors/--market/--assets/--years/--strict-data/
    --max-gap-days`` options (:func:`~taxharvest.workflows.markets.market_from_options`)."""
    from taxharvest.workflows.markets import market_from_options

    only_with("prices", prices is not None,
              {"strict-data": strict_data, "max-gap-days": max_gap_days})
    return market_from_options(prices, sectors, spec, assets, years, strict_data=strict_data,
                               max_gap_days=max_gap_days)


def real_paths(mk: MarketData, start: str | None, starts: int | None = None,
               rebalance: str | None = None) -> list:
    """A command's real-data paths (:func:`~taxharvest.workflows.evaluate.real_paths`): the
    first decided from ``--start`` (default: after the warm-up), ``--starts`` of them, the
    data's notes printed."""
    from taxharvest.workflows.evaluate import real_paths as paths
    from taxharvest.workflows.markets import window

    out = paths(mk, window(mk, start, None)[1], 1 if starts is None else starts, rebalance)
    window_note(out[0].market, out[0].start)
    return out


def window_note(mk: MarketData, first: str | None = None) -> None:
    """Notes on the data a run sees: the corporate actions the loader inferred in them (real
    data; listed in a backtest's JSON) and, from ``first``, the days the book only holds
    while the risk model warms up."""
    from taxharvest.market import corporate_action_summary
    from taxharvest.market.risk import WARMUP_DAYS
    from taxharvest.workflows.markets import decisions_from

    counts = corporate_action_summary(mk)
    if counts:
        note(f"corporate actions inferred from {mk.dates[0]} to {mk.dates[-1]}: " + ", ".join(
            f"{n} {ACTION_LABELS.get(kind, (kind, kind))[n != 1]}" for kind, n in counts.items()))
    if first is not None and decisions_from(mk, first) != first:
        note(f"the risk model warms up on {WARMUP_DAYS} trading days of returns: from {first} "
             f"the book holds (cash invested, no harvest, no guardrail); decisions from "
             f"{decisions_from(mk, first)}")


def policy(spec: str, profile, option: str = "policy", env=None):
    """The policy of ``spec`` (:func:`~taxharvest.agents.registry.make_policy`), checked before
    the run: a ``ppo:PATH`` folder is loaded (for ``env``, or for a small environment of
    the same spaces), so a missing or damaged file is one line. Errors name ``option``."""
    from taxharvest.agents.registry import make_policy

    trained = spec.strip().startswith("ppo:")
    if env is None and trained:
        from taxharvest.envs.direct_index import DirectIndexEnv

        env = DirectIndexEnv(n_assets=11, profile=profile)
    try:
        return make_policy(spec, profile, env)
    except InputError as err:
        raise InputError(err.message, path=err.path, row=err.row,
                         field=option if err.field in (None, "policy") else err.field) from None
    except Exception as err:  # a damaged model file: whatever its loader raised
        if not trained:
            raise
        detail = str(err).splitlines()[0] if str(err) else ""
        raise InputError(f"cannot load the trained policy: {type(err).__name__}"
                         + (f": {detail}" if detail else ""),
                         path=spec.strip().partition(":")[2], field=option) from None
