"""Environment steps per second *while learning*: what bounds how long a policy can train.

The setting a training run meets (``taxharvest train``'s defaults): 64 stocks, weekly
decisions, three-year episodes with a crash template in 30% of them, the guardrail on, two
environments stepped in two worker processes (``SubprocVecEnv``, ``train``'s default), PPO
with the project's hyperparameters, one torch thread. Measured in the same run:

(a) ``preference`` on the optimizer core: the shipped design, the agent's preferences and
    TE-budget share going through one tax-aware program per decision; and the same with
    both environments in the learner's process (``DummyVecEnv``, the earlier default);
(b) ``binary`` on the rules core in the learner's process: the heuristic pipeline the first
    models trained on (its cards said 193 steps/s);
(c) the environment of (a) alone under random preference actions, no learner: the ceiling
    the program leaves;
(d) (a) with 4 and 8 worker processes on the same two cores, the rollout kept at 512 steps
    (``n_steps`` 128 and 64 per environment; ``train --envs N`` keeps 256 per environment).

Each figure is steps over the wall time of ``model.learn`` (rollouts and updates), after a
short warm-up run that loads the numba cache; the ratio to (b) and to the issue's target of
1,000 steps/s is printed beside it, with the share of (a)'s time spent in the environment.

    python benchmarks/train_speed.py [--steps 4096] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

from taxharvest.agents.ppo import PerAssetPolicy
from taxharvest.sim.quiet import quiet_guardrail
from taxharvest.workflows.train import (
    LEARNING_RATE,
    POLICY_KWARGS,
    PPO_HYPERPARAMETERS,
    VEC_ENVS,
    Float32Rewards,
    _worker_env,
    env_config,
    make_env,
)

TARGET = 1_000.0  # steps/s while learning (64 names, weekly, guardrail on)
WARM_STEPS = 8  # untimed steps of each new vector environment (loads its workers' code)
MORE_ENVS = (4, 8)  # worker processes beside the default two, on the same cores


def config(action: str, decision: str) -> dict:
    return {**env_config("mfj-800k", n_assets=64, cadence="weekly", episode_years=3.0,
                         scenario_probability=0.3, action=action), "decision": decision}


def learning(action: str, decision: str, steps: int, seed: int,
             vec_env: str = "subproc", n_envs: int = 2) -> tuple[float, float]:
    """Steps/s of ``model.learn(steps)`` and the share of it spent waiting for the
    environments' step; ``n_envs`` environments share the default's rollout of
    ``2 * n_steps`` steps."""
    venv = VEC_ENVS[vec_env]([partial(_worker_env, config(action, decision))] * n_envs)
    venv.reset()  # a new worker loads the numba cache on its first steps: untimed
    for _ in range(WARM_STEPS):
        venv.step(np.stack([venv.action_space.sample() for _ in range(venv.num_envs)]))
    stepping = 0.0
    step_wait = venv.step_wait

    def timed_step_wait():
        nonlocal stepping
        began = time.perf_counter()
        out = step_wait()
        stepping += time.perf_counter() - began
        return out

    venv.step_wait = timed_step_wait
    normalizer = VecNormalize(VecMonitor(Float32Rewards(venv)), norm_obs_keys=["portfolio"],
                              norm_reward=True, gamma=PPO_HYPERPARAMETERS["gamma"])
    rollout = 2 * PPO_HYPERPARAMETERS["n_steps"]
    model = PPO(PerAssetPolicy, normalizer, seed=seed, device="cpu", verbose=0,
                policy_kwargs=POLICY_KWARGS[action],
                **{**PPO_HYPERPARAMETERS, "learning_rate": LEARNING_RATE[action],
                   "n_steps": rollout // n_envs})
    began = time.perf_counter()
    model.learn(steps)
    wall = time.perf_counter() - began
    normalizer.close()
    return model.num_timesteps / wall, stepping / wall


def stepping_only(steps: int, seed: int) -> float:
    env = make_env(config("preference", "optimizer"))
    env.action_space.seed(seed)
    env.reset(seed=seed)
    began = time.perf_counter()
    for _ in range(steps):
        *_, terminated, _, _ = env.step(env.action_space.sample())
        if terminated:
            env.reset()
    return steps / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.set_num_threads(1)
    with quiet_guardrail():
        learning("preference", "optimizer", 512, args.seed)  # numba cache, first compiles
        ours, env_share = learning("preference", "optimizer", args.steps, args.seed)
        in_process, in_share = learning("preference", "optimizer", args.steps, args.seed, "dummy")
        rules, _ = learning("binary", "rules", args.steps, args.seed, "dummy")
        wider = {n: learning("preference", "optimizer", args.steps, args.seed, n_envs=n)[0]
                 for n in MORE_ENVS}
        alone = stepping_only(args.steps, args.seed)
    print(f"64 stocks, weekly, guardrail on, {args.steps:,} steps per measurement")
    print(f"(a) preference, optimizer core, learning: {ours:7.1f} steps/s "
          f"({env_share:.0%} of it waiting for the environments)")
    print(f"    the same, environments in process:    {in_process:7.1f} steps/s "
          f"({in_share:.0%} of it in the environments)")
    print(f"(b) binary, rules core, learning:         {rules:7.1f} steps/s (in process)")
    for n, figure in wider.items():
        print(f"    (a) with {n} environments (same rollout): {figure:7.1f} steps/s "
              f"({figure / ours:.2f}x two: the learner's step serves {n})")
    print(f"(c) (a)'s environment alone:              {alone:7.1f} steps/s")
    print(f"ratio (a)/(b): {ours / rules:.2f}x; (a) against the {TARGET:,.0f} steps/s target: "
          f"{ours / TARGET:.2f}x ({'met' if ours >= TARGET else 'missed'})")
    print(f"(c) against the target: {alone / TARGET:.2f}x: without a cheaper program the "
          f"environment alone {'allows' if alone >= TARGET else 'rules out'} the target")


if __name__ == "__main__":
    main()
