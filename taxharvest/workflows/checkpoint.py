"""Training checkpoints: what ``taxharvest train --resume RUN_DIR`` continues from.

A checkpoint lives in ``RUN_DIR/checkpoints/``: the model being trained (``model-N.zip``,
optimizer state included), its ``VecNormalize`` statistics as they are while training
(``vecnormalize-N.pkl``), a copy of the best model so far with its frozen statistics
(``best-model-T.zip``, ``best-vecnormalize-T.pkl``) and ``last.json``: the step count, the
run's options and reproduce command, the evaluation history, the elapsed times, and the
random states (torch, numpy's global generator, python's, and each environment's market
generator). Each file is written to a temporary file and renamed; ``last.json`` is written
last and names the files it goes with, so a kill at any moment leaves the previous
checkpoint whole. Files no ``last.json`` names are removed after it is written.

When the run finishes, ``last.json`` is replaced by a small marker (``"finished": true``) and
the checkpoint's model files are removed.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import gymnasium as gym
import numpy as np
import torch as th

from taxharvest.errors import InputError
from taxharvest.io import json_text, write_atomic

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "last.json"
CHECKPOINT_FORMAT = 2  # 2: the run records its action type
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def state_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / STATE_FILE


def write_binary(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, flush it to disk, rename it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def copy_atomic(source: Path, target: Path) -> None:
    write_binary(target, lambda handle: handle.write(source.read_bytes()))


def write_state(folder: Path, state: dict[str, Any]) -> None:
    """``last.json`` (atomically), then remove the files of older checkpoints."""
    write_atomic(folder / STATE_FILE, json_text(state))
    keep = set(state.get("files", {}).values())
    for path in folder.iterdir():
        if path.suffix in (".zip", ".pkl") and path.name not in keep:
            path.unlink(missing_ok=True)


def read_state(run_dir: str | Path) -> dict[str, Any]:
    """The checkpoint of ``run_dir``, or :class:`InputError` naming what is missing."""
    path = state_path(run_dir)
    if not Path(run_dir).is_dir():
        raise InputError("no such run folder to resume", path=run_dir, field="resume")
    if not path.is_file():
        raise InputError(f"no checkpoint to resume from (no {CHECKPOINT_DIR}/{STATE_FILE}; "
                         "checkpoints are written during `taxharvest train`)",
                         path=run_dir, field="resume")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read the checkpoint ({type(err).__name__})", path=path,
                         field="resume") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"not a checkpoint of format {CHECKPOINT_FORMAT}", path=path,
                         field="resume")
    for name in state.get("files", {}).values():
        if not (path.parent / name).is_file():
            raise InputError(f"the checkpoint's file {name} is missing", path=path.parent,
                             field="resume")
    return state


# --- random states -------------------------------------------------------------------------

def capture_rng() -> dict[str, Any]:
    """torch's, numpy's global and python's random states, as JSON."""
    # SB3 shuffles its minibatches with numpy's legacy global generator: that is the one to keep
    name, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002
    version, internal, python_gauss = random.getstate()
    return {
        "torch": _b64(th.get_rng_state().numpy()),
        "numpy": {"name": name, "keys": _b64(np.asarray(keys, dtype=np.uint32)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": _b64(np.asarray(internal, dtype=np.uint32)),
                   "gauss": python_gauss},
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng` recorded."""
    th.set_rng_state(th.from_numpy(_array(state["torch"], np.uint8)))
    n = state["numpy"]
    np.random.set_state((n["name"], _array(n["keys"], np.uint32),  # noqa: NPY002
                         n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in _array(p["internal"], np.uint32)),
                     p["gauss"]))


def _b64(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii")


def _array(text: str, dtype: type) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).copy()


def generator_state(generator: np.random.Generator) -> dict[str, Any]:
    """An environment's market generator, as JSON (big integers stay exact)."""
    return generator.bit_generator.state


def make_generator(state: dict[str, Any]) -> np.random.Generator:
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


class ContinueStream(gym.Wrapper):
    """An environment whose first reset continues a saved market generator instead of
    reseeding (the model, once loaded, seeds its environments with the run's seeds; a resumed
    run should draw new markets, not replay the first ones)."""

    def __init__(self, env: gym.Env, state: dict[str, Any] | None) -> None:
        super().__init__(env)
        self._state = state

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self._state is not None:
            self.env.unwrapped.np_random = make_generator(self._state)
            self._state, seed = None, None
        return self.env.reset(seed=seed, options=options)


def pickle_to(obj: Any) -> Callable[[IO[bytes]], None]:
    return lambda handle: pickle.dump(obj, handle)
