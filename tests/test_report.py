"""HTML reports of stress, shadow and sweep documents: self-contained, plots embedded."""

from __future__ import annotations

import copy
import json
import re

import pytest
from typer.testing import CliRunner

from taxharvest.cli import app
from taxharvest.errors import InputError
from taxharvest.report import render_report
from taxharvest.workflows.markets import synthetic_market
from taxharvest.workflows.shadow import Shadow
from taxharvest.workflows.stress import StressTest
from taxharvest.workflows.sweep import POLICIES, summarize

IMG = '<img src="data:image/png;base64,'


@pytest.fixture(scope="module")
def documents(market) -> dict[str, dict]:
    stress = StressTest("monthly-all", "mfj-800k", scenarios=["black-monday-1987"], paths=2,
                        n_assets=24, years=0.6).run(workers=1).to_json()
    row = 150
    lots = [{"ticker": t, "shares": 100.0, "date_acquired": "2024-06-03",
             "cost_basis": 100.0 * market.prices[row, i] * (1.25 if i % 4 == 0 else 0.7)}
            for i, t in enumerate(market.tickers)]
    value = sum(100.0 * market.prices[row, i] for i in range(market.n_assets))
    shadow = Shadow("threshold:0.1", "hold", "mfj-800k", market, lots, initial_value=value,
                    te_limit=0.05)
    rows = [{"profile": profile, "seed": seed, "policy": policy, "name": policy, "paths": 2,
             "tax_alpha": 0.01 * (k + 1) + 0.001 * seed, "after_tax_excess_liquidated": 0.005,
             "active_return": 0.0, "harvest_yield": 0.02, "tracking_error": 0.004,
             "max_ex_ante_te": 0.008, "decoupling": 0.01, "turnover": 0.2, "n_trades": 10}
            for profile in ("mfj-800k", "single-60k") for seed in range(3)
            for k, policy in enumerate(POLICIES)]
    return {
        "stress": stress,
        "shadow-decision": shadow.decision(str(market.dates[row])).to_json(),
        "shadow-history": shadow.history(str(market.dates[row])).to_json(),
        "sweep": {"kind": "sweep", "config": {"profiles": ["mfj-800k", "single-60k"]},
                  "summary": summarize(rows), "results": rows},
    }


@pytest.mark.parametrize("name", ["stress", "shadow-decision", "shadow-history", "sweep"])
def test_each_kind_renders_a_self_contained_page(documents, name, tmp_path):
    out = render_report(documents[name], tmp_path / f"{name}.html")
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and len(text) > 20_000
    assert IMG in text and "nan%" not in text.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched
    assert "<script" not in text and "<link" not in text


def test_the_pages_hold_what_each_kind_is_for(documents, tmp_path):
    stress = render_report(documents["stress"], tmp_path / "s.html").read_text()
    assert stress.count(IMG) == 1 and "black-monday-1987: tracking error" in stress
    assert "decoupling mean / max" in stress and "Guardrail on: the largest ex-ante TE" in stress
    history = render_report(documents["shadow-history"], tmp_path / "h.html").read_text()
    assert "Divergence timeline" in history and "Schedule D: policy" in history
    decision = render_report(documents["shadow-decision"], tmp_path / "d.html").read_text()
    assert "Trades that differ" in decision and "wash-sale window" in decision
    sweep = render_report(documents["sweep"], tmp_path / "w.html").read_text()
    assert "mean ± std over seeds" in sweep and "1.10% ± 0.10%" in sweep


def _broken(documents, name: str, edit) -> dict:
    doc = copy.deepcopy(documents[name])
    edit(doc)
    return doc


@pytest.mark.parametrize(("name", "edit", "field"), [
    ("stress", lambda d: d.pop("results"), "results"),
    ("stress", lambda d: d.update(results=[]), "results"),
    ("stress", lambda d: d["results"][0].pop("te_path"), "te_path"),
    ("shadow-decision", lambda d: d.update(mode="tomorrow"), "mode"),
    ("shadow-decision", lambda d: d["proposals"].pop("baseline"), "baseline"),
    ("shadow-history", lambda d: d.pop("decisions"), "decisions"),
    ("sweep", lambda d: d.update(summary={}), "summary"),
    ("sweep", lambda d: d["summary"]["mfj-800k"]["ppo"].pop("tax_alpha_std"), "tax_alpha_std"),
    ("sweep", lambda d: d.update(kind="sweeps"), None),
])
def test_bad_documents_are_input_errors(documents, name, edit, field, tmp_path):
    with pytest.raises(InputError) as error:
        render_report(_broken(documents, name, edit), tmp_path / "r.html")
    if field is not None:
        assert error.value.field == field
    assert not (tmp_path / "r.html").exists()


def test_report_command(documents, tmp_path):
    run = tmp_path / "run.json"
    run.write_text(json.dumps(documents["sweep"]))
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert IMG in (tmp_path / "r.html").read_text()
    run.write_text("{not json")
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "x.html")])
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith(f"{run}, line 1: not valid JSON")
    run.write_text(json.dumps({"kind": "stress", "config": {}}))
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "x.html")])
    assert str(result.exception) == f"{run}, field 'headline': stress has no 'headline'"
    assert not (tmp_path / "x.html").exists()


def test_backtest_documents_still_render_as_before(tmp_path):
    from taxharvest.agents.rules import MonthlyAllPolicy
    from taxharvest.envs.direct_index import DirectIndexEnv
    from taxharvest.sim.backtest import run_backtest

    env = DirectIndexEnv(market=synthetic_market(24, 0.5, seed=3), random_start=False,
                         episode_years=0.5)
    run = run_backtest(MonthlyAllPolicy(), env).to_json()
    text = render_report(run, tmp_path / "b.html").read_text()
    assert "After-tax wealth against the benchmark" in text and "data:image/png;base64," in text
