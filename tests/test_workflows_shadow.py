"""Shadow runs: known trades on hand-built holdings, differences, history, bad holdings."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from taxharvest.cli import app
from taxharvest.envs.cashflows import CashFlow
from taxharvest.envs.direct_index import DirectIndexEnv
from taxharvest.errors import InputError
from taxharvest.sim.account import wash_status
from taxharvest.tax.law import marginal_rates
from taxharvest.workflows.shadow import Shadow

SMALL = ["--market", "synthetic:seed=5", "--assets", "24", "--years", "1"]
LOSS, RECENT = "SYN003", "SYN010"


def holdings(market, row: int) -> list[dict]:
    """The benchmark in one lot per stock bought 2024-06-03: SYN003 at -20% on ``row``, the
    rest at +43%; plus a small SYN010 lot bought 10 days before at a loss (wash window)."""
    price, weight = market.prices[row], market.benchmark_weights
    lots = []
    for i, ticker in enumerate(market.tickers):
        shares = round(1e6 * weight[i] / price[i], 3)
        basis = shares * price[i] / (0.8 if ticker == LOSS else 1 / 0.7)
        lots.append({"ticker": ticker, "shares": shares, "date_acquired": "2024-06-03",
                     "cost_basis": round(basis, 2)})
    lots.append({"ticker": RECENT, "shares": 5.0, "date_acquired": str(market.dates[row - 10]),
                 "cost_basis": round(5 * price[10] * 1.3, 2)})
    return lots


def write_lots(path, lots: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(lots[0]))
        writer.writeheader()
        writer.writerows(lots)


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_decision_harvests_the_loss_lot_under_the_threshold_and_hold_does_not(market, tmp_path):
    date = str(market.dates[200])
    lots = tmp_path / "lots.csv"
    write_lots(lots, holdings(market, 200))
    out, table = tmp_path / "shadow.json", tmp_path / "trades.csv"
    result = cli("shadow", "--policy", "threshold:0.1", "--baseline", "hold", "--lots", str(lots),
                 "--profile", "mfj-800k", *SMALL, "--date", date, "--te-limit", "0.05",
                 "--json", str(out), "--csv", str(table))
    assert result.exit_code == 0, result.output
    assert "Trades that differ" in result.output
    doc = json.loads(out.read_text())
    assert doc["kind"] == "shadow" and doc["mode"] == "decision" and doc["date"] == date
    policy, baseline = doc["proposals"]["policy"], doc["proposals"]["baseline"]
    assert policy["harvested"] == [LOSS] and baseline["harvested"] == []
    assert baseline["trades"] == [] and baseline["tax_saving"] == 0.0
    sale = next(t for t in policy["trades"] if t["ticker"] == LOSS)
    basis = next(lot["cost_basis"] for lot in holdings(market, 200) if lot["ticker"] == LOSS)
    # priced at the decision day's close: exactly the -20% lot, long-term (held > 1 year)
    assert sale["side"] == "sell" and sale["realized_gain"] == pytest.approx(-0.2 * basis)
    assert sale["reason"].startswith("harvest") and "threshold" in sale["policy_reason"]
    assert sale["wash"] == "no wash window open"
    assert [lot["date_acquired"] for lot in sale["lots"]] == ["2024-06-03"]
    assert policy["realized_long"] == pytest.approx(-0.2 * basis)
    assert policy["tax_saving"] == pytest.approx(0.2 * basis * marginal_rates("mfj-800k", 2025)[1])
    assert any(t["side"] == "buy" for t in policy["trades"])  # a replacement the program chose
    assert 0 < policy["ex_ante_te"] <= 0.05 and policy["guardrail_status"] in (
        "unchanged", "projected")
    assert {(d["ticker"], d["side"]) for d in doc["differences"]} >= {(LOSS, "sell")}
    assert all(d["baseline_shares"] == 0.0 for d in doc["differences"])
    rows = list(csv.DictReader(table.open()))
    assert {r["ticker"] for r in rows if r["differs"] == "True"} >= {LOSS}


def test_wash_window_of_a_recent_purchase_is_reported(market):
    lots = holdings(market, 200)
    env = DirectIndexEnv(market=market, initial_lots=lots, random_start=False, episode_years=1.0)
    env.reset(options={"start": str(market.dates[200])})
    status = wash_status(env, env.ledger.ticker_index[RECENT])
    elapsed = int((market.dates[200] - market.dates[190]).astype(int))
    # a loss sale on any of the days elapsed..30 after the purchase would be washed
    assert status == (f"bought on {market.dates[190]}: a loss sale is washed for "
                      f"{30 - elapsed + 1} more days")
    assert wash_status(env, env.ledger.ticker_index[LOSS]) == "no wash window open"
    assert env.action_mask[env.ledger.ticker_index[RECENT]] == 0  # its loss lot is washed


def test_history_runs_both_policies_on_the_same_path(market):
    start = market.dates[130]
    lots = holdings(market, 130)
    value = sum(lot["shares"] * market.prices[130, market.tickers.index(lot["ticker"])]
                for lot in lots)
    cut = market.slice(market.dates[4], market.dates[-1])
    shadow = Shadow("threshold:0.1", "hold", "mfj-800k", cut, lots, initial_value=value,
                    te_limit=0.05)
    history = shadow.history(str(start))
    decisions, summary = history.decisions, history.summary
    assert decisions[0]["date"] == str(start) and not decisions[0]["agree"]
    assert decisions[0]["policy_harvested"] == [LOSS] and decisions[0]["baseline_harvested"] == []
    assert summary["agreement_rate"] == pytest.approx(np.mean([d["agree"] for d in decisions]))
    assert summary["largest_divergence"][0]["divergence"] == max(d["divergence"]
                                                                 for d in decisions)
    # hold never harvests; its rebalancing may differ from the harvester's
    assert not any(reason.startswith("harvest") for reason in summary["divergent_trades"]["baseline"])
    assert summary["divergent_trades"]["policy"]["harvest: sell the lots at a loss"] >= 1
    assert summary["policy"]["harvested_losses"] > 0 == summary["baseline"]["harvested_losses"]
    # hold may realize a gain to track (never a loss): its tax alpha is at most zero
    assert summary["policy"]["tax_alpha"] > 0.0 >= summary["baseline"]["tax_alpha"]
    runs = history.to_json()["runs"]
    assert runs["policy"]["series"]["dates"] == runs["baseline"]["series"]["dates"]
    assert runs["policy"]["schedule_d"]
    held = [term for year in runs["baseline"]["schedule_d"].values() for term in year.values()]
    assert all(term["gain"] >= 0 for term in held)  # hold realizes no loss
    # no Form 8949 row for a solver's residue (a lot's sale worth cents)
    assert all(term["proceeds"] >= 1.0 for run in runs.values()
               for year in run["schedule_d"].values() for term in year.values())
    json.dumps(history.to_json(), allow_nan=False)


def test_history_pays_the_cash_flows_into_both_accounts_and_their_benchmark(market):
    lots = holdings(market, 130)
    value = sum(lot["shares"] * market.prices[130, market.tickers.index(lot["ticker"])]
                for lot in lots)
    cut = market.slice(market.dates[4], market.dates[-1])
    flows = (CashFlow(amount=20_000.0, period="month"),)
    docs = [Shadow("hold", "threshold:0.1", "mfj-800k", cut, lots, initial_value=value,
                   te_limit=0.05, cash_flows=given).history(str(market.dates[130])).to_json()
            for given in ((), flows)]
    assert docs[1]["config"]["cash_flows"] == [
        {"amount": 20_000.0, "fraction": 0.0, "period": "month", "date": None}]
    dates = docs[0]["runs"]["policy"]["series"]["dates"]
    months = len({d[:7] for d in dates}) - 1  # a deposit on the first trading day of each
    for role in ("policy", "baseline"):
        before, after = (doc["runs"][role]["series"] for doc in docs)
        assert after["benchmark"] == docs[1]["runs"]["policy"]["series"]["benchmark"]
        for key in ("portfolio", "benchmark"):  # the deposits, invested since
            assert after[key][-1] - before[key][-1] == pytest.approx(20_000.0 * months, rel=0.2)


@pytest.mark.parametrize(("text", "where"), [
    ("ticker,shares\nSYN001,1\n", "line 1: missing column(s) date_acquired, cost_basis"),
    ("ticker,shares,date_acquired,cost_basis\nZZZ,1,2024-01-02,10\n", "line 2, field 'ticker'"),
    ("ticker,shares,date_acquired,cost_basis\nSYN001,0,2024-01-02,10\n",
     "line 2, field 'shares'"),
    ("ticker,shares,date_acquired,cost_basis\nSYN001,1,2024-01-02,10\nSYN002,1,2024-02-30,10\n",
     "line 3, field 'date_acquired'"),
    ("ticker,shares,date_acquired,cost_basis\nSYN001,1,2024-01-02,-5\n",
     "line 2, field 'cost_basis'"),
])
def test_bad_holdings_rows_name_the_file_line_and_field(text, where, tmp_path):
    lots = tmp_path / "lots.csv"
    lots.write_text(text)
    out = tmp_path / "out.json"
    result = cli("shadow", "--policy", "tuned", "--baseline", "hold", "--lots", str(lots),
                 "--profile", "mfj-800k", *SMALL, "--date", "2025-10-20", "--json", str(out))
    assert isinstance(result.exception, InputError), result.output
    assert str(result.exception).startswith(str(lots)) and where in str(result.exception)
    assert not out.exists()
