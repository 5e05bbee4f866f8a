"""One fan-out for the long workflows (stress paths, sweeps): local processes or Ray.

``run_tasks(fn, tasks)`` calls ``fn(task)`` for every task and returns the results in task
order, whichever engine ran them and in whatever order they finished, so a workflow's
output depends only on its tasks (each task carries its own seeds). ``fn`` must be a
module-level function and tasks and results picklable.

- ``local`` (default): :class:`concurrent.futures.ProcessPoolExecutor` with ``workers``
  processes (default: the CPU count, at most one per task); one worker or one task runs in
  this process.
- ``ray``: Ray core tasks (``ray.remote``, one CPU each). ``address`` is passed to
  ``ray.init``: ``auto`` joins the cluster started with ``ray start`` on this machine, a
  ``HOST:PORT`` or ``ray://`` address a remote one, ``local`` starts a private instance of
  ``workers`` CPUs for this run. An already initialized Ray (e.g. a test's
  ``ray.init(num_cpus=2)``) is used as it is and left running; an instance this function
  started is shut down at the end. Ray is an optional extra: ``pip install taxharvest[ray]``.

:func:`connect` joins the engine first and runs later, so a workflow creates its run folder
only once the engine is there. A task's :class:`~taxharvest.errors.InputError` (a bad input
found in a worker) reaches the caller as the same one-line error, whichever engine ran it.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

from taxharvest.errors import InputError

ENGINES = ("local", "ray")


def engine_of(ray: str | None) -> tuple[str, str | None]:
    """``(engine, address)`` from a ``--ray`` option: none -> local processes."""
    if ray is None:
        return "local", None
    if not ray.strip():
        raise InputError("give auto, local or a cluster ADDRESS", field="ray")
    return "ray", ray.strip()


def run_tasks(
    fn: Callable[[Any], Any],
    tasks: Iterable[Any],
    *,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    finished: Callable[[int, Any], None] | None = None,
) -> list:
    """``[fn(task) for task in tasks]``, run on ``engine``; results in task order.

    Args:
        fn: a module-level function of one task.
        tasks: the tasks (picklable).
        engine: ``local`` or ``ray``.
        address: for Ray: ``auto``, ``local`` or a cluster address (default ``auto``).
        workers: local processes, or the CPUs of a ``local`` Ray instance (default: all).
        progress: called as ``progress(done, total)`` as tasks finish.
        finished: called in this process as ``finished(index, result)`` as each task
            finishes, before the next is awaited (a workflow keeps what is done: a run
            killed later loses only the tasks under way).

    Raises :class:`InputError` for an unknown engine, bad ``workers``, or Ray not installed
    or not reachable. A task's own exception propagates as it was raised in the worker, the
    first one to finish stopping the rest: an ``InputError`` arrives as the same one-line
    ``InputError``, without the worker's traceback.
    """
    tasks = list(tasks)
    _check(engine, workers)
    if not tasks:
        return []
    with connect(engine, address, workers) as run:
        return run(fn, tasks, progress, finished)


def _check(engine: str, workers: int | None) -> None:
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; expected {' or '.join(ENGINES)}",
                         field="engine")
    if workers is not None and workers < 1:
        raise InputError(f"need at least one worker, got {workers}", field="workers")


@contextmanager
def connect(engine: str = "local", address: str | None = None, workers: int | None = None
            ) -> Iterator[Callable[..., list]]:
    """The engine, ready to run: yields ``run(fn, tasks, progress=None, finished=None)``
    (as :func:`run_tasks`). Ray is joined (or started) on entry, so an unreachable cluster is an
    :class:`InputError` before the caller creates anything, and shut down on exit when this
    call started it."""
    _check(engine, workers)
    if engine == "local":
        yield lambda fn, tasks, progress=None, finished=None: _run_local(
            fn, list(tasks), workers, progress, finished)
        return
    ray, started = _ray_init(address or "auto", workers)
    try:
        yield lambda fn, tasks, progress=None, finished=None: _run_ray(
            ray, fn, list(tasks), progress, finished)
    finally:
        if started:
            ray.shutdown()


class _Report:
    """What the caller is told as each task finishes."""

    def __init__(self, progress: Callable[[int, int], None] | None,
                 finished: Callable[[int, Any], None] | None, total: int) -> None:
        self.progress, self.finished, self.total, self.done = progress, finished, total, 0

    def __call__(self, index: int, result: Any) -> None:
        self.done += 1
        if self.finished is not None:
            self.finished(index, result)
        if self.progress is not None:
            self.progress(self.done, self.total)


def _run_local(fn: Callable, tasks: Sequence, workers: int | None,
               progress: Callable[[int, int], None] | None,
               finished: Callable[[int, Any], None] | None) -> list:
    report = _Report(progress, finished, len(tasks))
    count = min(workers or os.cpu_count() or 1, len(tasks))
    if count <= 1:
        results = []
        for index, task in enumerate(tasks):
            results.append(fn(task))
            report(index, results[-1])
        return results
    # Spawned, not forked: a fork after torch (or numba, or a BLAS) has started its thread
    # pools can deadlock the child (seen: a PPO load hanging in every worker of evaluate).
    pool = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(fn, task) for task in tasks]
        index = {future: i for i, future in enumerate(futures)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                if future.exception() is not None:
                    raise _from_worker(future.exception())
            for future in sorted(done, key=index.get):
                report(index[future], future.result())
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _from_worker(error: BaseException) -> BaseException:
    """A worker's exception as the caller raises it: an :class:`InputError` without the
    worker's traceback (the one line the CLI prints), anything else as it came."""
    if isinstance(error, InputError):
        error.__cause__ = None
        error.__suppress_context__ = True
        return error.with_traceback(None)
    return error


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a ``HOST:PORT`` nobody listens on (``ray.init`` would wait for minutes)."""
    host, _, port = address.rpartition(":")
    if address in ("auto", "local") or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise InputError(f"cannot reach Ray at {address!r}: {err.strerror or err} (start a "
                         "cluster with `ray start --head`, or use --ray local)",
                         field="ray") from None


def _ray_init(address: str, workers: int | None):
    """The ``ray`` module, initialized; and whether this call started it."""
    try:
        import ray
    except ImportError:
        raise InputError("Ray is not installed; pip install 'taxharvest[ray]' (or run "
                         "without --ray on local processes)", field="ray") from None
    if ray.is_initialized():
        return ray, False
    _check_reachable(address)
    options = ({"num_cpus": workers or os.cpu_count()} if address == "local"
               else {"address": address})
    try:
        ray.init(include_dashboard=False, log_to_driver=False, **options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"cannot reach Ray at {address!r}: {message} (start a cluster "
                         "with `ray start --head`, or use --ray local)", field="ray") from None
    return ray, True


def _run_ray(ray, fn: Callable, tasks: Sequence, progress: Callable[[int, int], None] | None,
             finished: Callable[[int, Any], None] | None) -> list:
    report = _Report(progress, finished, len(tasks))
    remote = ray.remote(num_cpus=1)(fn)
    refs = [remote.remote(task) for task in tasks]
    index = {ref: i for i, ref in enumerate(refs)}
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            [result] = ray.get(done)  # a failed task raises now, not after the others
            report(index[done[0]], result)
        return ray.get(refs)
    except ray.exceptions.RayTaskError as err:
        for ref in pending:
            ray.cancel(ref, force=True)
        cause = getattr(err, "cause", None)
        raise (_from_worker(cause) if isinstance(cause, InputError) else err) from None
