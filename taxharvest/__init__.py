"""taxharvest: learned tax-loss harvesting for direct-indexed portfolios.

Layers, each importing only those below it (``lint-imports`` checks the contract in
``pyproject.toml``):

- ``taxharvest.errors``, ``taxharvest.io``: the one exception hierarchy, whole-file outputs;
- ``taxharvest.tax``: lot ledger, wash sales, tax law, Form 8949 (knows nothing of RL);
- ``taxharvest.market``: universe, synthetic and real prices, crash scenarios, risk model
  (independent of ``tax``);
- ``taxharvest.guardrails``: tracking-error projection, a pure function of weights and risk;
- ``taxharvest.envs``: the Gymnasium environment over ledger and market;
- ``taxharvest.agents``: rule-based harvesters and the PPO policy behind one interface, and
  the parser of policy specs;
- ``taxharvest.sim``: one run of a policy (backtest), its measures and their registry, the
  step log, the local/Ray fan-out;
- ``taxharvest.report``: HTML pages of run JSON (it reads documents, not runs);
- ``taxharvest.workflows``: train, tune, evaluate, shadow, stress, sweep, demo, and the one
  builder of their markets;
- ``taxharvest.cli``: the ``taxharvest`` command, thin: parses options and delegates.
"""

import logging
import os

__version__ = "0.1.0"

# One BLAS thread unless the user chose otherwise, set before numpy loads (import taxharvest
# first): a threaded BLAS sums in an order that depends on the core count, and one
# decision's rounding moves later harvests (make demo's optimizer read 0.53% a year with two
# threads, 0.46% with one); at these sizes the threads cost more than they save.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


#: The instructions (``/proc/cpuinfo`` flags) LLVM's and OpenBLAS's Haswell code may use.
HASWELL = frozenset({"avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm", "popcnt"})


def cpu_target(machine: str, cpuinfo: str) -> dict[str, str]:
    """The instruction set numba and OpenBLAS compile for, so that a run reads the same on
    any x86-64 CPU with Haswell's instructions (:data:`HASWELL`: Intel Core since 2013, AMD since
    2015; a virtual machine may hide some, and then keeps its own): numba's sums are
    vectorized for the host's width (AVX-512 or AVX2) and OpenBLAS picks a kernel per CPU,
    and each rounds differently; a ten-year run of path-dependent decisions amplifies it
    (on one AVX-512 machine the real decade's ``optimizer`` read 0.178% a year on its
    native targets, 0.175% on numba's generic one, 0.170% on Haswell's). Both are pinned to
    Haswell's (as fast here as the native ones); other CPUs keep their own (``{}``)."""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    if machine.lower() not in ("x86_64", "amd64") or not HASWELL <= flags:
        return {}
    return {"NUMBA_CPU_NAME": "haswell", "OPENBLAS_CORETYPE": "Haswell"}


def _read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            return file.read()
    except OSError:
        return ""


# Unless the user chose a target (either variable set). Each is set only while the library
# it governs is not loaded yet (OpenBLAS loads with numpy): set later, it would reach only
# the worker processes, and a parallel run would read differently from a serial one.
if not {"NUMBA_CPU_NAME", "OPENBLAS_CORETYPE"} & os.environ.keys():
    import platform
    import sys

    _LOADS = {"NUMBA_CPU_NAME": "numba", "OPENBLAS_CORETYPE": "numpy"}
    for _name, _value in cpu_target(platform.machine(), _read_cpuinfo()).items():
        if _LOADS[_name] not in sys.modules:
            os.environ[_name] = _value

# A library logs; the application decides what is shown (guardrail projections are logged
# at INFO and WARNING under "taxharvest.guardrails").
logging.getLogger("taxharvest").addHandler(logging.NullHandler())
