"""``python -m taxharvest``: the same as the ``taxharvest`` command."""

from taxharvest.cli import main

main()
