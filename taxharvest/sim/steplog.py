"""What a backtest's series do not keep, recorded step by step beside it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

DROPPED = ("action_mask",)  # per-step arrays the logs do not need


class StepLog(gym.Wrapper):
    """Keeps every ``info`` (reset first, without ``action_mask``) and, with ``probe``, a
    value computed from the unwrapped environment and its observation at each of them.

    Wrap the environment given to :func:`~taxharvest.sim.backtest.run_backtest`: the
    logs line up with the run's series, one entry per decision.

    Attributes:
        infos: the step infos.
        probes: ``probe(env.unwrapped, observation)`` at each of them (empty without probe).
    """

    def __init__(self, env: gym.Env, probe: Callable[[Any, dict], Any] | None = None) -> None:
        super().__init__(env)
        self.probe = probe
        self.infos: list[dict] = []
        self.probes: list = []

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self.infos, self.probes = [], []
        self._keep(observation, info)
        return observation, info

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._keep(observation, info)
        return observation, reward, terminated, truncated, info

    def _keep(self, observation: dict, info: dict) -> None:
        self.infos.append({k: v for k, v in info.items() if k not in DROPPED})
        if self.probe is not None:
            self.probes.append(self.probe(self.env.unwrapped, observation))
