"""`shadow`, `stress`, `sweep` and `report`: bad arguments exit 2 with one line, write nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from taxharvest.cli import app
from taxharvest.errors import InputError

LOTS = "ticker,shares,date_acquired,cost_basis\nSYN001,10,2025-02-03,900\n"
SYNTHETIC = ["--market", "synthetic:seed=1", "--assets", "24", "--years", "1"]


def shadow_args(lots: str, *extra: str) -> list[str]:
    return ["shadow", "--policy", "threshold:0.1", "--baseline", "hold", "--lots", lots,
            "--profile", "mfj-800k", *SYNTHETIC, *extra]


BAD = [
    (shadow_args("LOTS", "--date", "2025-10-20", "--start", "2025-08-01"), "date"),
    (shadow_args("LOTS"), "date"),
    (shadow_args("LOTS", "--date", "2025-10-20", "--end", "2025-11-01"), "end"),
    (shadow_args("LOTS", "--date", "2031-01-02"), "date"),
    (shadow_args("LOTS", "--date", "2025-10-32"), "date"),
    (shadow_args("LOTS", "--start", "2025-08-01", "--end", "2025-07-01"), "end"),
    (shadow_args("LOTS", "--date", "2025-10-20", "--te-limit", "-1"), "te-limit"),
    (shadow_args("LOTS", "--date", "2025-10-20", "--cadence", "hourly"), "cadence"),
    (shadow_args("LOTS", "--date", "2025-10-20", "--json", "/dev/null/no-folder/x.json"), "json"),
    (["shadow", "--policy", "threshold:x", "--baseline", "hold", "--lots", "LOTS",
      "--profile", "mfj-800k", *SYNTHETIC, "--date", "2025-10-20"], "policy"),
    (["shadow", "--policy", "hold", "--baseline", "hold", "--lots", "LOTS",
      "--profile", "rich", "--date", "2025-10-20"], "profile"),
    (["stress", "--policy", "hold", "--profile", "mfj-800k", "--scenarios", "crash-1929"],
     "scenarios"),
    (["stress", "--policy", "hold", "--profile", "mfj-800k", "--paths", "0"], "paths"),
    (["stress", "--policy", "hold", "--profile", "mfj-800k", "--assets", "5"], "assets"),
    (["stress", "--policy", "hold", "--profile", "mfj-800k", "--te-limit", "0"], "te-limit"),
    (["stress", "--policy", "nope", "--profile", "mfj-800k"], "policy"),
    (["stress", "--policy", "hold", "--baseline", "tuned:1", "--profile", "mfj-800k"], "baseline"),
    (["stress", "--policy", "hold", "--profile", "mfj-800k", "--scenarios",
      "2018-09-20:2018-12-24"], "prices"),
    (["stress", "--policy", "hold", "--profile", "mfj-800k", "--prices", "p.csv",
      "--sectors", "s.csv"], "prices"),
    (["stress", "--policy", "hold", "--profile", "mfj-800k", "--ray", ""], "ray"),
    (["stress", "--policy", "hold", "--profile", "mfj-800k", "--max-gain", "-5"], "max-gain"),
    (["shadow", "--policy", "hold", "--baseline", "hold", "--profile", "mfj-800k", "--lots",
      "lots.csv", "--date", "2025-09-01", "--te-glide-years", "-1"], "te-glide-years"),
    (["stress", "--policy", "hold", "--profile", "mfj-800k", "--workers", "0"], "workers"),
    (["sweep", "--profiles", "mfj-800k,rich"], "profile"),
    (["sweep", "--profiles", "all", "--seeds", "0"], "seeds"),
    (["sweep", "--profiles", "all", "--timesteps", "0"], "timesteps"),
    (["sweep", "--profiles", "all", "--seeds", "30", "--eval-paths", "4"], "eval-paths"),
    (["sweep", "--profiles", "all", "--out", "/dev/null/no-folder/runs"], "out"),
    (["report", "missing.json", "--out", "r.html"], None),
    (["report", "LOTS", "--out", "/dev/null/no-folder/r.html"], "out"),
]


@pytest.mark.parametrize(("args", "field"), BAD)
def test_bad_arguments_are_input_errors(args, field, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lots.csv").write_text(LOTS)
    args = [str(tmp_path / "lots.csv") if a == "LOTS" else a for a in args]
    before = sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, InputError), result.output
    if field is not None:
        assert f"field '{field}'" in str(result.exception)
    assert "\n" not in str(result.exception)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_console_exit_code_2_and_one_line(tmp_path):
    lots = tmp_path / "lots.csv"
    lots.write_text("ticker,shares,date_acquired,cost_basis\nSYN001,ten,2025-02-03,900\n")
    out = tmp_path / "out.json"
    result = subprocess.run(
        [sys.executable, "-m", "taxharvest", *shadow_args(str(lots), "--date", "2025-10-20",
                                                           "--json", str(out))],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert f"{lots}, line 2, field 'shares': cannot parse number 'ten'" in result.stderr
    assert not out.exists()


def test_stress_takes_a_legacy_book_and_its_transition(tmp_path):
    import json

    lots = tmp_path / "lots.csv"
    lots.write_text("ticker,shares,date_acquired,cost_basis\nSYN001,3000,2020-02-03,30000\n")
    out = tmp_path / "stress.json"
    result = CliRunner().invoke(app, [
        "stress", "--policy", "optimizer", "--profile", "mfj-800k", "--scenarios", "covid-2020",
        "--paths", "1", "--assets", "24", "--years", "1", "--cadence", "monthly",
        "--initial-lots", str(lots), "--max-gain", "20000", "--workers", "1",
        "--json", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["config"]["lots"] == 1 and document["config"]["max_gain"] == 20_000
    assert {row["guardrail"] for row in document["results"]} == {True, False}
