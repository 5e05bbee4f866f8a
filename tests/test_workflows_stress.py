"""Stress tests: the guardrail's bound checked decision by decision, rows, headline, windows."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from taxharvest.cli import app
from taxharvest.errors import InputError
from taxharvest.market.scenarios import get_scenario, list_scenarios
from taxharvest.sim.backtest import JSON_KEYS
from taxharvest.workflows.markets import synthetic_market
from taxharvest.workflows.stress import (
    MEASURES,
    OFFSET_DAYS,
    StressTest,
    episode_years,
    parse_scenarios,
)

LIMIT = 0.01
TARGET = LIMIT * (1 - 0.1)  # the environment projects to (1 - te_buffer) of the limit
ROW_KEYS = {"scenario", "path", "seed", "policy", "role", "guardrail", *MEASURES,
            "max_rolling_te_in_window", "proxied_at_peak", "peak_date", "window", "market",
            "relaxations", "te_path"}


@pytest.fixture(scope="module")
def result():
    test = StressTest("monthly-all", "mfj-800k", baseline="hold", scenarios=["covid-2020"],
                      paths=2, n_assets=24, years=0.8, te_limit=LIMIT)
    return test.run(workers=1)


def test_rows_cover_every_path_policy_and_mode(result):
    rows = result.rows
    assert len(rows) == 2 * 2 * 2
    assert [(r["path"], r["role"], r["guardrail"]) for r in rows[:4]] == [
        (0, "policy", True), (0, "policy", False), (0, "baseline", True), (0, "baseline", False)]
    assert {r["seed"] for r in rows} == {0, 1}
    for row in rows:
        assert set(row) == ROW_KEYS and set(MEASURES) <= set(JSON_KEYS)
        path = row["te_path"]
        assert len(path["dates"]) == len(path["ex_ante_te"]) == len(path["rolling_te"])
        assert row["window"][0] < row["window"][1] and row["peak_date"] in path["dates"]
    json.dumps(result.to_json(), allow_nan=False)


def test_guardrail_bound_holds_at_every_decision_or_the_relaxation_is_listed(result):
    on = [r for r in result.rows if r["guardrail"]]
    for row in on:
        relaxed = {x["date"] for x in row["relaxations"]}
        assert all(x["reason"] for x in row["relaxations"])
        for date, te in zip(row["te_path"]["dates"], row["te_path"]["ex_ante_te"], strict=True):
            assert te <= TARGET * (1 + 1e-6) or date in relaxed, (row["scenario"], date, te)
        assert row["max_ex_ante_te"] <= LIMIT or row["relaxations"]
    headline = result.headline["guardrail_on"]
    assert headline["max_ex_ante_te"] == max(r["max_ex_ante_te"] for r in on)
    assert headline["within_limit"] == (headline["max_ex_ante_te"] <= LIMIT)
    assert len(headline["relaxations"]) == sum(len(r["relaxations"]) for r in on)
    assert headline["above_limit_unexplained"] == []


def test_without_the_guardrail_the_harvester_leaves_the_limit_and_proxies_the_book(result):
    harvester = [r for r in result.rows if r["policy"] == "monthly-all"]
    off = [r for r in harvester if not r["guardrail"]]
    on = [r for r in harvester if r["guardrail"]]
    assert off and max(r["max_ex_ante_te"] for r in off) > 2 * LIMIT
    assert max(r["proxied_at_peak"] for r in off) > max(r["proxied_at_peak"] for r in on)
    assert all(r["relaxations"] == [] and r["guardrail_interventions"] == 0 for r in off)
    assert all(r["harvested_losses"] > 0 for r in harvester)
    hold = [r for r in result.rows if r["policy"] == "hold"]
    assert all(r["harvested_losses"] == 0 and r["proxied_at_peak"] == 0 for r in hold)
    policies = result.headline["policies"]
    assert set(policies) == {"monthly-all", "hold"} and set(policies["hold"]) == {"on", "off"}
    assert policies["monthly-all"]["off"]["max_decoupling"] == max(r["decoupling"] for r in off)


def test_the_crash_sits_at_a_fixed_offset_after_the_warm_up(result):
    row = result.rows[0]
    years = episode_years("covid-2020", 0.8, OFFSET_DAYS)
    assert years > 0.8  # the episode grew to hold the template and its recovery
    dates = synthetic_market(24, years, seed=0).dates
    assert row["te_path"]["dates"][0] == str(dates[126])
    first = 126 + OFFSET_DAYS
    assert row["window"] == [str(dates[first]),
                             str(dates[first + get_scenario("covid-2020").n_days - 1])]


def test_a_historical_window_runs_once_on_the_data():
    data = synthetic_market(24, 1.0, seed=9)
    window = (str(data.dates[200]), str(data.dates[260]))
    test = StressTest("threshold:0.05", "mfj-250k", windows=[window], market=data, paths=3)
    rows = test.run(workers=1).rows
    assert [(r["scenario"], r["path"], r["guardrail"]) for r in rows] == [
        (f"{window[0]}:{window[1]}", 0, True), (f"{window[0]}:{window[1]}", 0, False)]
    assert rows[0]["te_path"]["dates"][0] == window[0]
    assert rows[0]["te_path"]["dates"][-1] <= window[1]


def test_parse_scenarios():
    assert parse_scenarios("all") == (list(list_scenarios()), [])
    assert parse_scenarios("gfc-2008, 2018-09-20:2018-12-24,gfc-2008") == (
        ["gfc-2008"], [("2018-09-20", "2018-12-24")])
    for bad in ("crash-1929", "2018-09-20:soon", "2018-12-24:2018-09-20", " , "):
        with pytest.raises(InputError, match="scenarios"):
            parse_scenarios(bad)
    with pytest.raises(InputError, match="prices"):
        StressTest("hold", "mfj-800k", windows=[("2020-01-02", "2020-03-02")])


def test_cli_writes_the_json_and_prints_the_headline(tmp_path):
    out = tmp_path / "stress.json"
    result = CliRunner().invoke(app, [
        "stress", "--policy", "threshold:0.05", "--profile", "mfj-800k-ca",
        "--scenarios", "black-monday-1987", "--paths", "1", "--assets", "24", "--years", "0.6",
        "--workers", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "Guardrail on: max ex-ante TE" in result.output and "Decoupling of" in result.output
    doc = json.loads(out.read_text())
    assert doc["kind"] == "stress" and {r["guardrail"] for r in doc["results"]} == {True, False}
    assert set(doc["results"][0]) == ROW_KEYS
    assert doc["config"]["scenarios"] == ["black-monday-1987"] and doc["summary"]


def test_the_crash_windows_te_reads_the_days_of_windows_overlapping_the_crash(result):
    """At most the run's 63-day maximum, at least every plotted step's whose window ends
    inside the crash (each of those windows overlaps it)."""
    for row in result.rows:
        inside = [te for date, te in zip(row["te_path"]["dates"], row["te_path"]["rolling_te"],
                                         strict=True)
                  if te is not None and row["window"][0] <= date <= row["window"][1]]
        assert inside, row["scenario"]  # the crash starts a full window after the first decision
        assert max(inside) <= row["max_rolling_te_in_window"] + 1e-7  # the path: 7 decimals
        assert row["max_rolling_te_in_window"] <= row["max_rolling_te"] * (1 + 1e-12)
