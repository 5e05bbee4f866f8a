"""One interface for every harvester: rules and learned policies alike.

A policy sees only what the environment shows it (the observation and ``info``) and returns
a :class:`Decision`: its intent for the decision program (a harvest preference per stock and
the share of the TE budget this decision may spend) and, for each stock it asked to harvest,
a reason a person can read. Workflows (backtest, shadow, stress) treat every policy the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Decision:
    """What a policy decided at one step.

    Attributes:
        action: ``(n,)`` harvest preference per stock in ``[0, 1]`` (0: keep its losses; a
            binary action is the special case the rules use).
        reasons: stock index -> why it is harvested (the features that triggered it).
        te_budget: share ``(0, 1]`` of the TE limit this decision may use.
    """

    action: np.ndarray
    reasons: dict[int, str] = field(default_factory=dict)
    te_budget: float = 1.0

    @property
    def step_action(self) -> np.ndarray:
        """What ``env.step`` takes: the preferences, then the TE budget share when it is not
        the whole budget (:class:`~taxharvest.envs.direct_index.DirectIndexEnv`)."""
        if self.te_budget >= 1.0:
            return self.action
        return np.append(np.asarray(self.action, np.float32), np.float32(self.te_budget))


@runtime_checkable
class Policy(Protocol):
    """``act(observation, info) -> Decision``; ``reset()`` at the start of each episode."""

    name: str

    def reset(self) -> None: ...

    def act(self, observation: dict[str, np.ndarray], info: dict) -> Decision: ...
