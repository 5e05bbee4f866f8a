"""Shared test settings."""

from __future__ import annotations

import os
from pathlib import Path

# The real S&P 500 development data lives beside the project, never inside it; tests that
# read it skip when it is absent.
SP500_DIR = Path(os.environ.get(
    "TAXHARVEST_SP500_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sp500"))
