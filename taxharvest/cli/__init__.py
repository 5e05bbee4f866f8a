"""The ``taxharvest`` command: thin, parses options and delegates to the workflows; user
mistakes exit 2 with one line."""

from taxharvest.cli.commands import app, main

__all__ = ["app", "main"]
