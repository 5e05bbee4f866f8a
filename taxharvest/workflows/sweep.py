"""Sweeps: PPO trained per profile and seed, evaluated against the rules on held-out paths.

One task per (profile, training seed ``s``) trains a policy with
:func:`~taxharvest.workflows.train.train` (in the run folder's
``training/<profile>-seed<s>/``, with its checkpoints) and backtests it, ``tuned`` and
``monthly-all`` on the evaluation paths of that seed: synthetic seeds ``s * eval_paths ... s * eval_paths + eval_paths - 1``, inside the range
0-99 reserved for evaluation (never trained or tuned on). Each policy's row holds the means
over its paths, so every policy gets one figure per seed, paired on the same paths, and the
spread over seeds covers both the training seed and the paths. The task returns its model
files with its rows, so the run folder is complete whichever engine (local processes or a
Ray cluster) ran it:

``runs/sweep-<timestamp>/``: ``config.json``, ``models/<profile>-seed<s>/`` (``model.zip``,
``vecnormalize.pkl``, ``card.json``, ``card.md``) and ``tasks/<profile>-seed<s>.json`` (its
rows), each written as its task finishes; at the end ``results.csv`` (one row per profile,
seed and policy) and ``results.json`` (``kind: sweep``, rows and the per-profile summary).

A sweep killed halfway (or a Ray worker lost) is finished by :func:`resume_sweep`
(``taxharvest sweep --resume RUN_DIR``): the finished tasks are kept, a task whose training
left a checkpoint continues from it (:func:`~taxharvest.workflows.train.resume`; where the
worker sees the run folder), the others start again; ``config.json`` and the results record
each resume.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from taxharvest.agents.ppo import MODEL_FILE, NORMALIZER_FILE
from taxharvest.agents.registry import make_policy
from taxharvest.errors import InputError
from taxharvest.io import check_folder, csv_text, json_text, write_atomic
from taxharvest.sim.measures import SWEEP, keys
from taxharvest.sim.parallel import connect
from taxharvest.tax.law import PROFILES
from taxharvest.workflows.checkpoint import state_path
from taxharvest.workflows.evaluate import EvalMarket, EvalTask, run_eval_task
from taxharvest.workflows.markets import EVALUATION_SEEDS, check_size
from taxharvest.workflows.train import CLI_FLAGS, reproduce_command, train, write_card
from taxharvest.workflows.train import resume as resume_training

RULES = ("tuned", "monthly-all")
POLICIES = ("ppo", *RULES)
MEASURES = keys(SWEEP)
COLUMNS = ("profile", "seed", "policy", "name", "paths", *MEASURES)
MODEL_FILES = (MODEL_FILE, NORMALIZER_FILE)  # the card is rewritten for the run folder
CONFIG_FILE = "config.json"
TRAINING_DIR, TASKS_DIR = "training", "tasks"


@dataclass(frozen=True)
class SweepTask:
    """One (profile, seed): training options and the evaluation paths."""

    profile: str
    seed: int
    timesteps: int
    eval_seeds: tuple[int, ...]
    eval_assets: int
    eval_years: float
    train_options: dict = field(default_factory=dict)
    training: str | None = None  # the training folder (None: a temporary one)

    @property
    def name(self) -> str:
        return f"{self.profile}-seed{self.seed}"


def run_sweep_task(task: SweepTask) -> dict:
    """Train (or continue the training's checkpoint), evaluate, and return the rows and the
    model's files (module-level, for worker processes and Ray)."""
    with contextlib.ExitStack() as stack:
        tmp = task.training or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="taxharvest-sweep-"))
        if state_path(tmp).is_file():
            trained = resume_training(tmp)
        else:
            trained = train(task.profile, timesteps=task.timesteps, seed=task.seed, out=tmp,
                            baselines=False, **task.train_options)
        specs = (("ppo", f"ppo:{tmp}"), *((name, name) for name in RULES))
        cadence = trained.card["env"]["config"]["cadence"]
        per_path = [row for seed in task.eval_seeds for row in run_eval_task(EvalTask(
            task.profile, specs, EvalMarket(f"synthetic:{seed}", seed=seed,
                                            assets=task.eval_assets, years=task.eval_years),
            cadence=cadence))]
        files = {name: (Path(tmp) / name).read_bytes() for name in MODEL_FILES}
    rows = []
    for name in POLICIES:
        mine = [row for row in per_path if row["policy"] == name]
        rows.append({"profile": task.profile, "seed": task.seed, "policy": name,
                     "name": f"ppo:{task.name}" if name == "ppo" else mine[0]["name"],
                     "paths": len(mine),
                     **{m.key: m.summarize(row[m.key] for row in mine) for m in SWEEP}})
    return {"rows": rows, "files": files, "card": trained.card}


def summarize(rows: Sequence[dict]) -> dict:
    """Per profile and policy: mean and standard deviation over seeds of each measure, and
    the largest seed of a ``worst`` measure."""
    out: dict[str, dict] = {}
    for profile in dict.fromkeys(r["profile"] for r in rows):
        out[profile] = {}
        for policy in POLICIES:
            block = [r for r in rows if r["profile"] == profile and r["policy"] == policy]
            stats = {"seeds": len(block)}
            for m in SWEEP:
                key, values = m.key, np.array([r[m.key] for r in block], float)
                stats[f"{key}_mean"] = float(values.mean())
                if m.worst:
                    stats[f"{key}_max"] = float(values.max())
                stats[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            out[profile][policy] = stats
    return out


@dataclass(frozen=True)
class SweepResult:
    """Where the sweep wrote its run folder, its rows and the per-profile summary."""

    folder: Path
    rows: list[dict]
    summary: dict
    config: dict

    def to_json(self) -> dict:
        return {"kind": "sweep", "config": self.config, "summary": self.summary,
                "results": self.rows}


def sweep(
    profiles: Sequence[str],
    seeds: int,
    timesteps: int,
    *,
    out: str | Path = "runs",
    eval_paths: int = 4,
    eval_assets: int = 100,
    eval_years: float = 3.0,
    train_options: dict | None = None,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Train and evaluate PPO for every profile and training seed ``0 .. seeds - 1``.

    Args:
        profiles: tax profile presets.
        seeds: training seeds per profile.
        timesteps: training steps per policy.
        out: parent folder of the run folder ``sweep-<timestamp>`` (created if its own
            parent exists, once the engine is up).
        eval_paths, eval_assets, eval_years: evaluation paths per seed and their size.
        train_options: further keyword arguments of :func:`~taxharvest.workflows.train.train`.
        engine, address, workers, progress: see :func:`~taxharvest.sim.parallel.run_tasks`.

    Raises :class:`InputError` (before anything is written) for a bad option or an
    unreachable engine.
    """
    unknown = [p for p in profiles if p not in PROFILES]
    checks = {
        "profiles": (bool(profiles) and not unknown,
                     f"unknown or no profiles {unknown}; valid: {', '.join(PROFILES)}"),
        "seeds": (seeds >= 1, "need at least one seed"),
        "timesteps": (timesteps >= 1, "need at least one step"),
        "eval-paths": (eval_paths >= 1 and seeds * eval_paths <= len(EVALUATION_SEEDS),
                       f"need seeds x eval-paths between 1 and {len(EVALUATION_SEEDS)} "
                       "(the synthetic seeds reserved for evaluation)"),
        "assets": (eval_assets >= 20, "need at least 20 stocks"),
    }
    for name, (ok, message) in checks.items():
        if not ok:
            raise InputError(message, field=name)
    check_size(eval_assets, eval_years)
    check_folder(out, "out")
    for profile in profiles:
        make_policy("tuned", profile)  # an untuned profile fails now, not after training
    options = dict(train_options or {})
    tasks = [SweepTask(profile, seed, timesteps,
                       tuple(range(seed * eval_paths, (seed + 1) * eval_paths)),
                       eval_assets, eval_years, options)
             for profile in profiles for seed in range(seeds)]
    config = {"profiles": list(profiles), "seeds": list(range(seeds)), "timesteps": timesteps,
              "eval_paths": eval_paths, "eval_assets": eval_assets, "eval_years": eval_years,
              "train_options": options, "engine": engine, "address": address,
              "tasks": [{k: v for k, v in asdict(t).items() if k != "training"} for t in tasks]}
    with connect(engine, address, workers) as run:  # the folder only once the engine is up
        folder = Path(out) / f"sweep-{dt.datetime.now():%Y%m%d-%H%M%S}"
        folder.mkdir(parents=True)
        write_atomic(folder / CONFIG_FILE, json_text(config))
        return _run(folder, config, tasks, run, progress)


def resume_sweep(run_dir: str | Path, *, engine: str = "local", address: str | None = None,
                 workers: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> SweepResult:
    """Finish the sweep in ``run_dir`` (killed halfway, or a worker lost): its finished tasks
    are kept, the others run (from their training's checkpoint where there is one), and
    ``config.json`` records the resume (``resumed``: when, the tasks kept and those run).

    Raises :class:`InputError` naming the folder or file when ``run_dir`` is not a sweep's.
    """
    folder = Path(run_dir)
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise InputError("no such sweep folder to resume", path=folder, field="resume")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        tasks = [SweepTask(**{**t, "eval_seeds": tuple(t["eval_seeds"])})
                 for t in config["tasks"]]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"not a sweep's configuration ({type(err).__name__}); a sweep folder "
                         f"holds the {CONFIG_FILE} its run wrote", path=path,
                         field="resume") from None
    with connect(engine, address, workers) as run:
        return _run(folder, config, tasks, run, progress, resumed=True)


def _run(folder: Path, config: dict, tasks: list[SweepTask], run: Callable,
         progress: Callable[[int, int], None] | None, resumed: bool = False) -> SweepResult:
    """Run the ``tasks`` not finished in ``folder`` (each kept as it finishes), then write
    the results of them all."""
    tasks = [replace(t, training=str(folder / TRAINING_DIR / t.name)) for t in tasks]
    remaining = [t for t in tasks if not _rows_path(folder, t).is_file()]
    if resumed:
        config.setdefault("resumed", []).append({
            "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "kept": [t.name for t in tasks if t not in remaining],
            "run": [t.name for t in remaining]})
        write_atomic(folder / CONFIG_FILE, json_text(config))

    def keep(index: int, output: dict) -> None:
        task = remaining[index]
        _write_model(folder, task, output)
        _rows_path(folder, task).parent.mkdir(exist_ok=True)
        write_atomic(_rows_path(folder, task), json_text({"rows": output["rows"]}))
        shutil.rmtree(task.training, ignore_errors=True)

    run(run_sweep_task, remaining, progress, keep)
    rows = [row for task in tasks
            for row in json.loads(_rows_path(folder, task).read_text(encoding="utf-8"))["rows"]]
    result = SweepResult(folder, rows, summarize(rows), config)
    write_atomic(folder / "results.csv", csv_text(rows, COLUMNS))
    write_atomic(folder / "results.json", json_text(result.to_json()))
    with contextlib.suppress(OSError):  # empty once every task is kept
        (folder / TRAINING_DIR).rmdir()
    return result


def _rows_path(folder: Path, task: SweepTask) -> Path:
    return folder / TASKS_DIR / f"{task.name}.json"


def _write_model(folder: Path, task: SweepTask, output: dict) -> None:
    """The task's model in ``models/<profile>-seed<s>/`` (written in a hidden folder, then
    renamed: whole or not at all), its card's reproduce command pointing there and a note
    on its sweep evaluation."""
    models = folder / "models"
    models.mkdir(exist_ok=True)
    final = models / task.name
    staging = models / f".{final.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)  # a run killed while writing it
    staging.mkdir()
    for name, data in output["files"].items():
        (staging / name).write_bytes(data)
    card = output["card"]
    defaults = {name: inspect.signature(train).parameters[name].default for name in CLI_FLAGS}
    card["command"] = reproduce_command(task.profile, task.timesteps, task.seed, final,
                                        **{**defaults, **task.train_options})
    alphas = ", ".join(f"{r['name']} {r['tax_alpha']:.2%}" for r in output["rows"])
    card["notes"] = (f"Sweep {folder.name}: held-out synthetic seeds {list(task.eval_seeds)} "
                     f"({task.eval_assets} stocks, {task.eval_years:g} years); mean tax alpha "
                     f"{alphas}.")
    write_card(staging, card)
    shutil.rmtree(final, ignore_errors=True)  # a run killed before its rows were kept
    os.replace(staging, final)
