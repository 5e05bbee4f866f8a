"""Paired evaluation: each policy minus the profile's baseline on the same paths, with a
Student-t interval that is honest about one path, and the `evaluate` command that shows it."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from typer.testing import CliRunner

from taxharvest.cli import app
from taxharvest.errors import InputError
from taxharvest.sim.paired import (
    choose_baseline,
    interval,
    paired_difference,
    paired_table,
    summarize_differences,
)

T_975_3 = 3.182446305  # Student t, 0.975 quantile, 3 degrees of freedom (tables)


def rows_of(values: dict[str, list[float]], profile: str = "mfj-800k",
            liquidated: dict[str, list[float]] | None = None) -> list[dict]:
    """Rows of ``policy -> tax alpha per path`` (paths synthetic:0, synthetic:1, ...)."""
    liquidated = liquidated or values
    return [{"profile": profile, "market": f"synthetic:{k}", "policy": policy, "name": policy,
             "tax_alpha": value, "after_tax_excess_liquidated": liquidated[policy][k]}
            for policy, path_values in values.items() for k, value in enumerate(path_values)]


def test_the_interval_of_a_hand_made_case():
    d = [0.1, 0.2, 0.3, 0.4]
    rows = rows_of({"monthly-all": [0.5] * 4, "threshold:0.1": [0.5 + x for x in d]})
    diff = paired_difference(rows, "monthly-all", "threshold:0.1", "tax_alpha")
    mean = sum(d) / 4
    s = math.sqrt(sum((x - mean) ** 2 for x in d) / 3)
    half = T_975_3 * s / math.sqrt(4)
    assert diff.n == 4 and diff.wins == 4 and diff.share == 1.0
    assert diff.mean == pytest.approx(0.25)
    assert diff.low == pytest.approx(0.25 - half, abs=1e-9)
    assert diff.high == pytest.approx(0.25 + half, abs=1e-9)
    assert diff.significant


def test_one_path_has_no_interval_and_none_no_mean():
    one = summarize_differences([0.3])
    assert one.mean == pytest.approx(0.3) and one.n == 1 and one.wins == 1
    assert math.isnan(one.low) and math.isnan(one.high) and not one.significant
    assert interval({"low": one.low, "high": one.high}) == "n/a"
    assert interval({"low": None, "high": None}) == "n/a"  # as read back from the JSON
    none = summarize_differences([])
    assert none.n == 0 and math.isnan(none.mean) and math.isnan(none.share)


def test_wins_are_strict_and_an_interval_across_zero_is_not_significant():
    diff = summarize_differences([0.2, -0.1, 0.0, 0.3, -0.2])
    assert diff.wins == 2 and diff.share == pytest.approx(0.4)  # a tie is no win
    assert diff.low < 0 < diff.high and not diff.significant


def test_pairing_is_by_path_label_not_row_order():
    rows = rows_of({"monthly-all": [0.01, 0.03, 0.02], "hold": [0.0, 0.0, 0.0],
                    "tuned": [0.02, 0.01, 0.05]})
    expected = paired_difference(rows, "monthly-all", "tuned")
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    assert paired_difference(shuffled, "monthly-all", "tuned") == expected
    assert expected.mean == pytest.approx((0.01 - 0.02 + 0.03) / 3) and expected.wins == 2


def test_a_path_missing_for_one_policy_or_given_twice_is_refused():
    rows = rows_of({"monthly-all": [0.01, 0.03], "tuned": [0.02, 0.01]})
    with pytest.raises(InputError, match="synthetic:1") as err:
        paired_difference(rows[:-1], "monthly-all", "tuned")  # tuned lacks synthetic:1
    assert "'tuned' has no row" in str(err.value)
    with pytest.raises(InputError, match="twice"):
        paired_difference(rows + rows[-1:], "monthly-all", "tuned")
    with pytest.raises(InputError, match="several profiles"):
        paired_difference(rows + rows_of({"monthly-all": [0.0], "tuned": [0.0]}, "mfj-250k"),
                          "monthly-all", "tuned")


def test_the_baseline_is_the_best_baseline_policy_else_the_best_non_ppo():
    rows = rows_of({"ppo": [0.09, 0.09], "monthly-all": [0.01, 0.02], "tuned": [0.02, 0.03],
                    "hold": [0.0, 0.0], "threshold:0.1": [0.05, 0.05]})
    assert choose_baseline(rows) == "tuned"  # threshold and ppo are better, but no baseline
    assert choose_baseline(rows, "hold") == "hold"
    with pytest.raises(InputError) as err:
        choose_baseline(rows, "optimizer")
    assert err.value.field == "baseline"
    assert choose_baseline(rows_of({"ppo": [0.09], "hold": [0.0], "threshold:0.1": [0.05]})) \
        == "threshold:0.1"
    assert choose_baseline(rows_of({"ppo:a": [0.01], "ppo:b": [0.02]})) == "ppo:b"


def test_the_real_path_is_its_own_difference_outside_the_interval():
    rows = rows_of({"monthly-all": [0.01, 0.02], "hold": [0.0, 0.0]},
                   liquidated={"monthly-all": [0.005, 0.004], "hold": [0.0, 0.0]})
    rows += [{"profile": "mfj-800k", "market": "real", "policy": p, "name": p,
              "tax_alpha": a, "after_tax_excess_liquidated": a / 2}
             for p, a in (("monthly-all", 0.5), ("hold", 0.0))]
    (entry,) = paired_table(rows)
    assert entry["baseline"] == "monthly-all" and entry["policy"] == "hold"
    alpha = entry["tax_alpha"]
    assert alpha["n"] == 2 and alpha["mean"] == pytest.approx(-0.015) and alpha["wins"] == 0
    assert alpha["real"] == pytest.approx(-0.5)  # not pooled: the mean is the synthetic one
    assert entry["after_tax_excess_liquidated"]["mean"] == pytest.approx(-0.0045)
    assert entry["after_tax_excess_liquidated"]["real"] == pytest.approx(-0.25)


def test_real_paths_of_several_starts_give_their_mean_difference_outside_the_interval():
    from taxharvest.workflows.evaluate import summarize

    rows = rows_of({"monthly-all": [0.01, 0.02], "hold": [0.0, 0.0]})
    rows += [{"profile": "mfj-800k", "market": market, "policy": p, "name": p,
              "tax_alpha": a + shift, "after_tax_excess_liquidated": 0.0,
              "max_ex_ante_te": 0.004 + shift}
             for market, shift in (("real", 0.0), ("real+1d", 0.2), ("real+2d", 0.4))
             for p, a in (("monthly-all", 0.5), ("hold", 0.0))]
    (entry,) = paired_table(rows)
    alpha = entry["tax_alpha"]
    assert alpha["n"] == 2 and alpha["mean"] == pytest.approx(-0.015)  # synthetic only
    assert alpha["real"] == pytest.approx(-0.5)  # the mean over the three starts
    summary = {e["policy"]: e for e in summarize(
        [{**r, **{k: 0.0 for k in ("active_return", "harvest_yield", "tracking_error",
                                    "bias_statistic", "decoupling", "turnover", "n_trades",
                                    "wash_sale_disallowed", "guardrail_relaxed",
                                    "harvest_withheld", "te_budget_share")},
          "max_ex_ante_te": r.get("max_ex_ante_te", 0.0)} for r in rows])}
    assert summary["monthly-all"]["real_tax_alpha"] == pytest.approx(0.7)
    assert summary["monthly-all"]["real_max_ex_ante_te"] == pytest.approx(0.404)
    assert summary["monthly-all"]["paths"] == 2


def test_evaluate_runs_one_real_path_per_start(price_files):
    result = CliRunner().invoke(app, [
        "evaluate", "--profiles", "mfj-800k", "--policies", "monthly-all,hold", "--paths", "0",
        "--starts", "2", "--workers", "1", "--prices", str(price_files.prices), "--sectors",
        str(price_files.sectors), "--json", "-"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert sorted({r["market"] for r in doc["rows"]}) == ["real", "real+1d"]
    assert doc["config"]["starts"] == 2
    by = {(r["policy"], r["market"]): r["tax_alpha"] for r in doc["rows"]}
    (entry,) = doc["paired"]
    assert entry["tax_alpha"]["real"] == pytest.approx(np.mean(
        [by["hold", m] - by["monthly-all", m] for m in ("real", "real+1d")]))
    refused = CliRunner().invoke(app, ["evaluate", "--starts", "2"])
    assert isinstance(refused.exception, InputError) and refused.exception.field == "starts"


def test_evaluate_prints_writes_and_reports_the_paired_differences(tmp_path, price_files):
    out, md, page = tmp_path / "evaluation.json", tmp_path / "evaluation.md", tmp_path / "e.html"
    result = CliRunner().invoke(app, [
        "evaluate", "--profiles", "mfj-800k", "--policies", "monthly-all,hold", "--paths", "2",
        "--assets", "24", "--years", "0.3", "--workers", "1", "--prices",
        str(price_files.prices), "--sectors", str(price_files.sectors), "--json", str(out),
        "--markdown", str(md)])
    assert result.exit_code == 0, result.output
    assert "baseline monthly-all" in result.output and "Δ real" in result.output
    doc = json.loads(out.read_text())
    (entry,) = doc["paired"]
    assert entry["profile"] == "mfj-800k" and entry["baseline"] == "monthly-all"
    assert entry["policy"] == "hold"
    rows = {(r["policy"], r["market"]): r for r in doc["rows"]}
    for key in ("tax_alpha", "after_tax_excess_liquidated"):
        cell = entry[key]
        assert set(cell) >= {"mean", "low", "high", "n", "wins", "share", "real"}
        assert cell["n"] == 2  # the synthetic paths; the real one on its own
        assert cell["low"] <= cell["mean"] <= cell["high"]
        assert cell["mean"] == pytest.approx(sum(
            rows["hold", f"synthetic:{k}"][key] - rows["monthly-all", f"synthetic:{k}"][key]
            for k in (0, 1)) / 2)
        assert cell["real"] == pytest.approx(rows["hold", "real"][key]
                                             - rows["monthly-all", "real"][key])
    text = md.read_text()
    assert "95% CI" in text and "| mfj-800k | hold | monthly-all | 2 |" in text
    assert CliRunner().invoke(app, ["report", str(out), "--out", str(page)]).exit_code == 0
    assert "Paired with the baseline" in page.read_text()
    del doc["paired"]  # a document from before the section: paired from its rows
    out.write_text(json.dumps(doc))
    assert CliRunner().invoke(app, ["report", str(out), "--out", str(page)]).exit_code == 0
    assert interval(entry["tax_alpha"]) in page.read_text()
    refused = CliRunner().invoke(app, ["evaluate", "--policies", "hold", "--baseline", "tuned"])
    assert isinstance(refused.exception, InputError)
    assert refused.exception.field == "baseline"


def test_a_share_of_the_synthetic_paths_carries_the_crash_templates_in_turn():
    from taxharvest.workflows.evaluate import EvalMarket, synthetic_paths

    markets = synthetic_paths(8, 30, 3.0, crash_share=0.25)
    crashed = [m for m in markets if m.scenario is not None]
    assert [m.seed for m in markets] == list(range(8)) and len(crashed) == 2
    assert len({m.scenario for m in crashed}) == 2
    assert all(m.label == f"synthetic:{m.seed}+{m.scenario}" for m in crashed)
    assert synthetic_paths(8, 30, 3.0, crash_share=0.25) == markets  # drawn from the seeds
    assert all(m.scenario is None for m in synthetic_paths(8, 30, 3.0))
    for m in crashed:  # the whole template inside the episode
        env, _ = m.environment("mfj-800k", "weekly", 0.01)
        plain, _ = EvalMarket(f"synthetic:{m.seed}", seed=m.seed, assets=30,
                              years=3.0).environment("mfj-800k", "weekly", 0.01)
        assert env.market_template.n_days == plain.market_template.n_days
        assert not np.array_equal(env.market_template.prices, plain.market_template.prices)


def test_a_real_path_alone_summarizes_without_numpy_warnings():
    import warnings

    from taxharvest.sim.measures import EVALUATION
    from taxharvest.workflows.evaluate import summarize

    rows = [{"profile": "mfj-800k", "market": "real", "policy": policy, "name": policy,
             **{m.key: 0.001 for m in EVALUATION}} for policy in ("optimizer", "ppo")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = summarize(rows)
    assert [e["real_tax_alpha"] for e in summary] == [0.001, 0.001]
    assert all(np.isnan(e["tax_alpha_vs_best_rule"]) for e in summary)
