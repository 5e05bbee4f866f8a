"""Gymnasium environments; importing this package registers ``taxharvest/DirectIndex-v0``."""

from gymnasium.envs.registration import register, registry

from taxharvest.envs.direct_index import ASSET_FEATURES, PORTFOLIO_FEATURES, DirectIndexEnv

ENV_ID = "taxharvest/DirectIndex-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="taxharvest.envs.direct_index:DirectIndexEnv")

__all__ = ["ASSET_FEATURES", "ENV_ID", "PORTFOLIO_FEATURES", "DirectIndexEnv"]
