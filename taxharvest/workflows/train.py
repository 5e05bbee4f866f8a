"""Train a PPO harvester on randomized synthetic markets (``taxharvest train``).

Each reset of ``DirectIndexEnv`` draws a fresh synthetic market from the environment's seed,
with a crash template injected in 30% of episodes, so the policy never sees the same path
twice. Training runs on a small universe (64 names by default): the network shares its weights
across assets (:mod:`taxharvest.agents.ppo`), so the trained policy runs a 500-name book.

Only the ``portfolio`` observation is normalized (``VecNormalize``): the per-asset features are
already on unit scales, and per-element statistics over ``assets`` would tie the model to ``n``.
Every ``eval_freq`` steps the policy plays fixed held-out paths (seeds from
:data:`EVAL_SEED_BASE`, disjoint from the training seeds); the best by mean episode reward is
kept as ``model.zip`` + ``vecnormalize.pkl`` (frozen statistics) with ``card.json``/``card.md``.

Hyperparameters (:data:`PPO_HYPERPARAMETERS`), for weekly decisions over 3-year episodes:

- ``gamma=0.99``: a ~100-step (two-year) horizon spans the long-term holding clock (52 weekly
  steps), the year-end settlement of the tax saving and the 30-day wash windows;
- ``n_steps=256`` per environment (512 decisions, about 3.4 episodes, per update) and
  ``batch_size=128``: enough episodes per update to see a year end, small enough to update
  often in a CPU budget where the environment (its TE projection) is the bottleneck;
- ``target_kl=0.03``: a step's log-probability sums over dozens of Bernoulli decisions, so the
  ratio moves fast; stopping the epochs early keeps updates inside the trust region;
- ``harvest_prior=0.88`` (initial logit 2), ``learning_rate=1e-3``, ``ent_coef=0``: one
  reward per step is shared by ~25 harvest decisions, so each asset's gradient is weak.
  Started at probability 0.5 with 3e-4 and an entropy bonus (which pulls every Bernoulli back
  to 0.5), 64k steps left the probabilities at 0.3-0.7 and the tax alpha 0.1-0.3 points
  below the rules. Starting near the strong rule "harvest every loss" and learning its
  exceptions at a larger (KL-bounded) step lands within 0.1 point of the best rule's tax
  alpha in the same budget (see the model cards).

``vec_env="dummy"`` by default: on the 2-core machine the models were trained on, shared with
other jobs, ``DummyVecEnv`` ran 173-224 env steps/s and ``SubprocVecEnv`` 132-171 (64 names,
weekly, 12k steps each, alternating runs); both give the same parameters for a seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import os
import platform
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecMonitor,
    VecNormalize,
)

import taxharvest
from taxharvest.agents.base import Policy
from taxharvest.agents.ppo import (
    CARD_FILE,
    CARD_FORMAT,
    MODEL_FILE,
    NORMALIZER_FILE,
    PerAssetPolicy,
    PPOPolicy,
    load_policy,
    observation_layout,
)
from taxharvest.agents.registry import make_policy
from taxharvest.envs import ENV_ID
from taxharvest.envs.direct_index import CADENCE_DAYS
from taxharvest.errors import InputError
from taxharvest.io import check_folder, json_text, write_atomic
from taxharvest.sim.backtest import run_backtest
from taxharvest.sim.measures import CARD
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.tax.law import get_profile
from taxharvest.workflows.markets import MAX_ASSETS

PPO_HYPERPARAMETERS: dict[str, Any] = {
    "n_steps": 256,
    "batch_size": 128,
    "n_epochs": 10,
    "learning_rate": 1e-3,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "target_kl": 0.03,
}
POLICY_KWARGS: dict[str, Any] = {
    "net_arch": {"pi": [64], "vf": [64]},
    "features_extractor_kwargs": {"asset_arch": [64, 64], "context_dim": 64},
    "harvest_prior": 0.88,
}
EVAL_SEED_BASE = 1_000_000  # held-out paths use seeds from here; training seeds stay below
MIN_ASSETS = 20  # the synthetic market needs a few names per sector (11 sectors)
BASELINES = ("hold", "monthly-all", "tuned")
VEC_ENVS: dict[str, type[VecEnv]] = {"subproc": SubprocVecEnv, "dummy": DummyVecEnv}
CLI_FLAGS = {  # train() keyword -> `taxharvest train` option, for the reproduce command
    "n_assets": "--assets", "n_envs": "--envs", "episode_years": "--years",
    "cadence": "--cadence", "scenario_probability": "--scenario-probability",
    "eval_freq": "--eval-freq", "eval_paths": "--eval-paths", "vec_env": "--vec-env",
}
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced: the folder, its card and the headline figures."""

    out: Path
    card: dict
    best_mean_reward: float
    env_steps_per_s: float
    wall_time_s: float


def env_config(profile: str, *, n_assets: int, cadence: str, episode_years: float,
               scenario_probability: float) -> dict[str, Any]:
    """Keyword arguments of the training environment (recorded in the card)."""
    return {"n_assets": n_assets, "profile": profile, "cadence": cadence,
            "episode_years": episode_years, "scenario_probability": scenario_probability}


def make_env(config: dict[str, Any]) -> gym.Env:
    """A fresh ``taxharvest/DirectIndex-v0`` for ``config``."""
    return gym.make(ENV_ID, **config)


def _worker_env(config: dict[str, Any]) -> gym.Env:
    """:func:`make_env` for a vectorized worker, whose relaxed-projection warnings would flood
    the log (module-level, so subprocesses can build it). The worker steps the environment
    long after this returns, so the guardrail stays quiet for the worker's life."""
    quiet_guardrail().__enter__()
    return make_env(config)


def save_checkpoint(model: PPO, normalizer: VecNormalize, out: Path) -> None:
    """``model.zip`` and ``vecnormalize.pkl`` with statistics frozen for evaluation."""
    model.save(out / MODEL_FILE)
    training, norm_reward = normalizer.training, normalizer.norm_reward
    normalizer.training = normalizer.norm_reward = False
    try:
        normalizer.save(str(out / NORMALIZER_FILE))
    finally:
        normalizer.training, normalizer.norm_reward = training, norm_reward


class HeldOutEvaluation(BaseCallback):
    """Every ``eval_freq`` steps (and at the end): play the held-out paths, keep the best model.

    The callback only decides when; each held-out path is a
    :func:`~taxharvest.sim.backtest.run_backtest`, the same run as every workflow's. The
    metric is the mean episode reward (the after-tax excess over the benchmark that the
    agent optimizes, less the TE penalty); mean tax alpha and worst ex-ante TE are logged
    beside it under ``eval/``.

    Args:
        config: the evaluation environment's keyword arguments.
        seeds: reset seeds of the held-out paths.
        eval_freq: environment steps between evaluations.
        on_best: called with the model whenever the metric improves.
    """

    def __init__(self, config: dict[str, Any], seeds: Sequence[int], eval_freq: int,
                 on_best: Callable[[PPO], None], verbose: int = 0) -> None:
        super().__init__(verbose)
        self.env = make_env(config)
        self.seeds = list(seeds)
        self.eval_freq = eval_freq
        self.on_best = on_best
        self.best: dict[str, float] = {"mean_reward": -np.inf}
        self.history: list[dict[str, float]] = []
        self.eval_time_s = 0.0

    def _on_step(self) -> bool:
        done = self.history[-1]["timesteps"] if self.history else 0
        if self.num_timesteps - done >= self.eval_freq:
            self._evaluate()
        return True

    def _on_training_end(self) -> None:
        if not self.history or self.history[-1]["timesteps"] != self.num_timesteps:
            self._evaluate()

    def _evaluate(self) -> None:
        started = time.perf_counter()
        normalizer = self.model.get_vec_normalize_env()
        assert normalizer is not None, "training wraps the environment in VecNormalize"
        policy = PPOPolicy(self.model, normalizer)
        runs = [run_backtest(policy, self.env, seed=seed) for seed in self.seeds]
        row = {
            "timesteps": self.num_timesteps,
            "mean_reward": float(np.mean([r.reward for r in runs])),
            "tax_alpha": float(np.mean([r.metrics["tax_alpha"] for r in runs])),
            "max_ex_ante_te": float(np.max([r.metrics["max_ex_ante_te"] for r in runs])),
        }
        self.history.append(row)
        for key in ("mean_reward", "tax_alpha", "max_ex_ante_te"):
            self.logger.record(f"eval/{key}", row[key])
        if row["mean_reward"] > self.best["mean_reward"]:
            self.best = row
            self.on_best(self.model)
        self.eval_time_s += time.perf_counter() - started


@contextlib.contextmanager
def _training_process() -> Iterator[None]:
    """Single-threaded deterministic torch, BLAS threads of 1 for workers, quiet guardrail.

    Two CPU cores run the environments and the learner: extra BLAS/OpenMP threads only
    contend (a 64-wide layer ran 70x slower with 2 torch threads than with 1 under load).
    Everything is restored on exit.
    """
    threads, deterministic = th.get_num_threads(), th.are_deterministic_algorithms_enabled()
    saved_env = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(_THREAD_VARIABLES, "1"))
    th.set_num_threads(1)
    th.use_deterministic_algorithms(True)
    try:
        with quiet_guardrail():
            yield
    finally:
        th.set_num_threads(threads)
        th.use_deterministic_algorithms(deterministic)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _validate(profile: str, timesteps: int, seed: int, n_assets: int, n_envs: int,
              episode_years: float, cadence: str, scenario_probability: float, eval_freq: int,
              eval_paths: int, vec_env: str) -> None:
    try:
        get_profile(profile)  # a preset or a profile file
    except InputError:
        raise
    except ValueError as err:
        raise InputError(str(err), field="profile") from None
    checks = [
        ("timesteps", timesteps >= 1, "must be at least 1"),
        ("seed", 0 <= seed and seed + n_envs <= EVAL_SEED_BASE,
         f"must be in [0, {EVAL_SEED_BASE - n_envs}] (seeds from {EVAL_SEED_BASE} are held out)"),
        ("assets", MIN_ASSETS <= n_assets <= MAX_ASSETS,
         f"must be {MIN_ASSETS} (a few per sector) to {MAX_ASSETS:,}"),
        ("envs", 1 <= n_envs <= 64, "must be between 1 and 64"),
        ("years", 0 < episode_years <= 30, "must be in (0, 30]"),
        ("cadence", cadence in CADENCE_DAYS, f"must be one of {', '.join(CADENCE_DAYS)}"),
        ("scenario-probability", 0 <= scenario_probability <= 1, "must be in [0, 1]"),
        ("eval-freq", eval_freq >= 1, "must be at least 1"),
        ("eval-paths", eval_paths >= 1, "must be at least 1"),
        ("vec-env", vec_env in VEC_ENVS, f"must be one of {', '.join(VEC_ENVS)}"),
    ]
    for field, ok, message in checks:
        if not ok:
            raise InputError(message, field=field)


def reproduce_command(profile: str, timesteps: int, seed: int, out: Path,
                      **options: Any) -> str:
    """``taxharvest train ...`` with every option that differs from :func:`train`'s default."""
    defaults = inspect.signature(train).parameters
    words = ["taxharvest", "train", "--profile", profile, "--timesteps", str(timesteps),
             "--seed", str(seed), "--out", str(out)]
    for name, flag in CLI_FLAGS.items():
        if options[name] != defaults[name].default:
            words += [flag, str(options[name])]
    return shlex.join(words)


def package_versions() -> dict[str, str]:
    return {"taxharvest": taxharvest.__version__, "torch": th.__version__,
            "stable-baselines3": stable_baselines3.__version__,
            "gymnasium": gym.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def train(
    profile: str,
    *,
    timesteps: int,
    seed: int,
    out: str | Path,
    n_assets: int = 64,
    n_envs: int = 2,
    episode_years: float = 3.0,
    cadence: str = "weekly",
    scenario_probability: float = 0.3,
    eval_freq: int = 10_000,
    eval_paths: int = 8,
    vec_env: str = "dummy",
    progress_bar: bool = False,
    baselines: bool = True,
) -> TrainResult:
    """Train PPO for ``profile`` and write the policy folder ``out``.

    Same arguments and seed -> same parameters on the same machine (seeded environments,
    torch and SB3; single-threaded deterministic torch). ``vec_env`` (``subproc`` runs the
    environments in worker processes, ``dummy`` in this one) and ``progress_bar`` do not change
    the result. With ``baselines`` the card also compares the policy with the rule-based
    harvesters on the held-out paths (:func:`evaluate_against_baselines`).
    Raises :class:`InputError` naming the bad option.
    """
    options = {"n_assets": n_assets, "n_envs": n_envs, "episode_years": episode_years,
               "cadence": cadence, "scenario_probability": scenario_probability,
               "eval_freq": eval_freq, "eval_paths": eval_paths, "vec_env": vec_env}
    _validate(profile, timesteps, seed, **options)
    out = check_folder(out, "out", parents=True)
    out.mkdir(parents=True, exist_ok=True)
    config = env_config(profile, n_assets=n_assets, cadence=cadence, episode_years=episode_years,
                        scenario_probability=scenario_probability)
    eval_seeds = [EVAL_SEED_BASE + i for i in range(eval_paths)]
    started = time.perf_counter()
    with _training_process():
        venv = VEC_ENVS[vec_env]([partial(_worker_env, config) for _ in range(n_envs)])
        normalizer = VecNormalize(VecMonitor(venv), norm_obs_keys=["portfolio"],
                                  norm_reward=True, gamma=PPO_HYPERPARAMETERS["gamma"])
        try:
            model = PPO(PerAssetPolicy, normalizer, seed=seed, device="cpu", verbose=0,
                        policy_kwargs=POLICY_KWARGS, tensorboard_log=str(out / "tb"),
                        **PPO_HYPERPARAMETERS)
            evaluation = HeldOutEvaluation(
                config, eval_seeds, eval_freq,
                on_best=lambda m: save_checkpoint(m, normalizer, out))
            learn_started = time.perf_counter()
            model.learn(timesteps, callback=evaluation, progress_bar=progress_bar,
                        tb_log_name=f"ppo-{profile}-seed{seed}")
            learn_time = time.perf_counter() - learn_started
        finally:
            normalizer.close()
    wall = time.perf_counter() - started
    steps_per_s = model.num_timesteps / max(learn_time - evaluation.eval_time_s, 1e-9)
    card = {
        "format": CARD_FORMAT,
        "name": f"ppo-{profile}",
        "profile": profile,
        "env": {"id": ENV_ID, "version": taxharvest.__version__, "config": config},
        "observation": {**observation_layout(), "normalized_keys": ["portfolio"]},
        "action_space": "MultiBinary",
        "policy": {"class": f"taxharvest.agents.ppo.{PerAssetPolicy.__qualname__}",  # public name
                   "parameters": sum(p.numel() for p in model.policy.parameters()),
                   "policy_kwargs": POLICY_KWARGS, "shared_across_assets": True},
        "training": {"timesteps": int(model.num_timesteps), "seed": seed, "n_envs": n_envs,
                     "vec_env": vec_env, "hyperparameters": PPO_HYPERPARAMETERS,
                     "reset_seeds": list(range(seed, seed + n_envs)),
                     "wall_time_s": round(wall, 1), "env_steps_per_s": round(steps_per_s, 1),
                     "eval_time_s": round(evaluation.eval_time_s, 1)},
        "evaluation": {"metric": "mean_reward", "seeds": eval_seeds, "best": evaluation.best,
                       "history": evaluation.history},
        "versions": package_versions(),
        "command": reproduce_command(profile, timesteps, seed, out, **options),
    }
    write_card(out, card)
    if baselines:
        card["evaluation"]["baselines"] = evaluate_against_baselines(out, profile, eval_seeds)
        write_card(out, card)
    return TrainResult(out, card, evaluation.best["mean_reward"], steps_per_s, wall)


def write_card(out: Path, card: dict) -> None:
    """``card.json`` (read back by :func:`~taxharvest.agents.ppo.load_policy`) and ``card.md``."""
    write_atomic(out / CARD_FILE, json_text(card))
    write_atomic(out / "card.md", card_markdown(card))


def card_markdown(card: dict) -> str:
    """The card for people: what was trained, how to reproduce it, how it did."""
    training, evaluation = card["training"], card["evaluation"]
    best = evaluation["best"]
    lines = [
        f"# {card['name']}", "",
        f"PPO harvester for the `{card['profile']}` tax profile on `{card['env']['id']}` "
        f"(taxharvest {card['env']['version']}); one network shared across assets "
        f"({card['policy']['parameters']:,} parameters), so it runs any number of stocks.", "",
        "Reproduce (same machine, same result):", "", "```", card["command"], "```", "",
        "## Training", "",
        f"- environment: `{json.dumps(card['env']['config'])}`",
        f"- timesteps {training['timesteps']:,}, seed {training['seed']}, "
        f"{training['n_envs']} environments ({training['vec_env']})",
        f"- wall time {training['wall_time_s']:.0f} s, {training['env_steps_per_s']:.0f} env "
        f"steps/s while learning, evaluation {training['eval_time_s']:.0f} s",
        f"- hyperparameters: `{json.dumps(training['hyperparameters'])}`",
        f"- versions: `{json.dumps(card['versions'])}`", "",
        "## Held-out evaluation", "",
        f"{len(evaluation['seeds'])} paths (seeds {evaluation['seeds'][0]}..."
        f"{evaluation['seeds'][-1]}); best at {best['timesteps']:,} steps: mean episode reward "
        f"{best['mean_reward']:.3f}, tax alpha {best['tax_alpha']:.2%}/yr, worst ex-ante TE "
        f"{best['max_ex_ante_te']:.2%}.", "",
        "| timesteps | mean reward | tax alpha | worst ex-ante TE |", "|---|---|---|---|",
        *(f"| {row['timesteps']:,} | {row['mean_reward']:.3f} | {row['tax_alpha']:.2%} | "
          f"{row['max_ex_ante_te']:.2%} |" for row in evaluation["history"]),
    ]
    for key, title in (("baselines", "Against the rule-based harvesters"),
                       ("transfer", "Transfer to a larger universe, against the rules")):
        if key in evaluation:
            lines += ["", f"## {title}", "", *_comparison_table(evaluation[key])]
    if card.get("notes"):
        lines += ["", "## Notes", "", card["notes"]]
    return "\n".join(lines) + "\n"


def _comparison_table(block: dict) -> list[str]:
    """Markdown for one :func:`evaluate_against_baselines` result."""
    if "policies" not in block:
        return [f"Skipped: {block['unavailable']}"]
    config = block["env"]
    lines = [f"Means over {len(block['seeds'])} held-out paths, {config['n_assets']} stocks, "
             f"{config['episode_years']:g} years, {config['cadence']}.", "",
             "| policy | " + " | ".join(m.key for m in CARD) + " |",
             "|---" * (len(CARD) + 1) + "|"]
    for name, row in block["policies"].items():  # means over paths: fractions as %, counts
        cells = ([f"{row[m.key]:.0f}" if m.kind == "count" else f"{row[m.key]:.2%}"
                  for m in CARD] if "unavailable" not in row
                 else [row["unavailable"]] + [""] * (len(CARD) - 1))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def evaluate_against_baselines(model_path: str | Path, profile: str, seeds: Sequence[int],
                               n_assets: int | None = None) -> dict:
    """Backtest the policy in ``model_path`` and the rule baselines on the same paths.

    The baselines are ``hold``, ``monthly-all`` and ``tuned``; returns per policy the mean of
    each numeric figure of ``result.to_json()`` (:func:`~taxharvest.sim.backtest.run_backtest`)
    over ``seeds``, or ``{"unavailable": reason}`` for a policy that cannot be built.
    ``n_assets`` overrides the card's universe (the policy transfers across sizes).
    """
    card = json.loads((Path(model_path) / CARD_FILE).read_text(encoding="utf-8"))
    config = {**card["env"]["config"], "profile": profile}
    if n_assets is not None:
        config["n_assets"] = n_assets
    makers: dict[str, Callable[[], Policy]] = {
        "ppo": lambda: load_policy(model_path, make_env(config)),
        **{spec: partial(make_policy, spec, profile) for spec in BASELINES}}
    figures: dict[str, dict[str, Any]] = {}
    with quiet_guardrail():
        for name, make_policy_for in makers.items():
            try:
                policy = make_policy_for()
            except InputError as err:  # e.g. no tuned parameters for this profile yet
                figures[name] = {"unavailable": str(err)}
                continue
            runs = [run_backtest(policy, make_env(config), seed=seed).to_json() for seed in seeds]
            numeric = [key for key, value in runs[0].items()
                       if isinstance(value, (int, float)) and not isinstance(value, bool)]
            figures[name] = {key: float(np.mean([run[key] for run in runs])) for key in numeric}
    return {"seeds": list(seeds), "env": config, "policies": figures}
