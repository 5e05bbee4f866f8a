"""The model card of a trained policy: the files of its folder, and what it was trained on,
checked against this package and the environment before the weights are loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

import taxharvest
from taxharvest.envs import ASSET_FEATURES, ENV_ID, PORTFOLIO_FEATURES
from taxharvest.envs.direct_index import action_space, observation_space
from taxharvest.errors import InputError

CARD_FORMAT = 1
HARVESTABLE = ASSET_FEATURES.index("harvestable")  # the mask the network reads
MODEL_FILE, NORMALIZER_FILE, CARD_FILE = "model.zip", "vecnormalize.pkl", "card.json"


CARD_ACTION_SPACES = {"binary": "MultiBinary", "preference": "Box"}  # action -> card's name


def observation_layout() -> dict[str, list[str]]:
    """The feature names a card records and :func:`load_policy` compares."""
    return {"asset_features": list(ASSET_FEATURES),
            "portfolio_features": list(PORTFOLIO_FEATURES)}


@dataclass(frozen=True)
class CardLayout:
    """What a model reads and how it acts, from its card: the columns of the environment's
    ``assets`` and ``portfolio`` it was trained on (a model trained before features were
    added reads its own), and its action type (``binary`` or ``preference``)."""

    assets: np.ndarray
    portfolio: np.ndarray
    action: str

    def space(self, n: int) -> tuple[spaces.Dict, spaces.Space]:
        """The model's observation and action spaces for ``n`` stocks."""
        return (observation_space(n, len(self.assets), len(self.portfolio)),
                action_space(n, self.action))

    def select(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's view of an environment observation."""
        return {"assets": observation["assets"][..., self.assets],
                "portfolio": observation["portfolio"][..., self.portfolio]}


def check_card(card: dict, env: gym.Env, path: str | Path) -> CardLayout:
    """The layout of ``card``, or :class:`InputError` naming the first card field this package
    or ``env`` contradicts.

    The number of assets may differ (the weights are shared across assets); the card's
    features must all be in this package's observation, the mask (``harvestable``) where the
    network reads it.
    """
    expected: list[tuple[str, Any, Any]] = [
        ("format", card.get("format"), CARD_FORMAT),
        ("env.id", card.get("env", {}).get("id"), ENV_ID),
        ("env.version", card.get("env", {}).get("version"), taxharvest.__version__),
    ]
    for field, found, wanted in expected:
        if found != wanted:
            raise InputError(f"the model card says {found!r}, this taxharvest expects {wanted!r}",
                             path=path, field=field)
    actions = {name: action for action, name in CARD_ACTION_SPACES.items()}
    found = card.get("action_space")
    if found not in actions:
        raise InputError(f"the model card says {found!r}, this taxharvest expects one of "
                         f"{', '.join(actions)}", path=path, field="action_space")
    space = env.observation_space
    if not isinstance(space, spaces.Dict):
        raise InputError(f"the environment's observation is {space}, the model needs a Dict",
                         path=path, field="observation")
    shapes = {key: space[key].shape[-1] for key in ("assets", "portfolio") if key in space.spaces}
    wanted_shapes = {"assets": len(ASSET_FEATURES), "portfolio": len(PORTFOLIO_FEATURES)}
    if shapes != wanted_shapes:
        raise InputError(f"the environment's observation has feature widths {shapes}, the model "
                         f"expects {wanted_shapes}", path=path, field="observation")
    layout = card.get("observation", {})
    columns = []
    for key, names in observation_layout().items():
        wanted = layout.get(key)
        field = f"observation.{key}"
        if not isinstance(wanted, list) or len(set(map(str, wanted))) != len(wanted) or not wanted:
            raise InputError("not a list of distinct feature names", path=path, field=field)
        unknown = [name for name in wanted if name not in names]
        if unknown:
            raise InputError(f"the model card reads {unknown!r}, not features of this "
                             "taxharvest's observation", path=path, field=field)
        columns.append(np.array([names.index(name) for name in wanted]))
    asset_features = layout["asset_features"]
    if len(asset_features) <= HARVESTABLE or asset_features[HARVESTABLE] != "harvestable":
        raise InputError(f"the model card's asset feature {HARVESTABLE} is not 'harvestable' "
                         "(the mask the network reads)", path=path, field="observation.asset_features")
    return CardLayout(columns[0], columns[1], actions[found])
