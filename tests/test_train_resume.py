"""Long training runs survive faults: a run killed (SIGKILL) after a checkpoint finishes with
``taxharvest train --resume RUN_DIR``; a sweep interrupted inside a task's training finishes
with ``taxharvest sweep --resume RUN_DIR``, its finished task kept; a folder without a
checkpoint and an option that contradicts the run are one-line errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import taxharvest.workflows.train as training
from taxharvest.errors import InputError
from taxharvest.workflows.checkpoint import state_path
from taxharvest.workflows.sweep import sweep
from taxharvest.workflows.train import resume

TOTAL = 768
RUN = ["--profile", "mfj-800k", "--timesteps", str(TOTAL), "--seed", "3", "--assets", "20",
       "--envs", "1", "--years", "1", "--eval-freq", "512", "--eval-paths", "1",
       "--checkpoint-every", "256", "--no-progress"]


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run ``taxharvest ARGS`` in this process: its exit status and what it printed."""
    from taxharvest.cli import main

    monkeypatch.setattr(sys, "argv", ["taxharvest", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def checkpoint(run: Path) -> dict | None:
    try:
        return json.loads(state_path(run).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def kill_after_first_checkpoint(run: Path, timeout_s: float = 120) -> dict:
    """Start ``taxharvest train`` in a subprocess; SIGKILL it once a checkpoint past step 0
    is on disk; return that checkpoint as it is after the kill."""
    process = subprocess.Popen([sys.executable, "-m", "taxharvest", "train", *RUN,
                                "--out", str(run)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and process.poll() is None:
            state = checkpoint(run)
            if state and state["num_timesteps"] > 0:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == -signal.SIGKILL, process.stderr.read().decode() if process.stderr else code
    if process.stderr:
        process.stderr.close()
    state = checkpoint(run)
    assert state is not None
    return state


def test_a_killed_run_resumes_to_its_timesteps(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    state = kill_after_first_checkpoint(run)
    assert not state["finished"] and 0 < state["num_timesteps"] < TOTAL
    assert not (run / "card.json").exists()

    # options that contradict the run are refused before anything runs
    code, text = cli(monkeypatch, capsys, "train", "--resume", run, "--assets", "24")
    assert code == 2 and "field 'assets'" in text and "--assets 20" in text
    assert "Traceback" not in text
    with pytest.raises(InputError) as error:
        resume(run, given={"timesteps": TOTAL * 2})
    assert error.value.field == "timesteps"
    assert checkpoint(run) == state

    # repeating an option of the run is no conflict
    code, text = cli(monkeypatch, capsys, "train", "--resume", run, "--assets", "20",
                     "--no-progress")
    assert code == 0, text
    assert f"Resumed at {state['num_timesteps']:,} steps" in text
    card = json.loads((run / "card.json").read_text(encoding="utf-8"))
    assert card["training"]["timesteps"] == TOTAL
    assert [entry["from_timesteps"] for entry in card["training"]["resumed"]] == [
        state["num_timesteps"]]
    assert card["command"].startswith(f"taxharvest train --profile mfj-800k --timesteps {TOTAL}")
    assert "--resume" not in card["command"] and "checkpoint" not in card["command"]
    assert [row["timesteps"] for row in card["evaluation"]["history"]] == [512, TOTAL]
    assert card["evaluation"]["best"] in card["evaluation"]["history"]
    assert "ppo" in card["evaluation"]["baselines"]["policies"]
    assert f"resumed from its checkpoint at {state['num_timesteps']:,} steps" in (
        run / "card.md").read_text(encoding="utf-8")
    assert (run / "model.zip").is_file() and (run / "vecnormalize.pkl").is_file()
    final = checkpoint(run)
    assert final is not None and final["finished"] and final["num_timesteps"] == TOTAL
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.json"]

    # a finished run says so and does nothing
    before = (run / "card.json").read_bytes()
    code, text = cli(monkeypatch, capsys, "train", "--resume", run)
    assert code == 0 and "already finished" in text
    assert (run / "card.json").read_bytes() == before


def test_a_folder_without_a_checkpoint_is_refused(tmp_path, monkeypatch, capsys):
    code, text = cli(monkeypatch, capsys, "train", "--resume", tmp_path)
    assert code == 2 and str(tmp_path) in text and "no checkpoint" in text
    assert "Traceback" not in text
    code, text = cli(monkeypatch, capsys, "train", "--resume", tmp_path / "missing")
    assert code == 2 and str(tmp_path / "missing") in text


def test_train_needs_a_profile_without_resume(tmp_path, monkeypatch, capsys):
    code, text = cli(monkeypatch, capsys, "train", "--out", tmp_path / "m")
    assert code == 2 and "field 'profile'" in text
    assert not (tmp_path / "m").exists()


def test_an_interrupted_sweep_resumes_keeping_its_finished_task(tmp_path, monkeypatch, capsys):
    write_state = training.write_state

    def interrupted(folder, state):  # the second task's training stops after a checkpoint
        write_state(folder, state)
        if "seed1" in str(folder) and not state["finished"] and state["num_timesteps"] > 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "write_state", interrupted)
    options = {"n_assets": 20, "n_envs": 1, "episode_years": 0.5, "eval_freq": 10**6,
               "eval_paths": 1, "checkpoint_every": 256}
    with pytest.raises(KeyboardInterrupt):
        sweep(["mfj-800k"], 2, 512, out=tmp_path, eval_paths=1, eval_assets=20,
              eval_years=0.5, train_options=options, workers=1)
    [folder] = tmp_path.iterdir()
    kept = (folder / "tasks" / "mfj-800k-seed0.json").read_bytes()
    assert (folder / "models" / "mfj-800k-seed0" / "model.zip").is_file()
    assert not (folder / "tasks" / "mfj-800k-seed1.json").exists()
    assert not (folder / "results.json").exists()
    assert checkpoint(folder / "training" / "mfj-800k-seed1")["num_timesteps"] == 256
    monkeypatch.setattr(training, "write_state", write_state)

    code, text = cli(monkeypatch, capsys, "sweep", "--resume", folder, "--seeds", "3")
    assert code == 2 and "field 'seeds'" in text and "Traceback" not in text
    code, text = cli(monkeypatch, capsys, "sweep", "--resume", tmp_path)
    assert code == 2 and "config.json" in text and "Traceback" not in text
    code, text = cli(monkeypatch, capsys, "sweep", "--resume", folder, "--workers", "1")
    assert code == 0, text
    assert "1 finished task(s) kept, 1 run" in text
    assert (folder / "tasks" / "mfj-800k-seed0.json").read_bytes() == kept
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert [(r["seed"], r["policy"]) for r in results["results"]] == [
        (s, p) for s in (0, 1) for p in ("ppo", "tuned", "monthly-all")]
    [record] = results["config"]["resumed"]
    assert record["kept"] == ["mfj-800k-seed0"] and record["run"] == ["mfj-800k-seed1"]
    card = json.loads((folder / "models" / "mfj-800k-seed1" / "card.json").read_text(
        encoding="utf-8"))
    assert card["training"]["timesteps"] == 512
    assert [entry["from_timesteps"] for entry in card["training"]["resumed"]] == [256]
    assert not (folder / "training").exists()
