"""PPO: weights shared across assets, masking, training, cards, loading, reproducibility."""

from __future__ import annotations

import inspect
import json
import shutil
import sys

import numpy as np
import pytest
import torch as th
from typer.main import get_command

from taxharvest.agents.base import Decision, Policy
from taxharvest.agents.ppo import HARVESTABLE, PerAssetPolicy, check_card, load_policy
from taxharvest.envs import ASSET_FEATURES, PORTFOLIO_FEATURES, DirectIndexEnv
from taxharvest.errors import InputError
from taxharvest.workflows.train import CLI_FLAGS, make_env, reproduce_command, train

TINY = {"n_assets": 20, "episode_years": 1.0, "eval_paths": 1, "baselines": False}


def build_policy(n: int, action: str = "binary", **kwargs) -> PerAssetPolicy:
    env = DirectIndexEnv(n_assets=n, action=action)
    return PerAssetPolicy(env.observation_space, env.action_space, lambda _: 3e-4, **kwargs)


def tiny_train(tmp_path, name: str, timesteps: int, seed: int = 7, **options):
    return train("mfj-800k", timesteps=timesteps, seed=seed, out=tmp_path / name,
                 eval_freq=timesteps, **TINY, **options)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return tiny_train(tmp_path_factory.mktemp("ppo"), "model", timesteps=2048).out


@pytest.mark.parametrize("action", ["binary", "preference"])
def test_parameters_do_not_depend_on_the_number_of_assets(action):
    small, large = build_policy(20, action), build_policy(60, action)
    assert ({k: v.shape for k, v in small.state_dict().items()}
            == {k: v.shape for k, v in large.state_dict().items()})
    assert sum(p.numel() for p in small.parameters()) < 50_000


def test_preferences_of_unharvestable_assets_carry_no_log_probability():
    policy = build_policy(20, "preference", harvest_prior=1.0, log_std_init=-1.5)
    rng = np.random.default_rng(0)
    assets = rng.normal(size=(4, 20, len(ASSET_FEATURES))).astype(np.float32)
    harvestable = rng.random((4, 20)) < 0.5
    assets[..., HARVESTABLE] = harvestable
    obs = {"assets": th.as_tensor(assets), "portfolio": th.zeros(4, len(PORTFOLIO_FEATURES))}
    distribution = policy.get_distribution(obs)
    mean = distribution.distribution.mean.detach().numpy()
    assert mean.shape == (4, 21) and np.allclose(mean, 1.0, atol=0.1)  # starts at the optimizer
    actions = th.as_tensor(rng.random((4, 21)), dtype=th.float32)
    moved = actions.clone()
    moved[:, :20][th.as_tensor(~harvestable)] += 5.0  # what the environment ignores
    _, log_prob, entropy = policy.evaluate_actions(obs, actions)
    _, log_prob_moved, _ = policy.evaluate_actions(obs, moved)
    th.testing.assert_close(log_prob, log_prob_moved)
    moved[:, 20] += 0.5  # the TE-budget share counts
    assert not th.allclose(policy.evaluate_actions(obs, moved)[1], log_prob)
    (log_prob.sum() + entropy.sum()).backward()
    assert policy.action_net.weight.grad.abs().sum() > 0 and policy.log_std.grad.abs().sum() > 0


def test_unharvestable_assets_get_no_probability():
    policy = build_policy(20)
    rng = np.random.default_rng(0)
    assets = rng.normal(size=(4, 20, len(ASSET_FEATURES))).astype(np.float32)
    harvestable = rng.random((4, 20)) < 0.5
    assets[..., HARVESTABLE] = harvestable
    obs = {"assets": th.as_tensor(assets), "portfolio": th.zeros(4, len(PORTFOLIO_FEATURES))}
    probs = policy.get_distribution(obs).distribution.probs.detach().numpy()
    assert probs[~harvestable].max() < 1e-9
    assert probs[harvestable].min() > 0.1
    # Training sees the same mask: finite log-probabilities, gradients only where allowed.
    actions = th.as_tensor(harvestable & (rng.random((4, 20)) < 0.5), dtype=th.float32)
    _, log_prob, entropy = policy.evaluate_actions(obs, actions)
    log_prob.sum().backward()
    assert th.isfinite(log_prob).all() and th.isfinite(entropy).all()
    assert policy.action_net.weight.grad.abs().sum() > 0


def test_trained_policy_saves_its_card_and_acts_with_reasons(trained):
    card = json.loads((trained / "card.json").read_text())
    assert card["training"]["timesteps"] >= 2048 and card["training"]["seed"] == 7
    assert card["observation"]["asset_features"][HARVESTABLE] == "harvestable"
    assert card["command"].startswith("taxharvest train --profile mfj-800k --timesteps 2048")
    assert (trained / "card.md").read_text().startswith("# ppo-mfj-800k")
    env = make_env(card["env"]["config"])
    policy = load_policy(trained, env)
    assert isinstance(policy, Policy)
    assert card["action_space"] == "Box" and env.unwrapped.action_type == "preference"
    policy.model.policy.action_net.bias.data.copy_(th.tensor([0.8, 0.6]))
    obs, info = env.reset(seed=5)
    for _ in range(40):
        decision = policy.act(obs, info)
        if decision.action.any():
            break
        obs, _, _, _, info = env.step(decision.step_action)
    assert isinstance(decision, Decision) and 0.0 < decision.te_budget < 1.0
    asked = np.flatnonzero(decision.action)
    assert asked.size and set(decision.reasons) == set(np.flatnonzero(decision.action >= 0.5))
    assert not (decision.action[~info["action_mask"]]).any()
    assert ((decision.action >= 0) & (decision.action <= 1)).all()
    assert all(r.startswith("PPO preference=") and "worst lot" in r
               for r in decision.reasons.values())


def test_a_card_reads_its_own_features_by_name(trained):
    card = json.loads((trained / "card.json").read_text())
    env = DirectIndexEnv(n_assets=20)
    names = card["observation"]["portfolio_features"]
    older = {**card, "observation": {**card["observation"], "portfolio_features": names[:15][::-1]}}
    layout = check_card(older, env, "card.json")  # an older model's subset, in its order
    obs, _ = env.reset(seed=2)
    view = layout.select(obs)
    np.testing.assert_array_equal(view["portfolio"], obs["portfolio"][:15][::-1])
    assert view["assets"].shape == obs["assets"].shape
    assert layout.space(20)[0]["portfolio"].shape == (15,)
    unknown = {**card, "observation": {**card["observation"], "portfolio_features": ["alpha"]}}
    with pytest.raises(InputError, match="'alpha'"):
        check_card(unknown, env, "card.json")


def test_policy_loads_onto_a_larger_universe(trained):
    env = DirectIndexEnv(n_assets=45, episode_years=1.0)
    policy = load_policy(trained, env)
    obs, info = env.reset(seed=1)
    assert policy.probabilities(obs).shape == (46,)  # preferences, then the TE-budget share
    assert policy.act(obs, info).action.shape == (45,)


@pytest.mark.parametrize(("field", "edit"), [
    ("observation.asset_features", lambda c: c["observation"]["asset_features"].reverse()),
    ("env.version", lambda c: c["env"].update(version="0.0.1")),
    ("action_space", lambda c: c.update(action_space="Discrete")),
])
def test_card_mismatch_is_an_input_error(trained, tmp_path, field, edit):
    folder = tmp_path / "edited"
    shutil.copytree(trained, folder)
    card = json.loads((folder / "card.json").read_text())
    edit(card)
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match=f"field '{field}'"):
        load_policy(folder, DirectIndexEnv(n_assets=20))
    (folder / "model.zip").unlink()
    with pytest.raises(InputError, match="model.zip is missing"):
        load_policy(folder, DirectIndexEnv(n_assets=20))


def test_same_seed_same_parameters_in_or_out_of_process(tmp_path):
    first = tiny_train(tmp_path, "a", timesteps=1024, seed=11, action="binary")  # subproc
    second = tiny_train(tmp_path, "b", timesteps=1024, seed=11, action="binary", vec_env="dummy")
    env = DirectIndexEnv(n_assets=20)
    a = load_policy(first.out, env)
    b = load_policy(second.out, env)
    assert all(th.equal(a.model.policy.state_dict()[key], b.model.policy.state_dict()[key])
               for key in a.model.policy.state_dict())
    obs, info = env.reset(seed=5)
    decision = a.act(obs, info)  # a binary model: harvest or not
    assert decision.action.dtype == np.int8 and decision.te_budget == 1.0
    assert all(r.startswith("PPO p=") for r in decision.reasons.values())


def test_reproduce_command_lists_non_defaults_only(tmp_path):
    defaults = {name: inspect.signature(train).parameters[name].default for name in CLI_FLAGS}
    command = reproduce_command("mfj-250k", 500, 3, tmp_path / "m", **{**defaults, "n_assets": 30})
    assert command == f"taxharvest train --profile mfj-250k --timesteps 500 --seed 3 --out {tmp_path / 'm'} --assets 30"


def test_cli_defaults_match_train():
    from taxharvest.cli import app

    options = {p.name: p.default for p in get_command(app).commands["train"].params}
    cli_name = {"n_assets": "assets", "n_envs": "envs", "episode_years": "years"}
    for name in CLI_FLAGS:
        assert options[cli_name.get(name, name)] == inspect.signature(train).parameters[name].default


@pytest.mark.parametrize("args", [
    ["--profile", "nobody"], ["--profile", "mfj-800k", "--assets", "5"],
    ["--profile", "mfj-800k", "--cadence", "hourly"], ["--profile", "mfj-800k", "--seed", "-1"],
])
def test_bad_arguments_exit_2(monkeypatch, tmp_path, args):
    from taxharvest.cli import main

    monkeypatch.setattr(sys, "argv", ["taxharvest", "train", "--out", str(tmp_path / "m"), *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert not (tmp_path / "m").exists()
