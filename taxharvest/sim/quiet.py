"""Quieting the guardrail's log for runs that count its interventions instead."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

GUARDRAIL_LOGGER = "taxharvest.guardrails"


@contextlib.contextmanager
def quiet_guardrail() -> Iterator[None]:
    """Silence the guardrail's per-decision projection messages below ERROR (every relaxation
    is logged as a warning; a run's measures and step infos count them); the logger's level
    is restored on exit.

    Worker functions (local processes, Ray) enter it themselves: a worker does not inherit
    the caller's logging set-up.
    """
    logger = logging.getLogger(GUARDRAIL_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
