"""Shadow against a firm's blotter: its own wash sale found, bad blotters named by line,
agreement when the firm traded as the agent did, cash flows in both books."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from taxharvest.agents.registry import make_policy
from taxharvest.cli import app
from taxharvest.errors import InputError
from taxharvest.sim.backtest import run_backtest
from taxharvest.sim.steplog import StepLog
from taxharvest.tax.calendar import to_day
from taxharvest.tax.law import TaxSavingsTracker
from taxharvest.tax.ledger import Ledger
from taxharvest.workflows.blotter import BlotterShadow, SavingsClock, read_blotter
from taxharvest.workflows.shadow import Shadow

SMALL = ["--market", "synthetic:seed=5", "--assets", "24", "--years", "1"]
START, LOSS = 130, "SYN003"  # the lots' row; the stock held at a loss


def holdings(market, row: int = START) -> list[dict]:
    """The benchmark in one lot per stock bought 2024-06-03: SYN003 at -20% on ``row``, the
    rest at +40%."""
    price, weight = market.prices[row], market.benchmark_weights
    lots = []
    for i, ticker in enumerate(market.tickers):
        shares = round(1e6 * weight[i] / price[i], 3)
        basis = shares * price[i] / (0.8 if ticker == LOSS else 1.4)
        lots.append({"ticker": ticker, "shares": shares, "date_acquired": "2024-06-03",
                     "cost_basis": round(basis, 2)})
    return lots


def write_csv(path, rows: list[dict], columns=None) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def shadow_cli(tmp_path, market, blotter_rows, *extra: str, policy: str = "threshold:0.1"):
    """``taxharvest shadow --baseline-trades`` on the lots of :func:`holdings`; the result,
    its JSON (None when not written) and the CSV path."""
    lots, blotter = tmp_path / "lots.csv", tmp_path / "firm.csv"
    write_csv(lots, holdings(market))
    write_csv(blotter, blotter_rows, ("date", "ticker", "side", "shares", "reason"))
    out, table = tmp_path / "shadow.json", tmp_path / "differ.csv"
    result = cli("shadow", "--policy", policy, "--baseline-trades", str(blotter),
                 "--lots", str(lots), "--profile", "mfj-800k", *SMALL, "--te-limit", "0.05",
                 *extra, "--json", str(out), "--csv", str(table))
    return result, (json.loads(out.read_text()) if out.exists() else None), table


def test_a_wash_sale_the_firms_own_trades_created_is_found_and_reported(market, tmp_path):
    shares = next(lot["shares"] for lot in holdings(market) if lot["ticker"] == LOSS)
    sold, bought = (str(market.dates[START + k]) for k in (3, 8))  # 5 trading days apart
    rows = [{"date": sold, "ticker": LOSS, "side": "sell", "shares": shares,
             "reason": "harvest at -20%"},
            {"date": bought, "ticker": LOSS.lower(), "side": "buy", "shares": 10,
             "reason": "rebuy"}]
    end = str(market.dates[START + 40])
    result, doc, table = shadow_cli(tmp_path, market, rows, "--end", end)
    assert result.exit_code == 0, result.output
    assert "Wash sales the firm's trades created (1" in result.output
    assert doc["kind"] == "shadow" and doc["mode"] == "blotter"
    assert doc["config"]["start"] == str(market.dates[START + 2])  # the day before the sale
    [wash] = [w for d in doc["decisions"] for w in d["wash_sales"]]
    [sale], [replacement] = wash["sales"], wash["replacements"]
    basis = next(lot["cost_basis"] for lot in holdings(market) if lot["ticker"] == LOSS)
    loss = basis - shares * market.prices[START + 3, market.tickers.index(LOSS)]
    assert sale["line"] == 2 and sale["date_sold"] == sold and sale["shares"] == shares
    assert sale["loss"] == pytest.approx(loss)
    assert wash["line"] == 3 and wash["date"] == bought
    assert wash["disallowed"] == pytest.approx(loss * 10 / shares)  # share for share
    assert replacement == {"ticker": LOSS, "line": 3, "bought": bought, "shares": 10.0,
                           "basis_added": pytest.approx(loss * 10 / shares),
                           "origin": "blotter line 3"}
    summary = doc["summary"]
    assert summary["wash_sales"] == 1
    assert summary["baseline"]["name"] == "firm blotter firm.csv"
    assert doc["runs"]["baseline"]["wash_sale_disallowed"] == pytest.approx(wash["disallowed"])
    assert doc["runs"]["policy"]["wash_sale_disallowed"] == 0.0
    rebuy = [r for r in csv.DictReader(table.open()) if r["baseline_reason"] == "rebuy"]
    assert [(r["ticker"], r["side"], float(r["baseline_shares"])) for r in rebuy] == [
        (LOSS, "buy", 10.0)]
    assert all(d["baseline_te"] > 0 and d["policy_te"] > 0 for d in doc["decisions"])
    page = tmp_path / "report.html"
    assert cli("report", str(tmp_path / "shadow.json"), "--out", str(page)).exit_code == 0
    assert "Wash sales the firm" in page.read_text()


@pytest.mark.parametrize(("row", "where"), [
    ({"ticker": "ZZZ"}, "line 3, field 'ticker': unknown ticker 'ZZZ'"),
    ({"shares": 1e7}, "line 3, field 'shares': selling 1e+07 shares of SYN001 but only"),
    ({"date": "2031-01-02"}, "line 3, field 'date': 2031-01-02 is outside the prices"),
    ({"date": "2025-08-02"}, "line 3, field 'date': 2025-08-02 is not a trading day"),
    ({"shares": "ten"}, "line 3, field 'shares': cannot parse number 'ten'"),
    ({"side": "hold"}, "line 3, field 'side': unknown side 'hold'"),
])
def test_a_bad_blotter_row_is_one_error_naming_its_line(market, tmp_path, row, where):
    date = str(market.dates[START + 5])
    good = {"date": date, "ticker": "SYN002", "side": "buy", "shares": 1, "reason": ""}
    bad = {**good, "ticker": "SYN001", "side": "sell", **row}
    result, doc, table = shadow_cli(tmp_path, market, [good, bad])
    assert isinstance(result.exception, InputError), result.output
    message = str(result.exception)
    assert message.startswith(str(tmp_path / "firm.csv")) and where in message, message
    assert doc is None and not table.exists()


def test_a_binary_blotter_is_refused(market, tmp_path):
    blotter, lots = tmp_path / "firm.csv", tmp_path / "lots.csv"
    blotter.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    write_csv(lots, holdings(market))
    result = cli("shadow", "--policy", "hold", "--baseline-trades", str(blotter), "--lots",
                 str(lots), "--profile", "mfj-800k", *SMALL)
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith(str(blotter))


def test_the_firm_trading_as_the_agent_did_agrees_everywhere(market, tmp_path):
    lots = holdings(market)
    value = sum(lot["shares"] * market.prices[START, market.tickers.index(lot["ticker"])]
                for lot in lots)
    start = str(market.dates[START])
    shadow = Shadow("threshold:0.1", None, "mfj-800k", market, lots, initial_value=value,
                    te_limit=0.05)
    log = StepLog(shadow.environment(market))
    run_backtest(make_policy("threshold:0.1", shadow.profile, log.env), log,
                 options={"start": start})
    trades = [t for info in log.infos for t in info.get("trades", [])]
    assert {t["side"] for t in trades} == {"buy", "sell"}
    write_csv(tmp_path / "agent.csv", [{k: t[k] for k in ("date", "ticker", "side", "shares",
                                                           "reason")} for t in trades])
    history = BlotterShadow(shadow, read_blotter(tmp_path / "agent.csv")).run(start)
    summary, decisions = history.summary, history.decisions
    assert summary["agreement_rate"] == 1.0 and summary["decisions_with_trades"] > 0
    assert history.csv_rows() == [] and summary["wash_sales"] == 0
    assert [d["baseline_te"] for d in decisions] == pytest.approx([d["policy_te"]
                                                                   for d in decisions])
    assert [d["baseline_tax_saving"] for d in decisions] == pytest.approx(
        [d["policy_tax_saving"] for d in decisions])
    policy, firm = summary["policy"], summary["baseline"]
    for key in ("tax_alpha", "tracking_error", "harvested_losses", "n_trades",
                "tax_savings_total", "max_te_held"):
        assert firm[key] == pytest.approx(policy[key]), key
    for key in ("tracking_error", "max_rolling_te", "decoupling"):  # the firm's own days
        assert history.runs["baseline"][key] == pytest.approx(history.runs["policy"][key]), key
    assert policy["tax_savings_total"] == pytest.approx(
        history.runs["policy"]["yearly"]["2025"]["tax_savings"]
        + history.runs["policy"]["yearly"].get("2026", {}).get("tax_savings", 0.0))
    assert history.runs["baseline"]["series"]["portfolio"] == pytest.approx(
        history.runs["policy"]["series"]["portfolio"])
    json.dumps(history.to_json(), allow_nan=False)


def test_hold_beside_an_empty_blotter_agrees_and_both_books_take_the_deposits(market,
                                                                              tmp_path):
    start, end = str(market.dates[START]), str(market.dates[START + 60])
    result, doc, _ = shadow_cli(tmp_path, market, [], "--start", start, "--end", end,
                                policy="hold")
    assert result.exit_code == 0, result.output
    assert doc["summary"]["agreement_rate"] == 1.0
    assert doc["summary"]["decisions_with_trades"] == 0
    assert "agree at every decision" in result.output
    result, flows, _ = shadow_cli(tmp_path, market, [], "--start", start, "--end", end,
                                  "--contributions", "10000/month", policy="hold")
    assert result.exit_code == 0, result.output
    assert flows["config"]["cash_flows"] == [
        {"amount": 10000.0, "fraction": 0.0, "period": "month", "date": None}]
    # hold invests each deposit, the firm (no trades) keeps it as cash: only those differ
    reasons = {x["policy_reason"] for d in flows["decisions"] for x in d["differences"]}
    assert reasons == {"invest cash"}
    deposits = 10000.0 * sum(d[:7] != e[:7] for d, e in zip(
        doc["runs"]["baseline"]["series"]["dates"][:-1],
        doc["runs"]["baseline"]["series"]["dates"][1:], strict=True))
    benchmark = [run["series"]["benchmark"] for run in flows["runs"].values()]
    assert benchmark[0] == benchmark[1]  # one benchmark, paid the same deposits
    assert benchmark[0][-1] > doc["runs"]["policy"]["series"]["benchmark"][-1] + 0.9 * deposits
    gained = (flows["runs"]["baseline"]["series"]["portfolio"][-1]
              - doc["runs"]["baseline"]["series"]["portfolio"][-1])
    assert gained == pytest.approx(deposits)  # cash, held as it came
    # the firm's realized TE is read from its own days: the deposits it holds as cash
    runs = flows["runs"]
    assert runs["baseline"]["tracking_error"] > runs["policy"]["tracking_error"]
    assert runs["baseline"]["decoupling"] > runs["policy"]["decoupling"]


def test_the_baseline_is_a_policy_or_a_blotter_and_a_blotter_is_historical(market, tmp_path):
    blotter, lots = tmp_path / "firm.csv", tmp_path / "lots.csv"
    write_csv(blotter, [], ("date", "ticker", "side", "shares"))
    write_csv(lots, holdings(market))
    common = ["--policy", "hold", "--lots", str(lots), "--profile", "mfj-800k", *SMALL]
    for extra, field in ((["--baseline", "hold", "--baseline-trades", str(blotter)], "baseline"),
                         ([], "baseline"),
                         (["--baseline-trades", str(blotter), "--date", "2025-09-01"], "date"),
                         (["--baseline-trades", str(blotter)], "start"),
                         (["--baseline", "hold", "--date", "2025-09-01", "--contributions",
                           "5000/month"], "contributions")):
        result = cli("shadow", *common, *extra)
        assert isinstance(result.exception, InputError), (extra, result.output)
        assert result.exception.field == field, (extra, str(result.exception))


def test_a_january_purchase_that_washes_a_december_loss_settles_that_year_again():
    """The $20,000 December loss is disallowed by the January buy and moves into the
    replacement's basis: it is saved once, when the replacement is sold, not twice."""
    ledger = Ledger(["A"], relief="hifo")
    ledger.buy("A", 1000, 100.0, "2024-01-02")
    clock = SavingsClock("mfj-800k", to_day("2024-01-02"))
    ledger.sell("A", 1000, 80.0, "2024-12-20")
    december = clock.advance(ledger, to_day("2025-01-02"))
    assert december > 0
    ledger.buy("A", 1000, 81.0, "2025-01-03")
    assert ledger.realized(2024) == (0.0, 0.0)
    correction = clock.advance(ledger, to_day("2025-01-06"))
    assert correction == pytest.approx(-december)
    ledger.sell("A", 1000, 81.0, "2025-06-02")
    settled = december + correction + clock.finish(ledger)
    once = TaxSavingsTracker("mfj-800k")
    once.settle(2024, 0.0, 0.0)
    once.settle(2025, *ledger.realized(2025))
    assert settled == pytest.approx(once.total_saving)
    assert clock.tracker.total_saving == pytest.approx(once.total_saving)
    assert [s.saving for s in clock.tracker.history] == pytest.approx(
        [s.saving for s in once.history])
