"""``taxharvest train``, ``tune`` and ``sweep``: learning the policies.

The defaults of ``train`` mirror :func:`taxharvest.workflows.train.train` (a test keeps them
equal); the workflows are imported only when a command runs, so other commands start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from taxharvest.cli import options
from taxharvest.cli.options import RayOption, WorkersOption, console
from taxharvest.errors import InputError
from taxharvest.sim.quiet import quiet_guardrail

TRAIN_KEYWORDS = {"assets": "n_assets", "envs": "n_envs", "years": "episode_years"}  # others: same
RUN_OPTIONS = ("profile", "timesteps", "seed", "out", "assets", "envs", "years", "cadence",
               "scenario_probability", "eval_freq", "eval_paths", "vec_env", "action",
               "reward")  # a checkpoint's


def train(
    ctx: typer.Context,
    profile: Annotated[str | None, typer.Option(
        help=options.PROFILE_HELP + " random: a fresh client every episode (one policy "
             "across brackets). Required unless --resume.")] = None,
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
    vec_env: Annotated[str, typer.Option(help="subproc (worker processes) or dummy (in process).")] = "subproc",
    action: Annotated[str, typer.Option(
        help="preference (a harvest preference per stock and a TE-budget share) or binary "
             "(harvest a stock or not).")] = "preference",
    reward: Annotated[str, typer.Option(
        help="wealth (the after-tax wealth against the benchmark) or tax (the tax saving "
             "alone, without the portfolio's active return).")] = "wealth",
    checkpoint_every: Annotated[int | None, typer.Option(
        help="Steps between checkpoints in OUT/checkpoints/ (at the next update; default "
             "50,000, or the resumed run's).", show_default=False)] = None,
    resume: Annotated[Path | None, typer.Option(
        metavar="RUN_DIR", help="Continue the interrupted run in RUN_DIR from its last "
                                "checkpoint, with its own options, to its timesteps.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a PPO harvester and write model.zip, vecnormalize.pkl and its card."""
    from taxharvest.tax.clients import RANDOM_PROFILE
    from taxharvest.workflows.train import DEFAULT_CHECKPOINT_EVERY
    from taxharvest.workflows.train import resume as resume_training
    from taxharvest.workflows.train import train as run_training

    if resume is not None:
        values = locals()
        given = {TRAIN_KEYWORDS.get(name, name): values[name] for name in RUN_OPTIONS
                 if _given(ctx, name)}
        result = resume_training(resume, given=given, checkpoint_every=checkpoint_every,
                                 progress_bar=progress)
        if result.already_finished:
            console.print(f"The run in {result.out}/ had already finished "
                          f"({result.card['training']['timesteps']:,} steps); nothing to do.")
            return
    else:
        if profile is None:
            raise InputError("required (a tax profile), unless --resume RUN_DIR",
                             field="profile")
        result = run_training(
            profile, timesteps=timesteps, seed=seed,
            out=out or Path("models") / (profile if profile == RANDOM_PROFILE
                                         else options.profile(profile).name),
            n_assets=assets, n_envs=envs, episode_years=years, cadence=cadence,
            scenario_probability=scenario_probability, eval_freq=eval_freq,
            eval_paths=eval_paths, vec_env=vec_env, action=action,
            reward=reward, checkpoint_every=checkpoint_every or DEFAULT_CHECKPOINT_EVERY,
            progress_bar=progress,
        )
    best = result.card["evaluation"]["best"]
    resumed = result.card["training"].get("resumed")
    done = (f"Resumed at {resumed[-1]['from_timesteps']:,} steps; trained "
            if resume is not None and resumed else "Trained ")
    console.print(
        f"{done}{result.card['training']['timesteps']:,} steps in {result.wall_time_s:.0f} s "
        f"({result.env_steps_per_s:.0f} env steps/s); best held-out mean reward "
        f"{best['mean_reward']:.3f} at {best['timesteps']:,} steps, tax alpha "
        f"{best['tax_alpha']:.2%}/yr. Policy in {result.out}/")


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the command line set option ``name`` (typer's click is its own, so the
    source's enum is compared by name)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def tune(
    profile: Annotated[str, typer.Option(
        help="A tax profile (a preset or a YAML file), or all for the four presets.")],
    paths: Annotated[int, typer.Option(help="Training paths per grid point.")] = 5,
    seed_start: Annotated[int, typer.Option(
        help="First training seed (seeds 0-99 are reserved for evaluation).")] = 1000,
    assets: Annotated[int, typer.Option(help="Stocks per training path.")] = 100,
    years: Annotated[float, typer.Option(help="Years per training path.")] = 5.0,
    te_limit: Annotated[float, typer.Option(help="Tracking-error limit.")] = 0.01,
    jobs: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    out: Annotated[Path | None, typer.Option(
        help="The tuned file to update (default: the packaged tuned.yaml).")] = None,
) -> None:
    """Grid-search the tuned policy's threshold and cadence on training paths."""
    from taxharvest.agents.rules import TUNED_PATH
    from taxharvest.tax.law import PROFILES
    from taxharvest.workflows.markets import EVALUATION_SEEDS, check_size
    from taxharvest.workflows.tune import check_tuned_file, write_tuned
    from taxharvest.workflows.tune import tune as tune_profile

    clients = list(PROFILES.values()) if profile == "all" else [options.profile(profile)]
    options.check({"paths": paths >= 1, "seed-start": seed_start >= 0}, "paths >= 1, seed-start >= 0")
    seeds = tuple(range(seed_start, seed_start + paths))
    if set(seeds) & set(EVALUATION_SEEDS):
        raise InputError(f"seeds {seed_start}..{seed_start + paths - 1} overlap 0-99, reserved "
                         "for evaluation; give a --seed-start of 100 or more", field="seed-start")
    check_size(assets, years)
    options.check({"te-limit": te_limit > 0, "jobs": jobs >= 1}, "te-limit > 0, jobs >= 1")
    path = check_tuned_file(options.outputs({"out": out or TUNED_PATH}, stdout=())["out"])
    command = (f"taxharvest tune --profile {profile} --paths {paths} --seed-start {seed_start} "
               f"--assets {assets} --years {years:g} --te-limit {te_limit:g}")
    entries = {}
    with quiet_guardrail(), options.progress() as bar:
        for client in clients:
            entries[client.name] = tune_profile(
                client, seeds=seeds, n_assets=assets, years=years, te_limit=te_limit,
                n_jobs=jobs, progress=options.progress_task(bar, f"tune {client.name}"))
    write_tuned(entries, command, path)
    table = Table(title=f"Tuned on seeds {seeds[0]}-{seeds[-1]} ({assets} stocks, {years:g} "
                        f"years), written to {path}")
    for column in ("profile", "threshold", "cadence", "tax alpha", "max ex-ante TE", "feasible"):
        table.add_column(column, justify="right")
    for name, e in entries.items():
        table.add_row(name, f"{e['threshold']:g}", e["cadence"], f"{e['tax_alpha']:.2%}",
                      f"{e['max_ex_ante_te']:.2%}", str(e["feasible"]))
    console.print(table)


def sweep(
    ctx: typer.Context,
    profiles: Annotated[str | None, typer.Option(
        help="all, or comma-separated tax profiles. Required unless --resume.")] = None,
    seeds: Annotated[int, typer.Option(help="Training seeds per profile (0 .. N-1).")] = 3,
    timesteps: Annotated[int, typer.Option(help="Training steps per policy.")] = 50_000,
    eval_paths: Annotated[int, typer.Option(
        help="Held-out synthetic evaluation paths per seed.")] = 4,
    assets: Annotated[int, typer.Option(help="Stocks per evaluation path.")] = 100,
    years: Annotated[float, typer.Option(help="Years per evaluation path.")] = 3.0,
    out: Annotated[Path, typer.Option(help="Parent folder of the run folder.")] = Path("runs"),
    resume: Annotated[Path | None, typer.Option(
        metavar="RUN_DIR", help="Finish the interrupted sweep in RUN_DIR with its own "
                                "options: its finished tasks are kept.")] = None,
    ray: RayOption = None,
    workers: WorkersOption = None,
) -> None:
    """Train PPO per profile and seed; compare with tuned and monthly-all on held-out paths."""
    from taxharvest.sim.parallel import engine_of
    from taxharvest.tax.law import PROFILES
    from taxharvest.workflows.sweep import resume_sweep
    from taxharvest.workflows.sweep import sweep as run_sweep

    options.check({"workers": workers is None or workers >= 1}, "workers >= 1")
    engine, address = engine_of(ray)
    if resume is not None:
        for name in ("profiles", "seeds", "timesteps", "eval_paths", "assets", "years", "out"):
            if _given(ctx, name):
                raise InputError("comes from the sweep being resumed; leave it out",
                                 field=name.replace("_", "-"))
    elif profiles is None:
        raise InputError("required (all, or tax profiles), unless --resume RUN_DIR",
                         field="profiles")
    with options.progress() as bar:
        task = options.progress_task(bar, f"sweep ({engine})")
        if resume is not None:
            result = resume_sweep(resume, engine=engine, address=address, workers=workers,
                                  progress=task)
        else:
            names = list(PROFILES) if profiles.strip() == "all" else [
                options.profile(p.strip()).name for p in profiles.split(",") if p.strip()]
            result = run_sweep(names, seeds, timesteps, out=out, eval_paths=eval_paths,
                               eval_assets=assets, eval_years=years, engine=engine,
                               address=address, workers=workers, progress=task)
    c = result.config
    table = Table(title=f"Sweep: {len(c['seeds'])} seed(s) x {c['timesteps']:,} steps, "
                        f"{c['eval_paths']} held-out path(s) per seed ({c['eval_assets']} "
                        f"stocks, {c['eval_years']:g} years); mean ± std over seeds")
    for column in ("profile", "policy", "tax alpha", "liquidated", "max ex-ante TE"):
        table.add_column(column, justify="left" if column in ("profile", "policy") else "right")
    for profile, block in result.summary.items():
        for name, s in block.items():
            table.add_row(profile, name,
                          f"{s['tax_alpha_mean']:.2%} ± {s['tax_alpha_std']:.2%}",
                          f"{s['after_tax_excess_liquidated_mean']:.2%} ± "
                          f"{s['after_tax_excess_liquidated_std']:.2%}",
                          f"{s['max_ex_ante_te_mean']:.2%}")
    console.print(table)
    if resume is not None:
        last = c["resumed"][-1]
        console.print(f"Resumed: {len(last['kept'])} finished task(s) kept, "
                      f"{len(last['run'])} run.")
    console.print(f"Run folder: {result.folder}")
