"""`taxharvest profile show` and `--profile FILE`: a printed preset is the preset, a bad file
is one line naming file, line and field, and the commands that fan out carry the client's
profile to their workers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from taxharvest.cli import app
from taxharvest.errors import InputError
from taxharvest.tax.law import PROFILES, get_profile, tax_for_year, tax_saving

SMALL = ["--assets", "24", "--years", "1"]


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def shown(tmp_path, name: str):
    result = cli("profile", "show", name)
    assert result.exit_code == 0, result.output
    path = tmp_path / f"{name}.yaml"
    path.write_text(result.stdout)
    return path


@pytest.mark.parametrize("name", list(PROFILES))
def test_profile_show_prints_a_file_that_is_the_preset(tmp_path, name):
    path = shown(tmp_path, name)
    assert path.read_text().startswith("# Tax profile, printed by")
    client = get_profile(str(path))
    assert client == PROFILES[name]
    assert tax_for_year(client, 2025, -30_000, 8_000, 1_000, 0) == \
        tax_for_year(name, 2025, -30_000, 8_000, 1_000, 0)
    assert tax_saving(client, 2026, -12_000, -4_000) == tax_saving(name, 2026, -12_000, -4_000)


def test_backtest_of_the_printed_file_equals_the_presets(tmp_path):
    path = shown(tmp_path, "mfj-800k-ca")
    runs = []
    for profile in ("mfj-800k-ca", str(path)):
        result = cli("backtest", "--policy", "monthly-all", "--profile", profile, *SMALL,
                     "--json", "-")
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        doc.pop("runtime_s")
        runs.append(doc)
    assert runs[0] == runs[1]
    assert runs[1]["config"]["profile"] == "mfj-800k-ca"


def test_bad_profile_file_exits_2_naming_file_line_and_field(tmp_path):
    path = tmp_path / "client.yaml"
    path.write_text("filing: mfj\nordinary_income: 250000\ncarryforward_short: -10000\n")
    message = f"{path}, line 3, field 'carryforward_short': must be >= 0, got -10000"
    result = cli("backtest", "--policy", "hold", "--profile", str(path), *SMALL)
    assert isinstance(result.exception, InputError) and str(result.exception) == message
    console = subprocess.run(
        [sys.executable, "-c", "from taxharvest.cli import main; main()", "profile", "show",
         str(path)], capture_output=True, text=True, timeout=120)
    assert console.returncode == 2 and console.stderr == f"error: {message}\n"
    assert isinstance(cli("profile", "show", "nobody").exception, InputError)


@pytest.fixture(scope="module")
def client_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("profiles") / "smith.yaml"
    path.write_text("filing: mfj\nordinary_income: 250_000\noutside_short_gain: 20_000\n"
                    "carryforward_short: 50_000\n")
    return path


@pytest.mark.parametrize("command", [
    ["evaluate", "--policies", "monthly-all", "--paths", "1", *SMALL, "--profiles"],
    ["stress", "--policy", "monthly-all", "--scenarios", "covid-2020", "--paths", "1",
     "--assets", "24", "--years", "0.5", "--profile"],
])
def test_fanned_out_commands_run_a_profile_file(tmp_path, client_file, command):
    out = tmp_path / "run.json"
    result = cli(*command, str(client_file), "--workers", "1", "--json", str(out))
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    names = {row["profile"] for row in doc["rows"]} if "rows" in doc else \
        {doc["config"]["profile"]}
    assert names == {"smith"}
