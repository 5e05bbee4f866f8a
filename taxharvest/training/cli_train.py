"""``taxharvest train``: PPO on randomized synthetic markets for one tax profile.

The defaults mirror :func:`taxharvest.workflows.train.train` (a test keeps them equal); the
training module is imported only when the command runs, so other commands start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from taxharvest.cli import app, console


@app.command()
def train(
    profile: Annotated[str, typer.Option(help="Tax profile preset: single-60k, mfj-250k, mfj-800k, mfj-800k-ca.")],
    timesteps: Annotated[int, typer.Option(help="Environment steps (weekly decisions) to train for.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of the environments, torch and SB3.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Policy folder (default: models/PROFILE).")] = None,
    assets: Annotated[int, typer.Option(help="Stocks in the training universe (the policy runs any number).")] = 64,
    envs: Annotated[int, typer.Option(help="Environments stepped in parallel.")] = 2,
    years: Annotated[float, typer.Option(help="Years per training episode.")] = 3.0,
    cadence: Annotated[str, typer.Option(help="Decision cadence: daily, weekly or monthly.")] = "weekly",
    scenario_probability: Annotated[
        float, typer.Option(help="Share of episodes with a crash template injected.")] = 0.3,
    eval_freq: Annotated[int, typer.Option(help="Steps between held-out evaluations.")] = 10_000,
    eval_paths: Annotated[int, typer.Option(help="Held-out synthetic paths per evaluation.")] = 8,
    vec_env: Annotated[str, typer.Option(help="subproc (worker processes) or dummy (in process).")] = "dummy",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a PPO harvester and write model.zip, vecnormalize.pkl and its card."""
    from taxharvest.workflows.train import train as run_training

    result = run_training(
        profile, timesteps=timesteps, seed=seed, out=out or Path("models") / profile,
        n_assets=assets, n_envs=envs, episode_years=years, cadence=cadence,
        scenario_probability=scenario_probability, eval_freq=eval_freq, eval_paths=eval_paths,
        vec_env=vec_env, progress_bar=progress,
    )
    best = result.card["evaluation"]["best"]
    console.print(
        f"Trained {result.card['training']['timesteps']:,} steps in {result.wall_time_s:.0f} s "
        f"({result.env_steps_per_s:.0f} env steps/s); best held-out mean reward "
        f"{best['mean_reward']:.3f} at {best['timesteps']:,} steps, tax alpha "
        f"{best['tax_alpha']:.2%}/yr. Policy in {result.out}/")
