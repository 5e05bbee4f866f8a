"""A trained PPO policy behind the :class:`~taxharvest.agents.base.Policy` interface.

A trained policy lives in one folder: ``model.zip`` (stable-baselines3), ``vecnormalize.pkl``
(frozen observation statistics of the ``portfolio`` key) and ``card.json`` (what it was
trained on; checked against the environment by :func:`load_policy`).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from taxharvest.agents.base import Decision
from taxharvest.agents.ppo.card import (
    CARD_FILE,
    HARVESTABLE,
    MODEL_FILE,
    NORMALIZER_FILE,
    CardLayout,
    check_card,
)
from taxharvest.envs import ASSET_FEATURES
from taxharvest.errors import InputError


class PPOPolicy:
    """A trained PPO model behind the :class:`~taxharvest.agents.base.Policy` interface.

    ``act`` selects the model's features (its card's layout), normalizes ``portfolio`` with
    the frozen training statistics and takes SB3's deterministic prediction: for a binary
    model, every stock whose harvest probability exceeds one half and the environment
    allows; for a preference model, the mean preferences (clipped to ``[0, 1]``; 0 where the
    environment would not harvest) and TE-budget share. Each stock it asks to harvest (a
    preference of at least one half) is explained with the features behind it.

    Args:
        model: the PPO model (its spaces match the environment it acts in).
        normalizer: the training ``VecNormalize`` (only its statistics are used).
        card: the model card, when loaded from a folder.
        layout: the card's layout (default: the whole observation).
    """

    def __init__(self, model: PPO, normalizer: VecNormalize, card: dict | None = None,
                 name: str = "ppo", layout: CardLayout | None = None) -> None:
        self.model = model
        self.normalizer = normalizer
        self.card = card or {}
        self.name = name
        self.layout = layout
        self.preferences = isinstance(model.action_space, spaces.Box)
        model.policy.set_training_mode(False)

    def reset(self) -> None:
        """Stateless between steps: nothing to reset."""

    def _distribution(self, observation: dict[str, np.ndarray]):
        if self.layout is not None:
            observation = self.layout.select(observation)
        obs_tensor, _ = self.model.policy.obs_to_tensor(self.normalizer.normalize_obs(observation))
        with th.no_grad():
            return self.model.policy.get_distribution(obs_tensor).distribution

    def probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """``(n,)`` harvest probability per stock (about 0 where not harvestable); for a
        preference model, the mean preference (clipped), the TE-budget share last."""
        distribution = self._distribution(observation)
        if self.preferences:
            return np.clip(distribution.mean.cpu().numpy().reshape(-1), 0.0, 1.0)
        return distribution.probs.cpu().numpy().reshape(-1)

    def act(self, observation: dict[str, np.ndarray], info: dict) -> Decision:
        assets = observation["assets"]
        allowed = np.asarray(info.get("action_mask", assets[:, HARVESTABLE] > 0.5), bool)
        probs = self.probabilities(observation)
        n = assets.shape[0]
        if self.preferences:
            action, te_budget = np.where(allowed, probs[:n], 0.0), float(probs[n])
        else:
            action, te_budget = ((probs > 0.5) & allowed).astype(np.int8), 1.0
        reasons = {int(i): _reason(probs[i], assets[i], self.preferences)
                   for i in np.flatnonzero(action >= 0.5)}
        return Decision(action=action, reasons=reasons, te_budget=te_budget)


def _reason(probability: float, row: np.ndarray, preference: bool) -> str:
    feature = dict(zip(ASSET_FEATURES, row.tolist(), strict=True))
    return (f"PPO {'preference' if preference else 'p'}={probability:.2f}: worst lot {feature['worst_lot_return']:+.1%}, "
            f"short-term share {feature['short_term_share']:.0%}, "
            f"vol {feature['volatility']:.0%}")


def load_policy(path: str | Path, env: gym.Env) -> PPOPolicy:
    """Load the policy in folder ``path`` for ``env`` (any number of assets).

    Checks ``card.json`` against this package and ``env`` first (:func:`check_card`); the SB3
    model is rebuilt for ``env``'s spaces and its shared weights loaded into it.
    """
    folder = Path(path)
    for name in (MODEL_FILE, NORMALIZER_FILE, CARD_FILE):
        if not (folder / name).is_file():
            raise InputError(f"not a trained policy folder: {name} is missing", path=folder)
    card_path = folder / CARD_FILE
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text file", path=card_path) from None
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON: {err.msg}", path=card_path, row=err.lineno) from err
    layout = check_card(card, env, card_path)
    observation_space, action_space = layout.space(env.unwrapped.n_assets)
    try:
        model = PPO.load(folder / MODEL_FILE, device="cpu", custom_objects={
            "observation_space": observation_space, "action_space": action_space})
    except Exception as err:  # any damage to the archive is the user's file, not a crash
        raise InputError(f"cannot load the model ({type(err).__name__})",
                         path=folder / MODEL_FILE) from None
    try:
        with open(folder / NORMALIZER_FILE, "rb") as handle:
            normalizer: VecNormalize = pickle.load(handle)
    except Exception as err:
        raise InputError(f"cannot load the normalizer ({type(err).__name__})",
                         path=folder / NORMALIZER_FILE) from None
    normalizer.training = False
    normalizer.norm_reward = False
    return PPOPolicy(model, normalizer, card=card, name=f"ppo:{folder.name}", layout=layout)
