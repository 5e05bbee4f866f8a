"""The ``taxharvest`` typer app and its commands, registered here in one list.

Each command module (one per command group) holds plain functions whose parameters are the
options; this module is the only one that knows the app, so nothing imports it back.
"""

from __future__ import annotations

import sys

import typer

from taxharvest.cli import (
    backtest,
    breakeven,
    evaluate,
    frontier,
    ledger,
    options,
    profile,
    report,
    shadow,
    stress,
    train,
)
from taxharvest.errors import InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts as written: threshold:X[@cadence], taxharvest[ray]
    help="Learned tax-loss harvesting for direct-indexed portfolios.",
)

COMMANDS = (  # in the order of ``taxharvest --help``
    ledger.ledger,
    report.demo,
    train.train,
    backtest.backtest,
    train.tune,
    evaluate.evaluate,
    shadow.shadow,
    stress.stress,
    train.sweep,
    breakeven.breakeven,
    frontier.frontier,
    report.report,
)
for command in COMMANDS:
    app.command()(options.checked_command(command))

profile_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                          help="Client tax profiles: print one as a file to start from.")
profile_app.command()(options.checked_command(profile.show))
app.add_typer(profile_app, name="profile")


@app.callback()
def _root() -> None:
    """Learned tax-loss harvesting for direct-indexed portfolios."""


def main() -> None:
    """Console entry point: runs the app, turning user mistakes into one line and exit 2:
    an :class:`InputError`, or a command line the parser refuses (a wrong type, a missing
    or unknown option), with the command's ``--help`` to see."""
    try:
        code = app(standalone_mode=False)
    except InputError as err:
        options.print_error(err)
        sys.exit(2)
    except typer.TyperException as err:  # the parser's (click's) errors
        if type(err).__name__ == "NoArgsIsHelpError":
            err.show()  # the help itself
        else:
            ctx = getattr(err, "ctx", None)
            where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            options.print_error(InputError(err.format_message() + where))
        sys.exit(err.exit_code)
    except typer.Abort:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
