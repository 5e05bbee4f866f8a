"""The PPO harvester: its network (shared across assets), the trained policy and its card.

``PerAssetPolicy`` must stay importable from here: the shipped ``model.zip`` files name
their policy class ``taxharvest.agents.ppo.PerAssetPolicy``.
"""

from taxharvest.agents.ppo.card import (
    CARD_ACTION_SPACES,
    CARD_FILE,
    CARD_FORMAT,
    HARVESTABLE,
    MODEL_FILE,
    NORMALIZER_FILE,
    check_card,
    observation_layout,
)
from taxharvest.agents.ppo.network import (
    MASKED_LOGIT,
    AssetSetExtractor,
    AssetSetHeads,
    PerAssetBernoulli,
    PerAssetGaussian,
    PerAssetPolicy,
)
from taxharvest.agents.ppo.policy import PPOPolicy, load_policy

__all__ = [
    "CARD_ACTION_SPACES", "CARD_FILE", "CARD_FORMAT", "HARVESTABLE", "MASKED_LOGIT", "MODEL_FILE", "NORMALIZER_FILE",
    "AssetSetExtractor", "AssetSetHeads", "PPOPolicy", "PerAssetBernoulli", "PerAssetGaussian",
    "PerAssetPolicy",
    "check_card", "load_policy", "observation_layout",
]
