"""One interface for every harvester: rules and learned policies alike.

A policy sees only what the environment shows it (the observation and ``info``) and returns
a :class:`Decision`: the ``MultiBinary`` action and, for each stock it chose to harvest, a
reason a person can read. Workflows (backtest, shadow, stress) treat every policy the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Decision:
    """What a policy decided at one step.

    Attributes:
        action: ``(n,)`` int8, 1 to harvest a stock's loss lots (the environment's action).
        reasons: stock index -> why it is harvested (the features that triggered it).
    """

    action: np.ndarray
    reasons: dict[int, str] = field(default_factory=dict)


@runtime_checkable
class Policy(Protocol):
    """``act(observation, info) -> Decision``; ``reset()`` at the start of each episode."""

    name: str

    def reset(self) -> None: ...

    def act(self, observation: dict[str, np.ndarray], info: dict) -> Decision: ...
