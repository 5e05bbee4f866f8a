"""One fan-out: local processes and Ray give the serial results, in task order."""

from __future__ import annotations

import importlib.util
import sys
import time

import pytest

from taxharvest.errors import DataError, InputError
from taxharvest.sim.parallel import engine_of, run_tasks
from taxharvest.workflows.stress import StressTest, run_stress_task
from taxharvest.workflows.sweep import SweepTask, run_sweep_task

RAY = importlib.util.find_spec("ray") is not None


def slow_square(x: int) -> int:
    """Later tasks finish first: results must still come back in task order."""
    time.sleep(0.05 * (4 - x % 5))
    return x * x


def fails(x: int) -> int:
    if x == 2:
        raise InputError("bad task", field="x")
    return x


def bad_data(x: int) -> int:
    """A data mistake found in a worker (a ticker without a sector, say)."""
    if x == 1:
        raise DataError("1 ticker(s) have no sector: MMM", path="sectors.csv", field="ticker")
    time.sleep(0.05)
    return x


def assert_carried(error: BaseException) -> None:
    """The worker's error as it was raised: its kind, its one line, no worker traceback."""
    assert type(error) is DataError and error.path == "sectors.csv" and error.field == "ticker"
    assert str(error) == "sectors.csv, field 'ticker': 1 ticker(s) have no sector: MMM"
    assert error.__cause__ is None


def stress_tasks():
    return StressTest("threshold:0.05", "mfj-800k", scenarios=["black-monday-1987"], paths=1,
                      n_assets=24, years=0.6).tasks()


def sweep_task() -> SweepTask:
    return SweepTask("mfj-800k", seed=0, timesteps=64, eval_seeds=(0,), eval_assets=20,
                     eval_years=0.5, train_options={"n_assets": 20, "n_envs": 1,
                                                    "episode_years": 0.5, "eval_freq": 10**6,
                                                    "eval_paths": 1})


def test_local_engine_equals_serial_in_task_order():
    seen = []
    assert run_tasks(slow_square, range(6), workers=3,
                     progress=lambda done, total: seen.append((done, total))) == [
        x * x for x in range(6)]
    assert seen[-1] == (6, 6) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert run_tasks(slow_square, range(3), workers=1) == [0, 1, 4]
    assert run_tasks(slow_square, []) == []
    tasks = stress_tasks()
    assert run_tasks(run_stress_task, tasks, workers=2) == [run_stress_task(t) for t in tasks]


def test_a_task_error_propagates_and_bad_options_are_input_errors():
    with pytest.raises(InputError, match="bad task"):
        run_tasks(fails, range(4), workers=2)
    with pytest.raises(InputError, match="engine"):
        run_tasks(slow_square, [1], engine="dask")
    with pytest.raises(InputError, match="workers"):
        run_tasks(slow_square, [1], workers=0)
    assert engine_of(None) == ("local", None) and engine_of("auto") == ("ray", "auto")
    with pytest.raises(InputError, match="ray"):
        engine_of(" ")


def test_a_workers_input_error_arrives_as_the_same_one_line_error():
    with pytest.raises(DataError) as err:
        run_tasks(bad_data, range(4), workers=2)
    assert_carried(err.value)


def test_missing_ray_is_a_clear_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(InputError, match=r"pip install 'taxharvest\[ray\]'"):
        run_tasks(slow_square, [1], engine="ray")


@pytest.mark.skipif(not RAY, reason="ray is not installed (pip install 'taxharvest[ray]')")
def test_an_unreachable_cluster_is_a_clear_input_error():
    with pytest.raises(InputError, match="cannot reach Ray at '127.0.0.1:1'"):
        run_tasks(slow_square, [1], engine="ray", address="127.0.0.1:1")


@pytest.fixture(scope="module")
def ray_instance():
    if not RAY:
        pytest.skip("ray is not installed (pip install 'taxharvest[ray]'): Ray engine untested")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_engine_equals_local_on_stress_and_sweep_tasks(ray_instance):
    tasks = stress_tasks()
    assert run_tasks(run_stress_task, tasks, engine="ray") == run_tasks(
        run_stress_task, tasks, workers=1)
    done = []
    [remote] = run_tasks(run_sweep_task, [sweep_task()], engine="ray",
                         progress=lambda d, t: done.append(d))
    assert done == [1] and ray_instance.is_initialized()  # an outside instance stays up
    assert [r["policy"] for r in remote["rows"]] == ["ppo", "tuned", "monthly-all"]
    assert remote["rows"][0]["name"] == "ppo:mfj-800k-seed0"
    assert set(remote["files"]) == {"model.zip", "vecnormalize.pkl"}
    local = run_sweep_task(sweep_task())
    assert remote["rows"] == local["rows"]  # same seeds, same numbers, whichever engine


def test_a_ray_tasks_input_error_arrives_as_the_same_one_line_error(ray_instance):
    from taxharvest.workflows.evaluate import EvalMarket, EvalTask, run_eval_task

    tasks = [EvalTask("mfj-800k", (("hold", "hold"),), EvalMarket("s", assets=assets, years=0.2))
             for assets in (20, 5)]  # 5 stocks: refused inside the worker
    with pytest.raises(InputError) as err:
        run_tasks(run_eval_task, tasks, engine="ray")
    assert type(err.value) is InputError and err.value.field == "assets"
    assert str(err.value) == "field 'assets': need 11 (one per sector) to 3,000 stocks, got 5"
    assert err.value.__cause__ is None
