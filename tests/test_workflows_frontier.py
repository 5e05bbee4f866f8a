"""The TE frontier: its options, a run on a tiny synthetic path (every policy and limit, the
guardrail's bound, the unguarded run a guardrail-off backtest), its JSON, report and command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from taxharvest.agents.registry import make_policy
from taxharvest.cli import app
from taxharvest.errors import InputError
from taxharvest.io import json_text
from taxharvest.market.risk import WARMUP_DAYS
from taxharvest.report import render_report
from taxharvest.report.frontier import FORM_8949_ROWS, FRONTIER
from taxharvest.workflows.evaluate import EvalMarket, real_paths
from taxharvest.workflows.frontier import frontier, parse_policies, parse_te_limits
from taxharvest.workflows.markets import real_market, window

LIMITS = (0.01, None)
TINY = ["--paths", "1", "--assets", "16", "--years", "0.5", "--workers", "1"]


def policies() -> list[str]:
    """``hold`` and ``monthly-all``, and ``optimizer`` once the registry knows it."""
    try:
        make_policy("optimizer", "mfj-800k")
    except InputError:
        return ["hold", "monthly-all"]
    return ["hold", "monthly-all", "optimizer"]


@pytest.mark.parametrize(("text", "limits"), [
    ("0.0025,0.005,0.01,0.02,none", (0.0025, 0.005, 0.01, 0.02, None)),
    ("None, 0.02 ,0.005", (0.005, 0.02, None)),
    ("0.01", (0.01,)),
])
def test_te_limits_parse_ascending_none_last(text, limits):
    assert parse_te_limits(text) == limits


@pytest.mark.parametrize("text", ["", " , ", "0.01,abc", "-0.01", "0", "nan", "inf", "1.5",
                                  "0.01,0.010", "none,NONE"])
def test_bad_te_limits_are_one_line_naming_the_option(text):
    with pytest.raises(InputError, match="field 'te-limits'"):
        parse_te_limits(text)


@pytest.mark.parametrize("text", ["", " ,", "hold,monthly-all,hold"])
def test_bad_policy_lists_name_the_option(text):
    with pytest.raises(InputError, match="field 'policies'"):
        parse_policies(text)


@pytest.fixture(scope="module")
def document():
    markets = [EvalMarket("synthetic:0", seed=0, assets=16, years=0.5)]
    return frontier("mfj-800k", policies(), LIMITS, markets, workers=1)


def test_every_policy_and_limit_is_a_row(document):
    assert document["kind"] == "frontier"
    assert [(r["policy"], r["te_limit"]) for r in document["rows"]] == \
        [(spec, limit) for spec in policies() for limit in LIMITS]
    assert len(document["results"]) == len(document["rows"])  # one path
    for row in document["rows"]:
        assert row["paths"] == 1 and all(np.isfinite(row[m.key]) for m in FRONTIER)


def test_hold_harvests_nothing_and_the_guardrail_bounds_ex_ante_te(document):
    rows = {(r["policy"], r["te_limit"]): r for r in document["rows"]}
    for limit in LIMITS:
        # hold asks for no harvest: at most the decision core's dust trades realize a loss
        # (cents, on a $1M account), and the book stays the benchmark
        hold = rows["hold", limit]
        assert hold["harvested_losses"] < 10.0 and abs(hold["tax_alpha"]) < 1e-5
        assert hold["tracking_error"] < 1e-4 and hold["max_ex_ante_te"] < 1e-4
    for (_, limit), row in rows.items():
        # the guardrail projects every decision inside the limit unless it had to relax it
        if limit is not None and not row["guardrail_relaxed"]:
            assert row["max_ex_ante_te"] <= limit * (1 + 1e-9)
    guarded, unguarded = rows["monthly-all", 0.01], rows["monthly-all", None]
    assert unguarded["max_ex_ante_te"] > 0.01  # on this path the limit binds
    assert unguarded["harvested_losses"] > guarded["harvested_losses"] > 0
    assert unguarded["tax_alpha"] > guarded["tax_alpha"] > 0


def test_the_unguarded_row_is_a_guardrail_off_backtest(document, tmp_path):
    out = tmp_path / "backtest.json"
    result = CliRunner().invoke(app, [
        "backtest", "--policy", "monthly-all", "--profile", "mfj-800k", "--market",
        "synthetic:seed=0", "--assets", "16", "--years", "0.5", "--no-guardrail",
        "--json", str(out)])
    assert result.exit_code == 0, result.output
    run = json.loads(out.read_text())
    row = next(r for r in document["rows"] if r["policy"] == "monthly-all" and
               r["te_limit"] is None)
    for m in FRONTIER:
        expected = (np.mean([y["form_8949_rows"] for y in run["yearly"].values()])
                    if m is FORM_8949_ROWS else run[m.key])
        assert row[m.key] == pytest.approx(expected, rel=1e-12, abs=1e-15), m.key


def test_the_command_prints_every_row_and_writes_the_document(document, tmp_path):
    out = tmp_path / "frontier.json"
    result = CliRunner().invoke(app, ["frontier", "--policies", ",".join(policies()),
                                      "--te-limits", "none,0.01", *TINY, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == json.loads(json_text(document))  # round trip
    lines = result.output.splitlines()
    assert "Tax alpha against tracking error: mfj-800k, 1 path(s)" in result.output
    for spec in policies():
        assert any(line.strip() == spec for line in lines)
    assert sum(line.split()[:1] in (["1.00%"], ["none"]) for line in lines) == 2 * len(
        policies())
    assert "ex-ante TE within its limit" in result.output


def test_the_command_runs_on_real_prices(price_files):
    result = CliRunner().invoke(app, [
        "frontier", "--policies", "hold,monthly-all", "--te-limits", "0.01,none",
        "--prices", str(price_files.prices), "--sectors", str(price_files.sectors),
        "--workers", "1", "--json", "-"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["config"]["paths"] == ["real"] and doc["config"]["assets"] is None
    assert [(r["policy"], r["te_limit"]) for r in doc["rows"]] == \
        [(spec, limit) for spec in ("hold", "monthly-all") for limit in LIMITS]


def test_real_starts_are_paths_of_one_history_on_consecutive_days(price_files):
    """``--starts 3``: three paths of the real prices, decided from the window's first day
    and the two trading days after it, each the run of ``backtest --start`` that day; the
    summary is over the three."""
    result = CliRunner().invoke(app, [
        "frontier", "--policies", "monthly-all", "--te-limits", "0.01", "--starts", "3",
        "--prices", str(price_files.prices), "--sectors", str(price_files.sectors),
        "--workers", "1", "--json", "-"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["config"]["paths"] == ["real", "real+1d", "real+2d"]
    runs = doc["results"]
    firsts = [run["path"] for run in runs]
    assert firsts == ["real", "real+1d", "real+2d"] and doc["rows"][0]["paths"] == 3
    alphas = [run["tax_alpha"] for run in runs]
    assert doc["rows"][0]["tax_alpha"] == pytest.approx(np.mean(alphas))
    assert doc["rows"][0]["max_ex_ante_te"] == max(run["max_ex_ante_te"] for run in runs)
    mk = real_market(price_files.prices, price_files.sectors)
    second = mk.dates[mk.date_index(window(mk, None, None)[1]) + 1]
    backtest = CliRunner().invoke(app, [
        "backtest", "--policy", "monthly-all", "--profile", "mfj-800k", "--te-limit", "0.01",
        "--prices", str(price_files.prices), "--sectors", str(price_files.sectors),
        "--start", str(second), "--json", "-"])
    assert backtest.exit_code == 0, backtest.output
    assert json.loads(backtest.stdout)["tax_alpha"] == runs[1]["tax_alpha"]


def test_real_paths_start_on_consecutive_trading_days_and_refuse_too_many(price_files):
    mk = real_market(price_files.prices, price_files.sectors)
    first = window(mk, None, None)[1]
    paths = real_paths(mk, first, 3)
    row = mk.date_index(first)
    assert [p.start for p in paths] == [str(mk.dates[row + k]) for k in range(3)]
    for path in paths:  # each cut as backtest --start cuts it: the warm-up before its start
        assert path.market.dates[WARMUP_DAYS] == np.datetime64(path.start)
    for starts in (0, mk.n_days):
        with pytest.raises(InputError, match="field 'starts'"):
            real_paths(mk, first, starts)


def test_the_report_renders_a_frontier_page(document, tmp_path):
    path = tmp_path / "frontier.json"
    path.write_text(json_text(document))
    result = CliRunner().invoke(app, ["report", str(path), "--out", str(tmp_path / "f.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "f.html").read_text()
    assert "<h1>Tax alpha against tracking error: mfj-800k</h1>" in page
    assert '<img src="data:image/png;base64,' in page and "nan%" not in page.lower()
    assert all(m.label in page for m in FRONTIER) and ">none<" in page and ">1.00%<" in page
    damaged = {**document, "rows": []}
    with pytest.raises(InputError, match="field 'rows'"):
        render_report(damaged, tmp_path / "damaged.html")


@pytest.mark.parametrize(("args", "field"), [
    (["--te-limits", "0.01,abc"], "te-limits"),
    (["--te-limits", "-0.01"], "te-limits"),
    (["--te-limits", ","], "te-limits"),
    (["--policies", "hold,nope"], "policies"),
    (["--policies", ""], "policies"),
    (["--profile", "rich"], "profile"),
    (["--paths", "0"], "paths"),
    (["--paths", "2", "--prices", "p.csv", "--sectors", "s.csv"], "paths"),
    (["--assets", "5"], "assets"),
    (["--strict-data"], "strict-data"),
    (["--starts", "2"], "starts"),
    (["--workers", "0"], "workers"),
    (["--json", "/dev/null/no-folder/f.json"], "json"),
])
def test_bad_arguments_fail_before_any_market_is_built(args, field, monkeypatch):
    def built(*_, **__):
        raise AssertionError("a market was built")

    monkeypatch.setattr("taxharvest.cli.options.market", built)
    monkeypatch.setattr("taxharvest.workflows.frontier.run_tasks", built)
    result = CliRunner().invoke(app, ["frontier", *args])
    assert isinstance(result.exception, InputError), result.output
    assert f"field '{field}'" in str(result.exception) and "\n" not in str(result.exception)


def test_a_crash_template_path_runs_its_crash_as_evaluate_does():
    """The frontier and ``evaluate`` build a path's environment in one place: a crash
    template's path is its crash market in both (not the plain synthetic one)."""
    from taxharvest.workflows.evaluate import EvalTask, run_eval_task

    crash = EvalMarket("synthetic:0+covid-2020", seed=0, assets=16, years=1.0,
                       scenario="covid-2020", offset=10)
    plain = EvalMarket("synthetic:0", seed=0, assets=16, years=1.0)
    rows = frontier("mfj-800k", ["monthly-all"], (0.01,), [crash, plain], workers=1)["results"]
    evaluated = run_eval_task(EvalTask("mfj-800k", (("monthly-all", "monthly-all"),), crash))[0]
    assert rows[0]["tax_alpha"] == evaluated["tax_alpha"]
    assert rows[0]["max_ex_ante_te"] == evaluated["max_ex_ante_te"]
    assert rows[0]["tax_alpha"] != rows[1]["tax_alpha"]
