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
- binary action: ``harvest_prior=0.88`` (initial logit 2), ``learning_rate=1e-3``,
  ``ent_coef=0``: one reward per step is shared by ~25 harvest decisions, so each asset's
  gradient is weak. Started at probability 0.5 with 3e-4 and an entropy bonus (which pulls
  every Bernoulli back to 0.5), 64k steps left the probabilities at 0.3-0.7 and the tax
  alpha 0.1-0.3 points below the rules. Starting near the strong rule "harvest every loss"
  and learning its exceptions at a larger (KL-bounded) step lands within 0.1 point of the
  best rule's tax alpha in the same budget;
- preference action (the default): the mean preference and TE-budget share start at 1.25,
  beyond the action's bound, with a spread of ``exp(-1.5) = 0.22``: the deterministic policy
  (the mean, clipped) is the ``optimizer`` baseline exactly, a random drift of the mean does
  not move it, and 13% of the draws explore below 1, so only a consistent advantage pulls a
  preference down. Started at 1, on the bound, every drift of the mean left the baseline:
  the held-out tax alpha fell from 10k to 30k steps in both mfj-800k runs.
  ``learning_rate=3e-4`` (SB3's default for Gaussian policies): at 1e-3 the held-out reward
  fell from 10k to 20k steps for both mfj-800k profiles.

``reward="tax"`` trains on the tax saving alone (``DirectIndexEnv``'s reward without the
portfolio's active return, the market noise of the default ``wealth`` reward); the TE penalty
still prices the risk.

Every ``checkpoint_every`` steps (at the next rollout boundary; and when training starts and
ends) the run writes a checkpoint in ``out/checkpoints/`` (:mod:`taxharvest.workflows.checkpoint`):
:func:`resume` (``taxharvest train --resume RUN_DIR``) continues a killed run from it to the
requested timesteps with the run's own options, keeps the best model of the whole run, records
the resume in the card and keeps the card's reproduce command. The resumed environments draw
new markets from their saved generators (the interrupted episodes are dropped), so a resumed
run is a faithful continuation, not bit-identical to an uninterrupted one.

``vec_env="subproc"`` by default: on an idle 2-core machine two worker processes step the two
environments at once while the learner waits, 242 steps/s while learning against 208 for
``DummyVecEnv`` on the same paths (64 names, weekly, 4,096 steps; ``benchmarks/train_speed.py``;
274 against 204 from another seed); the earlier default, ``dummy``, ran faster on a machine
shared with other jobs. Both train the same
parameters for a seed (:class:`Float32Rewards`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import inspect
import json
import os
import pickle
import platform
import shlex
import shutil
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
    VecEnvWrapper,
    VecMonitor,
    VecNormalize,
)

import taxharvest
from taxharvest.agents.base import Policy
from taxharvest.agents.ppo import (
    CARD_ACTION_SPACES,
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
from taxharvest.envs.direct_index import CADENCE_DAYS, REWARDS
from taxharvest.errors import InputError
from taxharvest.io import check_folder, json_text, write_atomic
from taxharvest.sim.backtest import run_backtest
from taxharvest.sim.measures import CARD
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.tax.clients import RANDOM_PROFILE
from taxharvest.tax.law import get_profile
from taxharvest.workflows.checkpoint import (
    CHECKPOINT_DIR,
    CHECKPOINT_FORMAT,
    ContinueStream,
    capture_rng,
    copy_atomic,
    generator_state,
    read_state,
    restore_rng,
    write_binary,
    write_state,
)
from taxharvest.workflows.markets import MAX_ASSETS

PPO_HYPERPARAMETERS: dict[str, Any] = {
    "n_steps": 256,
    "batch_size": 128,
    "n_epochs": 10,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "target_kl": 0.03,
}
NETWORK: dict[str, Any] = {
    "net_arch": {"pi": [64], "vf": [64]},
    "features_extractor_kwargs": {"asset_arch": [64, 64], "context_dim": 64},
}
LEARNING_RATE = {"binary": 1e-3, "preference": 3e-4}  # per action type
POLICY_KWARGS: dict[str, dict[str, Any]] = {  # per action type
    "binary": {**NETWORK, "harvest_prior": 0.88},
    "preference": {**NETWORK, "harvest_prior": 1.25, "log_std_init": -1.5},
}
EVAL_SEED_BASE = 1_000_000  # held-out paths use seeds from here; training seeds stay below
MIN_ASSETS = 20  # the synthetic market needs a few names per sector (11 sectors)
BASELINES = ("hold", "optimizer", "monthly-all", "tuned")
VEC_ENVS: dict[str, type[VecEnv]] = {"subproc": SubprocVecEnv, "dummy": DummyVecEnv}
CLI_FLAGS = {  # train() keyword -> `taxharvest train` option, for the reproduce command
    "n_assets": "--assets", "n_envs": "--envs", "episode_years": "--years",
    "cadence": "--cadence", "scenario_probability": "--scenario-probability",
    "eval_freq": "--eval-freq", "eval_paths": "--eval-paths", "vec_env": "--vec-env",
    "action": "--action", "reward": "--reward",
}
OPTION_NAMES = {  # train() keyword -> its option's name in errors (field 'assets')
    "profile": "profile", "timesteps": "timesteps", "seed": "seed", "out": "out",
    **{name: flag.removeprefix("--") for name, flag in CLI_FLAGS.items()}}
DEFAULT_CHECKPOINT_EVERY = 50_000
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced: the folder, its card and the headline figures."""

    out: Path
    card: dict
    best_mean_reward: float
    env_steps_per_s: float
    wall_time_s: float
    already_finished: bool = False  # resume() of a run that had finished: nothing was done


def env_config(profile: str, *, n_assets: int, cadence: str, episode_years: float,
               scenario_probability: float, action: str,
               reward: str = "wealth") -> dict[str, Any]:
    """Keyword arguments of the training environment (recorded in the card)."""
    return {"n_assets": n_assets, "profile": profile, "cadence": cadence,
            "episode_years": episode_years, "scenario_probability": scenario_probability,
            "action": action, "reward": reward}


def make_env(config: dict[str, Any]) -> gym.Env:
    """A fresh ``taxharvest/DirectIndex-v0`` for ``config``."""
    return gym.make(ENV_ID, **config)


def _worker_env(config: dict[str, Any], stream: dict[str, Any] | None = None) -> gym.Env:
    """:func:`make_env` for a vectorized worker, whose relaxed-projection warnings would flood
    the log (module-level, so subprocesses can build it). The worker steps the environment
    long after this returns, so the guardrail stays quiet for the worker's life. ``stream``:
    a resumed run's saved market generator, which the first reset continues."""
    quiet_guardrail().__enter__()
    env = make_env(config)
    return env if stream is None else ContinueStream(env, stream)


class Float32Rewards(VecEnvWrapper):
    """Rewards as ``float32`` from any vector environment: ``DummyVecEnv`` buffers them so,
    ``SubprocVecEnv`` stacks the workers' floats as ``float64``, and ``VecNormalize``'s
    statistics then round apart (parameters 4e-4 apart after 1,024 steps); cast, both train
    the same parameters for a seed."""

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        observation, reward, done, info = self.venv.step_wait()
        return observation, reward.astype(np.float32), done, info


def save_checkpoint(model: PPO, normalizer: VecNormalize, out: Path) -> None:
    """``model.zip`` and ``vecnormalize.pkl`` with statistics frozen for evaluation (each
    written to a temporary file and renamed)."""
    write_binary(out / MODEL_FILE, model.save)
    training, norm_reward = normalizer.training, normalizer.norm_reward
    normalizer.training = normalizer.norm_reward = False
    try:
        write_binary(out / NORMALIZER_FILE, lambda handle: pickle.dump(normalizer, handle))
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

    def restore(self, saved: dict[str, Any]) -> None:
        """Continue the evaluations of a checkpoint (``best`` as ``json_text`` wrote it)."""
        best = dict(saved["best"])
        if best.get("mean_reward") is None:  # -inf, written as null
            best["mean_reward"] = -np.inf
        self.best, self.history = best, list(saved["history"])
        self.eval_time_s = float(saved["eval_time_s"])

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


class PeriodicCheckpoint(BaseCallback):
    """Call ``write`` at the start of a rollout (the model just updated, nothing collected)
    once ``every`` steps have passed since ``last`` (``None``: at the first rollout)."""

    def __init__(self, every: int, write: Callable[[], None], last: int | None) -> None:
        super().__init__(0)
        self.every, self.write, self.last = every, write, last

    def _on_rollout_start(self) -> None:
        if self.last is None or self.num_timesteps - self.last >= self.every:
            self.write()
            self.last = self.num_timesteps

    def _on_step(self) -> bool:
        return True


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
              eval_paths: int, vec_env: str, action: str, reward: str) -> None:
    try:
        if profile != RANDOM_PROFILE:  # a fresh client every episode
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
        ("action", action in POLICY_KWARGS, f"must be one of {', '.join(POLICY_KWARGS)}"),
        ("reward", reward in REWARDS, f"must be one of {', '.join(REWARDS)}"),
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
    vec_env: str = "subproc",
    action: str = "preference",
    reward: str = "wealth",
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    progress_bar: bool = False,
    baselines: bool = True,
) -> TrainResult:
    """Train PPO for ``profile`` and write the policy folder ``out``.

    Same arguments and seed -> same parameters on the same machine (seeded environments,
    torch and SB3; single-threaded deterministic torch). ``vec_env`` (``subproc`` runs the
    environments in worker processes, ``dummy`` in this one) and ``progress_bar`` do not change
    the result. With ``baselines`` the card also compares the policy with the rule-based
    harvesters on the held-out paths (:func:`evaluate_against_baselines`). A checkpoint is
    written to ``out/checkpoints/`` every ``checkpoint_every`` steps, for :func:`resume`; it
    does not change the result.
    Raises :class:`InputError` naming the bad option.
    """
    options = {"n_assets": n_assets, "n_envs": n_envs, "episode_years": episode_years,
               "cadence": cadence, "scenario_probability": scenario_probability,
               "eval_freq": eval_freq, "eval_paths": eval_paths, "vec_env": vec_env,
               "action": action, "reward": reward}
    _validate(profile, timesteps, seed, **options)
    _check_checkpoint_every(checkpoint_every)
    out = check_folder(out, "out", parents=True)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)  # an earlier run's, now stale
    run = {"profile": profile, "timesteps": timesteps, "seed": seed, **options,
           "baselines": baselines}
    return _run(out, run, reproduce_command(profile, timesteps, seed, out, **options),
                checkpoint_every=checkpoint_every, progress_bar=progress_bar)


def resume(run_dir: str | Path, *, given: dict[str, Any] | None = None,
           checkpoint_every: int | None = None, progress_bar: bool = False) -> TrainResult:
    """Continue the run in ``run_dir`` from its last checkpoint to its requested timesteps.

    The run's options come from the checkpoint; ``given`` (:func:`train` keywords the user
    also passed) must agree with them, else :class:`InputError` names the first that does
    not. ``checkpoint_every`` may change (it does not change the result; default: the run's).
    A run that had finished is left alone (``already_finished``).
    """
    run_dir = Path(run_dir)
    state = read_state(run_dir)
    run = {"reward": "wealth", **state["run"]}  # checkpoints from before the option: wealth
    for name, value in (given or {}).items():
        if name == "out":
            same = Path(value).resolve() == run_dir.resolve()
            recorded: Any = run_dir
        else:
            same, recorded = value == run[name], run[name]
        if not same:
            raise InputError(f"{value} conflicts with the run being resumed (started with "
                             f"--{OPTION_NAMES[name]} {recorded}); leave it out to resume "
                             "with the run's own options", path=run_dir,
                             field=OPTION_NAMES[name])
    if state["finished"]:
        try:
            card = json.loads((run_dir / CARD_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(f"the run has finished but its card cannot be read "
                             f"({type(err).__name__})", path=run_dir / CARD_FILE,
                             field="resume") from None
        return TrainResult(run_dir, card, card["evaluation"]["best"]["mean_reward"],
                           card["training"]["env_steps_per_s"], card["training"]["wall_time_s"],
                           already_finished=True)
    if checkpoint_every is None:
        checkpoint_every = int(state["checkpoint_every"])
    _check_checkpoint_every(checkpoint_every)
    check_folder(run_dir, "resume")  # still takes files
    return _run(run_dir, run, state["command"], checkpoint_every=checkpoint_every,
                progress_bar=progress_bar, state=state)


def _check_checkpoint_every(steps: int) -> None:
    if steps < 1:
        raise InputError("must be at least 1", field="checkpoint-every")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _run(out: Path, run: dict[str, Any], command: str, *, checkpoint_every: int,
         progress_bar: bool, state: dict[str, Any] | None = None) -> TrainResult:
    """Train (from scratch, or from the checkpoint ``state``) and write the folder ``out``."""
    profile, seed, n_envs = run["profile"], run["seed"], run["n_envs"]
    config = env_config(profile, n_assets=run["n_assets"], cadence=run["cadence"],
                        episode_years=run["episode_years"],
                        scenario_probability=run["scenario_probability"],
                        action=run["action"], reward=run["reward"])
    policy_kwargs = POLICY_KWARGS[config["action"]]
    hyperparameters = {**PPO_HYPERPARAMETERS, "learning_rate": LEARNING_RATE[config["action"]]}
    eval_seeds = [EVAL_SEED_BASE + i for i in range(run["eval_paths"])]
    folder = out / CHECKPOINT_DIR
    folder.mkdir(exist_ok=True)
    before = state["elapsed"] if state else {"wall_s": 0.0, "learn_s": 0.0}
    resumed = list(state["resumed"]) if state else []
    if state:
        resumed.append({"from_timesteps": state["num_timesteps"], "at": _now()})
        files = state["files"]
        if "best_model" in files:  # the best model of the checkpoint, whatever came after it
            copy_atomic(folder / files["best_model"], out / MODEL_FILE)
            copy_atomic(folder / files["best_normalizer"], out / NORMALIZER_FILE)
    started = time.perf_counter()
    learn_time = checkpoint_time = 0.0
    with _training_process():
        streams = state["env_rng"] if state else [None] * n_envs
        venv = VEC_ENVS[run["vec_env"]]([partial(_worker_env, config, stream)
                                         for stream in streams])
        normalizer: VecEnv = VecMonitor(Float32Rewards(venv))
        try:
            if state is None:
                normalizer = VecNormalize(normalizer, norm_obs_keys=["portfolio"],
                                          norm_reward=True, gamma=PPO_HYPERPARAMETERS["gamma"])
                model = PPO(PerAssetPolicy, normalizer, seed=seed, device="cpu", verbose=0,
                            policy_kwargs=policy_kwargs, tensorboard_log=str(out / "tb"),
                            **hyperparameters)
            else:
                normalizer = VecNormalize.load(str(folder / state["files"]["normalizer"]),
                                               normalizer)
                model = PPO.load(folder / state["files"]["model"], env=normalizer,
                                 device="cpu")
            assert isinstance(normalizer, VecNormalize)
            frozen = normalizer
            evaluation = HeldOutEvaluation(
                config, eval_seeds, run["eval_freq"],
                on_best=lambda m: save_checkpoint(m, frozen, out))
            if state:
                evaluation.restore(state["evaluation"])
                restore_rng(state["rng"])  # after the model's load, which reseeds everything
            learn_started = time.perf_counter()

            def checkpoint() -> None:
                nonlocal checkpoint_time
                began = time.perf_counter()
                _write_checkpoint(folder, model, frozen, venv, evaluation, run, command,
                                  checkpoint_every, resumed, {
                                      "wall_s": before["wall_s"] + began - started,
                                      "learn_s": before["learn_s"] + began - learn_started
                                      - checkpoint_time})
                checkpoint_time += time.perf_counter() - began

            remaining = run["timesteps"] - model.num_timesteps
            if remaining > 0:
                periodic = PeriodicCheckpoint(checkpoint_every, checkpoint,
                                              last=state["num_timesteps"] if state else None)
                model.learn(remaining, callback=[evaluation, periodic],
                            reset_num_timesteps=state is None, progress_bar=progress_bar,
                            tb_log_name=f"ppo-{profile}-seed{seed}")
                learn_time = time.perf_counter() - learn_started - checkpoint_time
                checkpoint()  # trained: a kill while comparing with the baselines loses nothing
        finally:
            normalizer.close()
    wall = before["wall_s"] + time.perf_counter() - started
    learn_total = before["learn_s"] + learn_time
    steps_per_s = model.num_timesteps / max(learn_total - evaluation.eval_time_s, 1e-9)
    card = {
        "format": CARD_FORMAT,
        "name": f"ppo-{profile}",
        "profile": profile,
        "env": {"id": ENV_ID, "version": taxharvest.__version__, "config": config},
        "observation": {**observation_layout(), "normalized_keys": ["portfolio"]},
        "action_space": CARD_ACTION_SPACES[config["action"]],
        "policy": {"class": f"taxharvest.agents.ppo.{PerAssetPolicy.__qualname__}",  # public name
                   "parameters": sum(p.numel() for p in model.policy.parameters()),
                   "policy_kwargs": policy_kwargs, "shared_across_assets": True},
        "training": {"timesteps": int(model.num_timesteps), "seed": seed, "n_envs": n_envs,
                     "vec_env": run["vec_env"], "hyperparameters": hyperparameters,
                     "reset_seeds": list(range(seed, seed + n_envs)),
                     "wall_time_s": round(wall, 1), "env_steps_per_s": round(steps_per_s, 1),
                     "eval_time_s": round(evaluation.eval_time_s, 1)},
        "evaluation": {"metric": "mean_reward", "seeds": eval_seeds, "best": evaluation.best,
                       "history": evaluation.history},
        "versions": package_versions(),
        "command": command,
    }
    if resumed:
        card["training"]["resumed"] = resumed
    write_card(out, card)
    if run["baselines"]:
        card["evaluation"]["baselines"] = evaluate_against_baselines(out, profile, eval_seeds)
        write_card(out, card)
    write_state(folder, {"format": CHECKPOINT_FORMAT, "finished": True,
                         "num_timesteps": int(model.num_timesteps), "run": run,
                         "command": command, "resumed": resumed, "written": _now()})
    return TrainResult(out, card, evaluation.best["mean_reward"], steps_per_s, wall)


def _write_checkpoint(folder: Path, model: PPO, normalizer: VecNormalize, venv: VecEnv,
                      evaluation: HeldOutEvaluation, run: dict[str, Any], command: str,
                      checkpoint_every: int, resumed: list[dict], elapsed: dict[str, float],
                      ) -> None:
    """The model as it trains, its statistics, the best model so far and ``last.json``."""
    n = int(model.num_timesteps)
    files = {"model": f"model-{n}.zip", "normalizer": f"vecnormalize-{n}.pkl"}
    write_binary(folder / files["model"], model.save)
    write_binary(folder / files["normalizer"], lambda handle: pickle.dump(normalizer, handle))
    if "timesteps" in evaluation.best:  # out/ holds the best model: saved when it was found
        best = evaluation.best["timesteps"]
        files |= {"best_model": f"best-model-{best}.zip",
                  "best_normalizer": f"best-vecnormalize-{best}.pkl"}
        out = folder.parent
        for key, source in (("best_model", MODEL_FILE), ("best_normalizer", NORMALIZER_FILE)):
            if not (folder / files[key]).is_file():
                copy_atomic(out / source, folder / files[key])
    write_state(folder, {
        "format": CHECKPOINT_FORMAT, "finished": False, "num_timesteps": n, "run": run,
        "command": command, "checkpoint_every": checkpoint_every, "files": files,
        "evaluation": {"best": evaluation.best, "history": evaluation.history,
                       "eval_time_s": evaluation.eval_time_s},
        "elapsed": elapsed, "resumed": resumed, "written": _now(),
        "rng": capture_rng(),
        "env_rng": [generator_state(g) for g in venv.get_attr("np_random")],
    })


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
        *(f"- resumed from its checkpoint at {entry['from_timesteps']:,} steps ({entry['at']})"
          for entry in training.get("resumed", ())),
        f"- hyperparameters: `{json.dumps(training['hyperparameters'])}`",
        f"- versions: `{json.dumps(card['versions'])}`", "",
        "## Held-out evaluation", "",
        f"{len(evaluation['seeds'])} paths (seeds {evaluation['seeds'][0]}..."
        f"{evaluation['seeds'][-1]}); best at {best['timesteps']:,} steps: mean episode reward "
        f"{best['mean_reward']:.3f}, tax alpha {best['tax_alpha']:.2%}/yr, worst ex-ante TE "
        f"{best['max_ex_ante_te']:.2%}. These paths choose the checkpoint, so its figures "
        "on them flatter it: `taxharvest evaluate` compares on other paths.", "",
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
                figures[name] = {"unavailable": err.message}  # no machine's path in a card
                continue
            runs = [run_backtest(policy, make_env(config), seed=seed).to_json() for seed in seeds]
            numeric = [key for key, value in runs[0].items()
                       if isinstance(value, (int, float)) and not isinstance(value, bool)]
            figures[name] = {key: float(np.mean([run[key] for run in runs])) for key in numeric}
    return {"seeds": list(seeds), "env": config, "policies": figures}
