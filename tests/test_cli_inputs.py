"""Every bad input a clear error, by class, for every command: one line naming the file,
row or option (exit 2), nothing written; and the notes of a run on real-format data."""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import SPLIT_ROW
from typer.testing import CliRunner

from taxharvest.cli import app, main, options
from taxharvest.errors import DataError, InputError
from taxharvest.market.risk import WARMUP_DAYS

MODELS = Path(__file__).resolve().parents[1] / "models"
SMALL = ["--assets", "24", "--years", "0.3"]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
LOTS = "ticker,shares,date_acquired,cost_basis\n{ticker},10,{date},900\n"


def cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def refused(result, field: str | None = None, text: str = "") -> InputError:
    """The run's exception: one line, naming ``field``, containing ``text``."""
    error = result.exception
    assert isinstance(error, InputError), result.output
    assert "\n" not in str(error) and text in str(error)
    if field is not None:
        assert error.field == field, str(error)
    return error


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """The console entry point: its exit code and stderr."""
    monkeypatch.setattr(sys, "argv", ["taxharvest", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


def real(files, *extra) -> list:
    return ["--prices", files.prices, "--sectors", files.sectors, *extra]


def lots_file(folder: Path, files, row: int = WARMUP_DAYS + 20) -> Path:
    path = folder / "lots.csv"
    path.write_text(LOTS.format(ticker=files.tickers[1], date=files.dates[row - 5]))
    return path


# 1. the fan-out: a data mistake in evaluate is the clean one-line error of backtest

@pytest.fixture
def no_sector(tmp_path, price_files) -> Path:
    path = tmp_path / "sectors.csv"
    path.write_text("".join(price_files.sectors.read_text().splitlines(keepends=True)[:-1]))
    return path


def test_evaluate_checks_real_data_before_fanning_out(price_files, no_sector, monkeypatch,
                                                      capsys):
    base = ["evaluate", "--profiles", "mfj-800k", "--policies", "hold", "--paths", "1",
            *SMALL, "--workers", "2"]
    code, err = run_main(monkeypatch, capsys, *base, "--prices", price_files.prices,
                         "--sectors", no_sector)
    assert code == 2 and err.count("\n") == 1 and "have no sector" in err
    assert "Traceback" not in err
    refused(cli(*base, *real(price_files, "--rebalance", "weekly")), "rebalance")
    refused(cli(*base, *real(price_files, "--start", "2031-01-02")), "start", "outside the data")
    refused(cli(*base, "--start", "2025-06-02"), "start", "applies only with --prices")
    refused(cli(*base, "--rebalance", "annual"), "rebalance", "applies only with --prices")


# 2. outputs: every output checked before anything runs; nothing half-written

@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "somefile.txt"
    path.write_text("not a folder\n")
    return path


def commands(tmp_path: Path, out: str) -> dict[str, list]:
    trades = tmp_path / "trades.csv"
    trades.write_text("date,ticker,side,shares,price\n2024-01-02,X,buy,10,50\n")
    return {
        "ledger --json": ["ledger", trades, "--json", out],
        "ledger --form8949": ["ledger", trades, "--form8949", out],
        "backtest --json": ["backtest", "--policy", "hold", "--profile", "mfj-800k", *SMALL,
                            "--json", out],
        "backtest --form8949": ["backtest", "--policy", "hold", "--profile", "mfj-800k",
                                *SMALL, "--form8949", out],
        "evaluate --markdown": ["evaluate", "--policies", "hold", "--paths", "1", *SMALL,
                                "--markdown", out],
        "stress --json": ["stress", "--policy", "hold", "--profile", "mfj-800k", "--json", out],
        "tune --out": ["tune", "--profile", "mfj-800k", "--out", out],
        "report --out": ["report", trades, "--out", out],
        "train --out": ["train", "--profile", "mfj-800k", "--out", out],
        "demo --out": ["demo", "--out", out],
        "sweep --out": ["sweep", "--profiles", "mfj-800k", "--out", out],
    }


NAMES = ["ledger --json", "ledger --form8949", "backtest --json", "backtest --form8949",
         "evaluate --markdown", "stress --json", "tune --out", "report --out", "train --out",
         "demo --out", "sweep --out"]  # the keys of commands()


@pytest.mark.parametrize("name", NAMES)
def test_an_output_under_a_file_is_refused_before_the_run(name, tmp_path, a_file):
    args = commands(tmp_path, str(a_file / "out.json"))[name]
    assert list(commands(tmp_path, "x")) == NAMES
    before = sorted(tmp_path.rglob("*"))
    error = refused(cli(*args), name.split("--")[1])
    assert error.path == str(a_file) and "is a file, not a folder" in str(error)
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a folder that takes no files")
@pytest.mark.parametrize("name", [n for n in NAMES if not n.startswith(("train", "demo", "sweep"))])
def test_an_output_in_a_folder_that_takes_no_files_is_refused(name, tmp_path):
    refused(cli(*commands(tmp_path, "/proc/out.json")[name]), name.split("--")[1],
            "cannot write in this folder")


def test_outputs_are_checked_together(tmp_path, price_files):
    trades = tmp_path / "trades.csv"
    trades.write_text("date,ticker,side,shares,price\n2024-01-02,X,buy,10,50\n")
    out = tmp_path / "out.json"
    refused(cli("ledger", trades, "--json", out, "--form8949", tmp_path / "missing" / "f.csv"),
            "form8949", "does not exist")
    refused(cli("ledger", trades, "--json", trades), "json", "is an input of this command")
    refused(cli("backtest", "--policy", "hold", "--profile", "mfj-800k", *SMALL, "--json", out,
                "--form8949", out), "form8949", "--json already writes this file")
    refused(cli("backtest", "--policy", "hold", "--profile", "mfj-800k",
                *real(price_files, "--json", price_files.prices)), "json")
    refused(cli("ledger", trades, "--json", tmp_path), "json", "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trades.csv"]


def test_stdout_only_where_an_output_can_go_there(tmp_path):
    refused(cli("backtest", "--policy", "hold", "--profile", "mfj-800k", *SMALL,
                "--form8949", "-"), "form8949", "cannot go to stdout")
    refused(cli("report", tmp_path / "run.json", "--out", "-"), "out", "cannot go to stdout")
    result = cli("evaluate", "--profiles", "mfj-800k", "--policies", "hold", "--paths", "1",
                 *SMALL, "--workers", "1", "--json", "-")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout, parse_constant=pytest.fail)  # strict: NaN written as null
    assert doc["kind"] == "evaluation" and doc["summary"][0]["real_tax_alpha"] is None


def test_no_run_folder_without_an_engine(tmp_path):
    refused(cli("sweep", "--profiles", "mfj-800k", "--seeds", "1", "--timesteps", "10",
                "--ray", "127.0.0.1:1", "--out", tmp_path / "runs"), "ray", "cannot reach Ray")
    assert not (tmp_path / "runs").exists()


# 3. files that are not what they claim: one line naming the file

def test_files_that_are_not_csv_name_the_file(tmp_path, price_files):
    png = tmp_path / "picture.png"
    png.write_bytes(PNG)
    header = tmp_path / "header.csv"
    header.write_text(price_files.prices.read_text().splitlines()[0] + "\n")
    lots = lots_file(tmp_path, price_files)
    date = str(price_files.dates[WARMUP_DAYS + 20])
    for args in (["ledger", png],
                 ["ledger", tmp_path],
                 ["backtest", "--policy", "hold", "--profile", "mfj-800k", *SMALL,
                  "--initial-lots", png],
                 ["shadow", "--policy", "hold", "--baseline", "hold", "--lots", png,
                  "--profile", "mfj-800k", *real(price_files), "--date", date]):
        assert refused(cli(*args)).path == str(png if args[0] == "shadow" else args[-1])
    refused(cli("backtest", "--policy", "hold", "--profile", "mfj-800k", "--prices", header,
                "--sectors", price_files.sectors), text="no data rows")
    assert isinstance(refused(cli("shadow", "--policy", "hold", "--baseline", "hold", "--lots",
                                  lots, "--profile", "mfj-800k", "--prices", png, "--sectors",
                                  price_files.sectors, "--date", date)), DataError)


@pytest.fixture
def damaged_model(tmp_path) -> Path:
    if not (MODELS / "mfj-800k" / "model.zip").exists():
        pytest.skip("no shipped model")
    folder = tmp_path / "models" / "mfj-800k"
    shutil.copytree(MODELS / "mfj-800k", folder)
    (folder / "model.zip").write_bytes(PNG)
    return folder


def test_a_damaged_model_is_one_line_naming_it(damaged_model):
    error = refused(cli("backtest", "--policy", f"ppo:{damaged_model}", "--profile",
                        "mfj-800k", *SMALL), "policy", "cannot load the model")
    assert error.path == str(damaged_model / "model.zip")
    refused(cli("evaluate", "--profiles", "mfj-800k", "--policies", "ppo", "--models",
                damaged_model.parent, "--paths", "1", *SMALL), "models")
    refused(cli("stress", "--policy", "hold", "--baseline", f"ppo:{damaged_model}",
                "--profile", "mfj-800k"), "baseline")


BACKTEST_DOC = {"tax_alpha": 0.01, "series": {"dates": ["2025-01-02", "2025-01-09"],
                                              "portfolio": [1.0, 1.1], "benchmark": [1.0, 1.0],
                                              "savings": [0.0, 0.0], "ex_ante_te": [0.0, 0.0],
                                              "rolling_te": [None, None],
                                              "guardrail_status": ["ok", "ok"]},
                "yearly": {"2025": {"tax_savings": 0.0}}, "config": {"policy": "hold"}}


@pytest.mark.parametrize("edit", [
    lambda d: d["series"].update(dates=["soon", "later"]),
    lambda d: d.update(yearly=[1, 2]),
    lambda d: d["series"].update(portfolio=[1.0]),
    lambda d: d.update(config="hold"),
    lambda d: d.update(tax_alpha="high"),
    lambda d: d.update(kind=["backtest"]),
    lambda d: d.update(kind="backtests"),
    lambda d: d.update(kind="evaluation", rows=[{"profile": "x"}], summary=[]),
    lambda d: d.update(kind="shadow", mode="history", config={}, decisions=3),
])
def test_a_damaged_run_document_is_one_line_naming_it(edit, tmp_path):
    doc = copy.deepcopy(BACKTEST_DOC)
    edit(doc)
    run = tmp_path / "run.json"
    run.write_text(json.dumps(doc))
    error = refused(cli("report", run, "--out", tmp_path / "r.html"))
    assert error.path == str(run) and not (tmp_path / "r.html").exists()


def test_the_report_document_above_renders(tmp_path):
    run = tmp_path / "run.json"
    run.write_text(json.dumps(BACKTEST_DOC))
    assert cli("report", run, "--out", tmp_path / "r.html").exit_code == 0


# 4. the risk model's warm-up: a start on the first date holds; no window without a decision

def test_a_start_on_the_first_date_holds_until_the_warm_up_completes(tmp_path, price_files):
    out, form = tmp_path / "run.json", tmp_path / "f8949.csv"
    first = str(price_files.dates[0])
    result = cli("backtest", "--policy", "monthly-all", "--profile", "mfj-800k",
                 *real(price_files, "--start", first, "--json", out, "--form8949", form))
    assert result.exit_code == 0, result.output
    decided = str(price_files.dates[WARMUP_DAYS - 1])
    assert f"the book holds (cash invested, no harvest, no guardrail); decisions from {decided}" \
        in result.stderr
    series = json.loads(out.read_text())["series"]
    assert series["dates"][0] == first
    status = dict(zip(series["dates"], series["guardrail_status"], strict=True))
    assert {s for d, s in status.items() if d < decided} == {"off"}
    assert {s for d, s in status.items() if d > decided} - {"off"}  # the guardrail decides
    sold = [line.split(",")[3] for line in form.read_text().splitlines()[1:]]
    assert sold and min(sold) > decided  # no harvest while the risk model warms up


def test_a_window_that_ends_in_the_warm_up_is_refused(tmp_path, price_files):
    dates = price_files.dates
    refused(cli("backtest", "--policy", "hold", "--profile", "mfj-800k",
                *real(price_files, "--start", dates[0], "--end", dates[20])), "end",
            f"decisions are possible from {dates[WARMUP_DAYS - 1]}")
    refused(cli("shadow", "--policy", "hold", "--baseline", "hold", "--lots",
                lots_file(tmp_path, price_files), "--profile", "mfj-800k", *real(price_files),
                "--date", dates[4]), "date", f"decisions are possible from {dates[WARMUP_DAYS]}")


# 5. messages that say what the user typed

def test_messages_name_the_option_typed(tmp_path):
    refused(cli("backtest", "--policy", "hold", "--profile", "mfj-800k", *SMALL,
                "--te-limit", "nan"), "te-limit", "must be a finite number, got nan")
    refused(cli("shadow", "--policy", "hold", "--baseline", "nope", "--lots", "lots.csv",
                "--profile", "mfj-800k", "--date", "2025-10-20"), "baseline", "unknown policy")
    refused(cli("tune", "--profile", "mfj-800k", "--paths", "0"), "paths")
    refused(cli("evaluate", "--policies", " , "), "policies")
    refused(cli("evaluate", "--policies", "hold,hold"), "policies", "given twice")
    refused(cli("evaluate", "--paths", "101"), "paths")
    refused(cli("backtest", "--policy", "hold", "--profile", "mfj-800k", "--assets", "100000"),
            "assets")
    refused(cli("ledger", tmp_path / "t.csv", "--equivalent", "GOOG"), "equivalent")


@pytest.mark.parametrize(("args", "text"), [
    (["backtest", "--policy", "hold", "--profile", "mfj-800k", "--assets", "many"], "'--assets'"),
    (["backtest", "--policy", "hold"], "Missing option '--profile'"),
    (["stress", "--policy", "hold", "--profile", "mfj-800k", "--bogus", "1"], "--bogus"),
    (["ledger", "t.csv", "--lots", "lifo"], "'lifo'"),
    (["nosuchcommand"], "nosuchcommand"),
])
def test_a_command_line_the_parser_refuses_is_one_line(args, text, monkeypatch, capsys):
    code, err = run_main(monkeypatch, capsys, *args)
    assert code == 2 and err.count("\n") == 1 and text in err and "--help)" in err


def test_printed_text_keeps_its_brackets(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    code, err = run_main(monkeypatch, capsys, "stress", "--policy", "hold", "--profile",
                         "mfj-800k", "--paths", "1", *SMALL, "--ray", "auto")
    assert code == 2 and "pip install 'taxharvest[ray]'" in err
    options.print_error(InputError("a [bold]tag[/bold] and [ray]", path="[x].csv"))
    assert "[x].csv: a [bold]tag[/bold] and [ray]" in capsys.readouterr().err
    assert "threshold:X[@cadence]" in cli("backtest", "--help").output


def test_report_reads_the_evaluate_json(tmp_path):
    out = tmp_path / "evaluation.json"
    result = cli("evaluate", "--profiles", "mfj-800k", "--policies", "hold,threshold:0.1",
                 "--paths", "1", *SMALL, "--workers", "1", "--json", out)
    assert result.exit_code == 0, result.output
    page = tmp_path / "evaluation.html"
    assert cli("report", out, "--out", page).exit_code == 0
    text = page.read_text()
    assert "Policy evaluation" in text and "threshold:0.1" in text
    assert "data:image/png;base64," in text


# 6. corporate actions: in the backtest JSON, counted on the terminal, refused when strict

def test_corporate_actions_are_listed_counted_and_strict(tmp_path, price_files):
    out = tmp_path / "run.json"
    result = cli("backtest", "--policy", "hold", "--profile", "mfj-800k",
                 *real(price_files, "--json", out))
    assert result.exit_code == 0, result.output
    ticker, date = price_files.split
    actions = json.loads(out.read_text())["config"]["corporate_actions"]
    assert [(a["ticker"], a["date"], a["kind"]) for a in actions] == [(ticker, date, "split")]
    assert "corporate actions inferred" in result.stderr and "1 split" in result.stderr
    error = refused(cli("backtest", "--policy", "hold", "--profile", "mfj-800k",
                        *real(price_files, "--strict-data")))
    assert isinstance(error, DataError) and ticker in str(error) and date in str(error)
    refused(cli("backtest", "--policy", "hold", "--profile", "mfj-800k", *SMALL,
                "--strict-data"), "strict-data", "applies only with --prices")
    assert SPLIT_ROW > WARMUP_DAYS  # the split falls inside the run


def test_a_trading_halt_longer_than_the_fill_limit_takes_max_gap_days(tmp_path, price_files):
    """Eight missing days of one ticker (a halt): refused by name, or filled when asked."""
    halted = {str(d) for d in price_files.dates[150:158]}
    lines = price_files.prices.read_text().splitlines(keepends=True)
    prices = tmp_path / "halt.csv"
    prices.write_text("".join(line for line in lines if not (
        line.split(",")[0] in halted and line.split(",")[1] == price_files.tickers[2])))
    files = {"--prices": prices, "--sectors": price_files.sectors}
    args = ["backtest", "--policy", "hold", "--profile", "mfj-800k",
            *(x for pair in files.items() for x in pair)]
    refused(cli(*args), "date", "8 trading days in a row")
    result = cli(*args, "--max-gap-days", "8", "--json", tmp_path / "run.json")
    assert result.exit_code == 0, result.output
    for days in ("8", "0"):  # 0 is given too
        refused(cli("backtest", "--policy", "hold", "--profile", "mfj-800k", "--max-gap-days",
                    days), "max-gap-days", "applies only with --prices")
