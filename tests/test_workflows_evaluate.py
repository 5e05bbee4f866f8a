"""Head-to-head evaluation: same paths for every policy, paired summaries, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from taxharvest.workflows.evaluate import (
    EvalMarket,
    EvalTask,
    evaluate,
    markdown_table,
    summarize,
)


def test_policies_share_each_path_and_the_summary_pairs_them():
    markets = [EvalMarket(f"synthetic:{seed}", seed=seed, assets=30, years=1.0)
               for seed in (0, 1)]
    specs = (("hold", "hold"), ("monthly-all", "monthly-all"), ("threshold:0.1", "threshold:0.1"))
    rows = evaluate([EvalTask("mfj-800k", specs, market) for market in markets])
    assert [(r["market"], r["policy"]) for r in rows] == [
        (m.label, name) for m in markets for name, _ in specs]
    hold = [r for r in rows if r["policy"] == "hold"]
    assert all(r["tax_alpha"] == 0.0 and r["n_trades"] == 0 for r in hold)
    summary = {e["policy"]: e for e in summarize(rows)}
    best = max(summary[p]["tax_alpha"] for p in ("monthly-all", "threshold:0.1"))
    for name in ("monthly-all", "threshold:0.1"):
        entry = summary[name]
        assert entry["paths"] == 2
        mine = [r for r in rows if r["policy"] == name]
        assert entry["max_ex_ante_te"] == max(r["max_ex_ante_te"] for r in mine)  # worst path
        assert entry["tax_alpha"] == pytest.approx(sum(r["tax_alpha"] for r in mine) / 2)
        assert entry["tax_alpha_vs_best_rule"] == pytest.approx(entry["tax_alpha"] / best - 1)
    assert "| mfj-800k | monthly-all |" in markdown_table(summarize(rows))
    # against the optimizer's ask: hold withholds every harvest, the calendar rule most of them
    assert summary["hold"]["harvest_withheld"] == 1.0
    assert 0.0 < summary["monthly-all"]["harvest_withheld"] < 1.0
    assert all(r["te_budget_share"] == 1.0 for r in rows)


def test_evaluate_command_rejects_bad_arguments(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "taxharvest", "evaluate", "--profiles", "nope", "--paths", "1"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "nope" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "taxharvest", "evaluate", "--profiles", "mfj-800k",
         "--models", str(tmp_path), "--paths", "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no trained policy" in result.stderr
