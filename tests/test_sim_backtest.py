"""The backtest runner: the JSON's keys and determinism."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from taxharvest.agents.base import Decision
from taxharvest.agents.registry import make_policy
from taxharvest.agents.rules import HoldPolicy, MonthlyAllPolicy
from taxharvest.cli import app
from taxharvest.envs.cashflows import CashFlow
from taxharvest.envs.direct_index import DirectIndexEnv
from taxharvest.market.synthetic import SyntheticMarket
from taxharvest.sim.backtest import JSON_KEYS, run_backtest
from taxharvest.sim.quiet import quiet_guardrail

SMALL = ["--assets", "24", "--years", "1"]
TOP_KEYS = {*JSON_KEYS, "yearly", "series", "relaxations", "config"}


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_json_keys_exactly(backtest_market):
    env = DirectIndexEnv(market=backtest_market, profile="mfj-250k", random_start=False, episode_years=1.0)
    data = run_backtest(MonthlyAllPolicy(), env).to_json()
    assert set(data) == TOP_KEYS and len(data) == len(TOP_KEYS)
    assert set(data["config"]) >= {"policy", "profile", "market", "te_limit", "cadence",
                                   "guardrail"}
    assert set(data["series"]) == {"dates", "portfolio", "benchmark", "savings", "ex_ante_te",
                                   "rolling_te", "guardrail_status"}
    assert len({len(v) for v in data["series"].values()}) == 1
    assert all(set(block) >= {"tax_savings", "harvested_losses", "te", "form_8949_rows"}
               for block in data["yearly"].values())
    json.dumps(data, allow_nan=False)  # strict JSON: no NaN
    assert data["config"]["policy"] == "monthly-all" and data["harvested_losses"] > 0


def test_same_seed_same_json(tmp_path):
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.json"
        result = cli("backtest", "--policy", "threshold:0.05", "--profile", "mfj-800k",
                     "--market", "synthetic:seed=3", *SMALL, "--json", str(out))
        assert result.exit_code == 0, result.output
        data = json.loads(out.read_text())
        assert data.pop("runtime_s") >= 0
        outputs.append(data)
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("guardrail", [True, False])
def test_a_book_that_never_harvests_tracks_its_benchmark_through_dividends(guardrail):
    # dividends arrive as cash the program invests at the next decision, pooled into
    # minimum tickets for the names furthest under the index
    market = SyntheticMarket(n_assets=100, years=4.0, seed=11, dividends=True).generate()
    env = DirectIndexEnv(market=market, random_start=False, episode_years=3.0,
                         guardrail=guardrail)
    with quiet_guardrail():
        m = run_backtest(make_policy("hold", "mfj-800k"), env, seed=0).metrics
    assert m["harvested_losses"] == 0.0
    assert m["tracking_error"] < 2e-4 and m["decoupling"] < 5e-4


def test_the_days_close_every_step_on_its_values_and_carry_its_flows():
    """The daily record the realized TE reads: one close per trading day from the start,
    the step's own values on its last day, every flow on the day it was paid, and a hold book
    with dividends and flows earning its benchmark's return each day but the dividends'."""
    market = SyntheticMarket(n_assets=40, years=2.0, seed=5, dividends=True).generate()
    env = DirectIndexEnv(market=market, random_start=False, episode_years=1.0, n_assets=40,
                         cash_flows=[CashFlow(amount=5e4, period="month"),
                                     CashFlow(fraction=-0.02, period="quarter")])
    with quiet_guardrail():
        result = run_backtest(make_policy("threshold:0.05", "mfj-800k"), env, seed=0)
    t, raw = result.trajectory, env.unwrapped
    d = t.daily
    assert np.array_equal(d.dates, market.dates[raw.start:raw.end + 1])
    ends = np.searchsorted(d.dates, t.dates)
    assert np.array_equal(d.portfolio[ends], t.portfolio)
    assert np.array_equal(d.benchmark[ends], t.benchmark)
    assert d.cash_flow.sum() == pytest.approx(t.cash_flow.sum()) and (d.cash_flow > 0).any()
    assert np.count_nonzero(d.cash_flow) == np.count_nonzero(t.cash_flow)
    assert np.isfinite(d.portfolio).all() and (d.portfolio > 0).all()
    assert result.metrics["tracking_error"] == pytest.approx(
        np.std(d.active_returns(), ddof=1) * np.sqrt(252))
    with quiet_guardrail():
        held = run_backtest(make_policy("hold", "mfj-800k"), env, seed=0).trajectory.daily
    assert np.abs(held.active_returns()).max() < 2e-3  # a dividend's cash until invested


def test_a_legacy_books_benchmark_starts_with_the_same_basis():
    """Lots bought at 80 and worth less: the benchmark account replacing them carries their
    basis, so the liquidation taxes no embedded gain (or loss) on one side only."""
    market = SyntheticMarket(n_assets=40, years=2.0, seed=3).generate()
    assert market.dividends.sum() == market.distributions.sum() == 0  # nothing reinvested
    lots = [{"ticker": market.tickers[i], "shares": 100.0, "date_acquired": "2020-06-01",
             "cost_basis": 100.0 * 80.0} for i in range(10)]
    env = DirectIndexEnv(market=market, initial_lots=lots, random_start=False, n_assets=40,
                         episode_years=1.0, guardrail=False)
    trajectory = run_backtest(make_policy("hold", "mfj-800k"), env, seed=0).trajectory
    assert trajectory.benchmark[0] < 70_000.0  # the lots' value at the start
    assert trajectory.benchmark_basis == pytest.approx(80_000.0)


def test_a_deposit_inside_a_step_is_no_return(hand_market):
    """$1M deposited on a step's 2nd day, the market up 10% on its 4th: the benchmark's
    time-weighted growth is the index's 10%, not 20%, and a hold book that tracks it has no
    active return or decoupling."""
    prices = np.full((60, 2), 100.0)
    prices[14:] *= 1.10  # start row 5; step 2 covers rows 11..15
    market = hand_market(prices)
    env = DirectIndexEnv(market=market, profile="single-60k", guardrail=False, warmup_days=5,
                         random_start=False, episode_years=10, decision="rules",
                         cash_flows=[CashFlow(amount=1e6, date=str(market.dates[12]))])
    result = run_backtest(HoldPolicy(), env)
    t = result.trajectory
    assert t.index(t.benchmark)[-1] == pytest.approx(1.10)
    assert result.metrics["decoupling"] == pytest.approx(0.0, abs=1e-9)
    assert result.metrics["active_return"] == pytest.approx(0.0, abs=1e-9)


def test_a_deposit_inside_a_step_that_crosses_a_year_is_no_return(hand_market):
    """Paid at the step's close (in January), as the firm blotter pays it."""
    prices = np.full((60, 2), 100.0)
    prices[39:] *= 1.10  # 2026-01-02, inside the step 2025-12-26 .. 2026-01-05
    market = hand_market(prices, start="2025-11-05")
    env = DirectIndexEnv(market=market, profile="single-60k", guardrail=False, warmup_days=5,
                         random_start=False, episode_years=10, decision="rules",
                         cash_flows=[CashFlow(amount=1e6, date=str(market.dates[37]))])
    result = run_backtest(HoldPolicy(), env)
    assert result.trajectory.index(result.trajectory.benchmark)[-1] == pytest.approx(1.10)
    assert result.metrics["decoupling"] == pytest.approx(0.0, abs=1e-9)


def test_intent_reads_the_budget_an_action_carries(hand_market):
    """A policy may put its budget share in the action, as PPO does: the run reads what
    the environment reads."""

    class Budget:
        name = "budget"

        def reset(self):
            pass

        def act(self, observation, info):
            return Decision(np.append(np.ones(observation["assets"].shape[0]), 0.5))

    rng = np.random.default_rng(0)
    market = hand_market(100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (120, 4)), 0)))
    env = DirectIndexEnv(market=market, warmup_days=30, episode_years=0.2, random_start=False)
    result = run_backtest(Budget(), env)
    assert result.metrics["te_budget_share"] == pytest.approx(0.5)


def environment_after_import(given: dict[str, str], dropped: tuple[str, ...], names: tuple[str, ...],
                             first: str = "") -> list[str]:
    """The variables ``names`` as a fresh interpreter sees them after ``import {first}
    taxharvest``, started with ``dropped`` removed from this environment and ``given`` set
    ('-' for one left unset)."""
    env = {k: v for k, v in os.environ.items() if k not in dropped} | given
    code = (f"import os, {first + ', ' if first else ''}taxharvest; "
            f"print(*(os.environ.get(n, '-') for n in {names!r}))")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout.split()


BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CPU_TARGET = ("NUMBA_CPU_NAME", "OPENBLAS_CORETYPE")


@pytest.mark.parametrize("given", [None, "3"])
def test_import_sets_one_blas_thread_unless_the_user_chose(given):
    """Same seed, same numbers on any core count: a threaded BLAS sums in an order that
    depends on it, so the package asks for one thread before numpy loads."""
    chosen = {} if given is None else {"OPENBLAS_NUM_THREADS": given}
    out = environment_after_import(chosen, BLAS_THREADS, BLAS_THREADS[:2])
    assert out == [given or "1", "1"]


AVX2 = ("processor\t: 0\nflags\t\t: fpu sse2 popcnt avx avx2 fma movbe f16c abm bmi1 bmi2\n"
        "processor\t: 1\n")


@pytest.mark.parametrize(("machine", "cpuinfo", "pinned"), [
    ("x86_64", AVX2, True),
    ("AMD64", AVX2 + "flags\t: avx512f", True),  # the first core's flags count
    ("x86_64", "flags\t: fpu sse2 avx", False),  # no AVX2: its own target
    ("x86_64", AVX2.replace(" movbe", ""), False),  # a virtual CPU hiding one of Haswell's
    ("aarch64", "Features\t: fp asimd", False),
    ("x86_64", "", False),  # unreadable cpuinfo
])
def test_the_cpu_target_is_haswell_on_every_avx2_x86_machine(machine, cpuinfo, pinned):
    """Same seed, same numbers on any AVX2 x86-64 CPU: numba and OpenBLAS compile for one
    instruction set, not the host's vector width."""
    from taxharvest import cpu_target

    expected = {"NUMBA_CPU_NAME": "haswell", "OPENBLAS_CORETYPE": "Haswell"} if pinned else {}
    assert cpu_target(machine, cpuinfo) == expected


def host_target() -> list[str]:
    from taxharvest import _read_cpuinfo, cpu_target

    target = cpu_target(platform.machine(), _read_cpuinfo())
    return [target.get(name, "-") for name in CPU_TARGET]


@pytest.mark.parametrize("given", [None, "skylake-avx512"])
def test_import_pins_the_cpu_target_unless_the_user_chose(given):
    chosen = {} if given is None else {"NUMBA_CPU_NAME": given}
    out = environment_after_import(chosen, CPU_TARGET, CPU_TARGET)
    assert out == ([given, "-"] if given else host_target())


def test_a_library_loaded_before_the_package_keeps_its_own_target():
    """numpy (and with it OpenBLAS) imported first: the package does not set the OpenBLAS
    target for worker processes alone, which would then read differently from the parent."""
    out = environment_after_import({}, CPU_TARGET, CPU_TARGET, first="numpy")
    assert out == [host_target()[0], "-"]
