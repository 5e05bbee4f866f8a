"""``taxharvest profile show``: a client tax profile as a file to start from."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from taxharvest.cli import options


def show(
    name: Annotated[str, typer.Argument(
        help="A preset (single-60k, mfj-250k, mfj-800k, mfj-800k-ca) or a profile file.")],
) -> None:
    """Print a tax profile in the file format of --profile FILE (a template to edit)."""
    from taxharvest.tax.law import profile_yaml

    tax_profile = options.profile(name)
    header = (f"Tax profile, printed by `taxharvest profile show {name}`. Edit it (rename it\n"
              "too) and pass it as --profile FILE; a field left out takes its default.\n"
              "Dollars a year (250_000 reads as 250000), rates as fractions (0.133).")
    sys.stdout.write(profile_yaml(tax_profile, header=header))
