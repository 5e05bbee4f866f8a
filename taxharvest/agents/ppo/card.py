"""The model card of a trained policy: the files of its folder, and what it was trained on,
checked against this package and the environment before the weights are loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium import spaces

import taxharvest
from taxharvest.envs import ASSET_FEATURES, ENV_ID, PORTFOLIO_FEATURES
from taxharvest.errors import InputError

CARD_FORMAT = 1
MODEL_FILE, NORMALIZER_FILE, CARD_FILE = "model.zip", "vecnormalize.pkl", "card.json"


def observation_layout() -> dict[str, list[str]]:
    """The feature names a card records and :func:`load_policy` compares."""
    return {"asset_features": list(ASSET_FEATURES),
            "portfolio_features": list(PORTFOLIO_FEATURES)}


def check_card(card: dict, env: gym.Env, path: str | Path) -> None:
    """Raise :class:`InputError` naming the first card field this package or ``env`` contradicts.

    The number of assets may differ (the weights are shared across assets).
    """
    expected: list[tuple[str, Any, Any]] = [
        ("format", card.get("format"), CARD_FORMAT),
        ("env.id", card.get("env", {}).get("id"), ENV_ID),
        ("env.version", card.get("env", {}).get("version"), taxharvest.__version__),
    ]
    layout = card.get("observation", {})
    expected += [(f"observation.{key}", layout.get(key), names)
                 for key, names in observation_layout().items()]
    expected.append(("action_space", card.get("action_space"), "MultiBinary"))
    for field, found, wanted in expected:
        if found != wanted:
            raise InputError(f"the model card says {found!r}, this taxharvest expects {wanted!r}",
                             path=path, field=field)
    space = env.observation_space
    if not isinstance(env.action_space, spaces.MultiBinary) or not isinstance(space, spaces.Dict):
        raise InputError(f"the environment's action space is {env.action_space}, the model "
                         "needs MultiBinary with a Dict observation", path=path, field="action_space")
    shapes = {key: space[key].shape[-1] for key in ("assets", "portfolio") if key in space.spaces}
    wanted_shapes = {"assets": len(ASSET_FEATURES), "portfolio": len(PORTFOLIO_FEATURES)}
    if shapes != wanted_shapes:
        raise InputError(f"the environment's observation has feature widths {shapes}, the model "
                         f"expects {wanted_shapes}", path=path, field="observation")
