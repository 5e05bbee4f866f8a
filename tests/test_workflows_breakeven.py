"""The fee break-even: account sizes, the zero crossing, a run on a tiny synthetic market
(scale-free trading, tax alpha falling with size once the losses outgrow what they offset),
its report and the command."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from taxharvest.cli import app
from taxharvest.errors import InputError
from taxharvest.io import json_text
from taxharvest.report import render_report
from taxharvest.workflows.breakeven import break_even, breakeven, parse_sizes, size_label
from taxharvest.workflows.evaluate import EvalMarket

FEE = 0.004
SIZES = (100e3, 1e6, 10e6)


@pytest.mark.parametrize(("text", "sizes"), [
    ("250k,1M,5M,20M", (250e3, 1e6, 5e6, 20e6)),
    ("1.5m, 20000000 ,$300K", (300e3, 1.5e6, 20e6)),
    ("1_000_000,.5b", (1e6, 5e8)),
])
def test_sizes_parse(text, sizes):
    assert parse_sizes(text) == sizes


@pytest.mark.parametrize("text", ["", " , ", "ten", "1e6", "-5k", "0", "2MM", "1M,1000k"])
def test_bad_sizes_are_one_line_naming_the_option(text):
    with pytest.raises(InputError, match="field 'sizes'"):
        parse_sizes(text)


def test_size_labels():
    assert [size_label(s) for s in (250e3, 1e6, 1.5e6, 20e6, 999)] == \
        ["250k", "1M", "1.5M", "20M", "999"]


def test_break_even_interpolates_in_log_size():
    crossing = break_even([1e6, 4e6], [0.01, -0.01])
    assert crossing["size"] == pytest.approx(2e6)  # halfway in log(size)
    assert crossing["where"] == "between" and "positive below, negative above" in crossing["text"]
    three_to_one = break_even([1e6, 16e6], [0.003, -0.001])
    assert three_to_one["size"] == pytest.approx(8e6)  # 3/4 of the way in log(size)


@pytest.mark.parametrize(("values", "where"), [
    ([0.004, 0.003, 0.001], "above the largest size tried"),
    ([-0.004, -0.003, -0.001], "above the largest size tried"),
    ([-0.001, -0.002, -0.004], "below the smallest size tried"),
    ([0.001, 0.002, 0.003], "below the smallest size tried"),
    ([0.002, 0.002, 0.002], "none"),
    ([0.0, 0.0, 0.0], "none"),
])
def test_no_crossing_says_on_which_side_it_lies(values, where):
    crossing = break_even(list(SIZES), values)
    assert crossing["size"] is None and crossing["where"] == where
    assert crossing["text"].startswith(where)


@pytest.fixture(scope="module")
def document():
    """mfj-250k (20,000 of outside short-term gains a year) on two tiny synthetic paths: at
    $100k and $1M the harvested losses stay below what they offset, at $10M they do not."""
    markets = [EvalMarket(f"synthetic:{seed}", seed=seed, assets=24, years=1.5)
               for seed in range(2)]
    doc = breakeven("mfj-250k", SIZES, FEE, markets, workers=1)
    return json.loads(json_text(doc))


def test_breakeven_rows_and_summary(document):
    assert document["kind"] == "breakeven" and document["config"]["policy"] == "monthly-all"
    assert [e["size"] for e in document["summary"]] == list(SIZES)
    assert len(document["rows"]) == 2 * len(SIZES)
    for row in document["rows"]:
        for gross, net in (("tax_alpha", "tax_alpha_net_of_fee"),
                           ("after_tax_excess_liquidated",
                            "after_tax_excess_liquidated_net_of_fee")):
            assert row[net] == pytest.approx((1 + row[gross]) * (1 - FEE) - 1)
    for e in document["summary"]:
        assert e["tax_alpha_worst"] <= e["tax_alpha"] <= max(
            r["tax_alpha"] for r in document["rows"] if r["size"] == e["size"])
        assert e["max_ex_ante_te_worst"] >= e["max_ex_ante_te"]


def test_tax_alpha_falls_with_size(document):
    # The client's tax position is in dollars, the book in weights: a larger account's losses
    # run past the outside gains and the $3,000 offset into carryforward, worth less a dollar.
    # The dollars saved still grow with size.
    for path in ("synthetic:0", "synthetic:1"):
        rows = sorted((r for r in document["rows"] if r["path"] == path),
                      key=lambda r: r["size"])
        for a, b in zip(rows, rows[1:], strict=False):
            assert b["tax_savings"] >= a["tax_savings"] - 1e-6
    summary = document["summary"]
    assert summary[-1]["tax_alpha"] < summary[0]["tax_alpha"]
    crossing = document["break_even"]["tax_alpha_net_of_fee"]
    values = [e["tax_alpha_net_of_fee"] for e in summary]
    if crossing["size"] is not None:
        assert SIZES[0] <= crossing["size"] <= SIZES[-1]
    else:
        assert all(math.copysign(1, v) == math.copysign(1, values[0]) for v in values)


def test_breakeven_document_renders(document, tmp_path):
    out = render_report(document, tmp_path / "breakeven.html")
    page = out.read_text()
    assert "Fee break-even: mfj-250k, 0.40% a year" in page and "<img src=" in page
    assert "tax alpha net of the fee crosses zero" in page and ">10M<" in page


def test_breakeven_needs_a_policy_the_profile_can_run(tmp_path):
    client = tmp_path / "client.yaml"
    client.write_text("filing: single\nordinary_income: 90000\n")
    with pytest.raises(InputError, match="no tuned entry for profile 'client'"):
        breakeven(str(client), SIZES, FEE, [EvalMarket("synthetic:0", seed=0, assets=24,
                                                       years=1)], policy="tuned")


def test_breakeven_command_writes_json_and_a_table(tmp_path):
    out = tmp_path / "breakeven.json"
    result = CliRunner().invoke(app, [
        "breakeven", "--profile", "single-60k", "--fee", "0.003", "--sizes", "50k,2m",
        "--paths", "1", "--assets", "24", "--years", "1", "--workers", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "Fee break-even: single-60k, fee 0.30% a year" in result.output
    assert "crosses zero" in result.output
    doc = json.loads(out.read_text())
    assert doc["config"]["fee"] == 0.003 and doc["config"]["sizes"] == [50e3, 2e6]


@pytest.mark.parametrize(("args", "field"), [
    (["--sizes", "1x"], "sizes"),
    (["--fee", "1"], "fee"),
    (["--fee", "nan"], "fee"),
    (["--paths", "2", "--prices", "p.parquet", "--sectors", "s.csv"], "paths"),
    (["--start", "2015-01-02"], "start"),
    (["--policy", "threshold:x"], "policy"),
    (["--json", "/dev/null/no-folder/b.json"], "json"),
])
def test_breakeven_bad_arguments(args, field):
    result = CliRunner().invoke(app, ["breakeven", "--profile", "mfj-800k", *args])
    assert isinstance(result.exception, InputError), result.output
    assert f"field '{field}'" in str(result.exception)
