"""`taxharvest ledger`: output keys, Form 8949 export, and clear errors for bad files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from taxharvest.errors import InputError
from taxharvest.tax.reporting import form_8949
from taxharvest.tax.trades import read_trades, replay

GOOD = """date,ticker,side,shares,price,lot_id
2023-03-15,AAPL,buy,100,150,A1
2023-06-01,MSFT,buy,50,300,
2024-01-10,AAPL,sell,40,120,
2024-01-25,AAPL,buy,40,118,
2024-03-16,AAPL,sell,60,160,A1
"""


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "taxharvest", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "trades.csv"
    path.write_text(GOOD)
    return path


def test_json_keys_and_values(good, tmp_path):
    out = tmp_path / "out.json"
    form = tmp_path / "f8949.csv"
    result = run_cli("ledger", str(good), "--json", str(out), "--form8949", str(form))
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert set(data) == {"sales", "open_lots", "totals"}
    assert set(data["sales"][0]) == {"ticker", "shares", "date_acquired", "date_sold", "proceeds",
                                     "cost_basis", "wash_sale_disallowed", "gain", "term", "kind"}
    assert set(data["open_lots"][0]) == {"ticker", "shares", "date_acquired", "cost_basis"}
    assert set(data["totals"]) == {"short_term_gain", "long_term_gain", "wash_sale_disallowed",
                                   "by_year"}
    assert set(data["totals"]["by_year"]["2024"]) == {"short_term_gain", "long_term_gain",
                                                      "wash_sale_disallowed"}
    washed, long_sale = data["sales"]
    assert washed["wash_sale_disallowed"] == 1200.0 and washed["gain"] == 0.0
    assert long_sale["term"] == "long" and long_sale["gain"] == 600.0
    replacement = next(lot for lot in data["open_lots"] if lot["ticker"] == "AAPL")
    assert replacement == {"ticker": "AAPL", "shares": 40.0, "date_acquired": "2023-03-30",
                           "cost_basis": 5920.0}
    lines = form.read_text().splitlines()
    assert lines[0] == "part,description,date_acquired,date_sold,proceeds,cost_basis,code,adjustment,gain"
    assert lines[1].startswith("I,40 sh AAPL,2023-03-15,2024-01-10,4800.0,6000.0,W,1200.0,0.0")


def test_json_to_stdout_and_table(good):
    result = run_cli("ledger", str(good), "--json", "-", "--lots", "hifo")
    assert json.loads(result.stdout)["totals"]["long_term_gain"] == 600.0
    table = run_cli("ledger", str(good))
    assert table.returncode == 0 and "wash sale disallowed" in table.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("date,ticker,shares,price\n2024-01-02,X,1,1\n", "line 1: missing column(s) side"),
        ("date,ticker,side,shares,price\n2024-13-02,X,buy,1,1\n", "line 2, field 'date'"),
        ("date,ticker,side,shares,price\n2024-01-02,X,buy,ten,1\n", "line 2, field 'shares'"),
        ("date,ticker,side,shares,price\n2024-01-02,X,buy,1,0\n", "line 2, field 'price'"),
        ("date,ticker,side,shares,price\n2024-01-02,X,short,1,1\n", "line 2, field 'side'"),
        ("date,ticker,side,shares,price\n2024-01-02,X,buy,1,1\n2024-01-03,X,sell,2,1\n",
         "line 3, field 'shares': selling 2 shares of X but only 1 held"),
        ("date,ticker,side,shares,price,lot_id\n2024-01-02,X,buy,1,1,a\n2024-01-03,X,sell,1,1,b\n",
         "line 3, field 'lot_id': unknown lot_id 'b'"),
        ("date,ticker,side,shares,price\n2024-01-03,X,buy,1,1\n2024-01-02,X,buy,1,1\n",
         "line 3, field 'date'"),
    ],
)
def test_bad_files_exit_2_with_one_clear_line_and_write_nothing(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    out = tmp_path / "out.json"
    result = run_cli("ledger", str(path), "--json", str(out))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [path]


def test_missing_file_is_a_clear_error(tmp_path):
    result = run_cli("ledger", str(tmp_path / "nope.csv"))
    assert result.returncode == 2 and "cannot read trade file" in result.stderr


def test_replay_error_names_file_and_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("date,ticker,side,shares,price\n2024-01-02,X,buy,1,1\n2024-01-03,X,sell,5,1\n")
    with pytest.raises(InputError) as info:
        replay(read_trades(path))
    assert (info.value.path, info.value.row, info.value.field) == (str(path), 3, "shares")


def test_replay_of_a_sale_at_cost_is_no_wash_sale(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("date,ticker,side,shares,price\n2024-01-02,X,buy,45,50.22\n"
                    "2024-01-10,X,sell,3,50.22\n2024-01-11,X,sell,42,40\n2024-01-20,X,buy,3,45\n")
    ledger = replay(read_trades(path))
    assert ledger.realized(2024)[0] == pytest.approx(-398.58)
    assert ledger.total_disallowed == pytest.approx(30.66)
    (lot,) = ledger.open_lots()
    assert (lot["shares"], lot["date_acquired"]) == (3.0, "2024-01-11")
    assert lot["cost_basis"] == pytest.approx(165.66)


def test_replay_of_a_distribution_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("date,ticker,side,shares,price\n2024-01-02,X,buy,10,40\n"
                    "2024-02-01,X,distribution,10,30\n")
    ledger = replay(read_trades(path))
    (row,) = form_8949(ledger)
    assert (row["description"], row["proceeds"], row["cost_basis"], row["gain"]) == (
        "distribution on 10 sh X", 100.0, 100.0, 0.0)
    assert ledger.cash == pytest.approx(-400.0 + 100.0)
    (lot,) = ledger.open_lots()
    assert (lot["shares"], lot["cost_basis"]) == (10.0, pytest.approx(300.0))


def test_outputs_get_the_usual_file_mode(good, tmp_path):
    import os
    import stat

    out = tmp_path / "out.json"
    assert run_cli("ledger", str(good), "--json", str(out)).returncode == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
