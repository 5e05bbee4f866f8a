"""The PPO network, shared across assets, so one policy serves any universe.

Every stock's row of ``assets`` goes through the same small MLP; the book-level context (an
MLP of ``portfolio`` with mean and max pooling over the stock embeddings) is appended to each
row; the same per-asset head turns each row into its action. No parameter depends on the number
of stocks: a policy trained on 64 names runs a 500-name book.

Two actions, as the environment offers them. ``MultiBinary(n)``: one Bernoulli logit per
stock; stocks the environment would not harvest (``harvestable == 0``) get a logit of
:data:`MASKED_LOGIT`, in rollouts and in training alike, so the policy puts no probability on
them. ``Box(0, 1, (n + 1,))`` (preferences): a Gaussian per stock (the mean from its row) and
one for the TE-budget share (the mean of the rows' second output), two learned standard
deviations (stocks, budget); the environment clips to ``[0, 1]``. Masked stocks' entries
add nothing to the log-probability or the entropy: the one reward is not credited to
choices the environment ignores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    DiagGaussianDistribution,
    Distribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from torch.distributions import Normal

from taxharvest.agents.ppo.card import HARVESTABLE

MASKED_LOGIT = -30.0  # sigmoid(-30) ~ 1e-13: no probability, yet finite log-probabilities


def _mlp(in_dim: int, arch: Sequence[int], activation_fn: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in arch:
        layers += [nn.Linear(in_dim, width), activation_fn()]
        in_dim = width
    return nn.Sequential(*layers)


class AssetSetExtractor(BaseFeaturesExtractor):
    """Observation -> per-asset features ``(batch, n, features_dim)``.

    Row ``i`` is stock ``i``'s embedding (a shared MLP of its 12 features) beside the book's
    context: an MLP of ``[portfolio embedding, mean and max of the stock embeddings]``.
    ``features_dim`` is the width of one row; the parameters do not depend on ``n``.

    Args:
        observation_space: the environment's ``Dict`` space (``assets``, ``portfolio``).
        asset_arch: hidden widths of the per-asset MLP (the last is the embedding width).
        context_dim: width of the pooled context.
        activation_fn: activation after every layer.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        asset_arch: Sequence[int] = (64, 64),
        context_dim: int = 64,
        activation_fn: type[nn.Module] = nn.Tanh,
    ) -> None:
        super().__init__(observation_space, features_dim=asset_arch[-1] + context_dim)
        n_asset = observation_space["assets"].shape[-1]
        n_portfolio = observation_space["portfolio"].shape[-1]
        embed = asset_arch[-1]
        self.asset_net = _mlp(n_asset, asset_arch, activation_fn)
        self.portfolio_net = _mlp(n_portfolio, (context_dim,), activation_fn)
        self.context_net = _mlp(context_dim + 2 * embed, (context_dim,), activation_fn)

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        embedded = self.asset_net(observations["assets"])  # (B, n, E)
        pooled = th.cat([self.portfolio_net(observations["portfolio"]),
                         embedded.mean(dim=1), embedded.amax(dim=1)], dim=-1)
        context = self.context_net(pooled)  # (B, C)
        return th.cat([embedded, context.unsqueeze(1).expand(-1, embedded.shape[1], -1)], dim=-1)


class AssetSetHeads(nn.Module):
    """The ``mlp_extractor``: the actor maps every row alike, the critic reads the pooled rows.

    ``forward_actor`` -> ``(batch, n, latent_dim_pi)``; ``forward_critic`` -> ``(batch,
    latent_dim_vf)`` from the mean row, i.e. ``[mean stock embedding, context]``.
    """

    def __init__(self, features_dim: int, net_arch: dict[str, list[int]],
                 activation_fn: type[nn.Module]) -> None:
        super().__init__()
        self.policy_net = _mlp(features_dim, net_arch["pi"], activation_fn)
        self.value_net = _mlp(features_dim, net_arch["vf"], activation_fn)
        self.latent_dim_pi = net_arch["pi"][-1] if net_arch["pi"] else features_dim
        self.latent_dim_vf = net_arch["vf"][-1] if net_arch["vf"] else features_dim

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        return self.policy_net(features)

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.value_net(features.mean(dim=1))


class PerAssetBernoulli(BernoulliDistribution):
    """SB3's Bernoulli distribution whose logit layer maps one asset's latent to one logit."""

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:
        return nn.Linear(latent_dim, 1)


class PerAssetGaussian(DiagGaussianDistribution):
    """Gaussian preferences per stock and a TE-budget share, masked, weights shared across
    stocks: the action layer maps one row's latent to two outputs (the stock's mean, its
    contribution to the budget's mean); ``log_std`` holds two entries (stocks, budget)."""

    def proba_distribution_net(self, latent_dim: int, log_std_init: float = 0.0
                               ) -> tuple[nn.Module, nn.Parameter]:
        return nn.Linear(latent_dim, 2), nn.Parameter(th.full((2,), float(log_std_init)))

    def masked(self, outputs: th.Tensor, log_std: th.Tensor, mask: th.Tensor) -> PerAssetGaussian:
        """From the action layer's ``(B, n, 2)`` outputs and the ``(B, n)`` harvestable mask."""
        mean = th.cat([outputs[..., 0], outputs[..., 1].mean(dim=1, keepdim=True)], dim=-1)
        std = th.cat([log_std[:1].expand(outputs.shape[1]), log_std[1:]]).exp()
        self.distribution = Normal(mean, std.expand_as(mean))
        self.mask = th.cat([mask, th.ones_like(mask[:, :1])], dim=-1).to(mean.dtype)
        return self

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        return (self.distribution.log_prob(actions) * self.mask).sum(dim=-1)

    def entropy(self) -> th.Tensor:
        return (self.distribution.entropy() * self.mask).sum(dim=-1)


class PerAssetPolicy(ActorCriticPolicy):
    """Actor-critic for ``DirectIndexEnv`` with weights shared across assets.

    Accepts the usual :class:`ActorCriticPolicy` arguments; ``net_arch`` must be a dict with
    ``pi`` (per-asset head) and ``vf`` (value head) widths. ``harvest_prior``: for a binary
    action, the initial harvest probability of a harvestable stock (the logit layer's bias);
    for preferences, the initial mean preference of every stock and of the TE-budget share
    (1: the ``optimizer`` baseline, every loss valued in full with the whole budget), whose
    spread starts at ``exp(log_std_init)``. SB3's ``_build`` creates the per-asset action
    layer through :class:`PerAssetBernoulli` or :class:`PerAssetGaussian`, so the optimizer
    sees the final modules; ``forward``, ``evaluate_actions`` and ``get_distribution`` share
    one masked path.
    """

    def __init__(self, observation_space: spaces.Dict,
                 action_space: spaces.MultiBinary | spaces.Box, lr_schedule: Any, *args: Any,
                 harvest_prior: float = 0.5, **kwargs: Any) -> None:
        self.preferences = isinstance(action_space, spaces.Box)
        if not (0.0 <= harvest_prior <= 2.0 if self.preferences else 0.0 < harvest_prior < 1.0):
            raise ValueError(f"harvest_prior must be in {'[0, 2]' if self.preferences else '(0, 1)'}"
                             f", got {harvest_prior}")
        self.harvest_prior = harvest_prior
        kwargs.setdefault("features_extractor_class", AssetSetExtractor)
        kwargs.setdefault("net_arch", {"pi": [64], "vf": [64]})
        if not kwargs.get("share_features_extractor", True):
            raise ValueError("PerAssetPolicy needs share_features_extractor=True")
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = AssetSetHeads(self.features_dim, self.net_arch, self.activation_fn)

    def _build(self, lr_schedule: Any) -> None:
        if self.preferences:
            self.action_dist = PerAssetGaussian(int(self.action_space.shape[0]))
        else:
            self.action_dist = PerAssetBernoulli(int(self.action_space.n))
        super()._build(lr_schedule)
        prior = self.harvest_prior
        with th.no_grad():
            self.action_net.bias.fill_(prior if self.preferences else float(np.log(prior / (1 - prior))))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "harvest_prior": self.harvest_prior}

    def _masked_distribution(self, latent_pi: th.Tensor, obs: dict[str, th.Tensor]) -> Distribution:
        harvestable = obs["assets"][..., HARVESTABLE] > 0.5
        if self.preferences:
            return self.action_dist.masked(self.action_net(latent_pi), self.log_std, harvestable)
        logits = self.action_net(latent_pi).squeeze(-1)
        logits = th.where(harvestable, logits, th.full_like(logits, MASKED_LOGIT))
        return self.action_dist.proba_distribution(action_logits=logits)

    def _distribution_and_value(self, obs: dict[str, th.Tensor]) -> tuple[Distribution, th.Tensor]:
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        return self._masked_distribution(latent_pi, obs), self.value_net(latent_vf)

    def forward(self, obs: dict[str, th.Tensor], deterministic: bool = False
                ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        distribution, values = self._distribution_and_value(obs)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, values, distribution.log_prob(actions)

    def evaluate_actions(self, obs: dict[str, th.Tensor], actions: th.Tensor
                         ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        distribution, values = self._distribution_and_value(obs)
        return values, distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: dict[str, th.Tensor]) -> Distribution:
        latent_pi = self.mlp_extractor.forward_actor(self.extract_features(obs))
        return self._masked_distribution(latent_pi, obs)
