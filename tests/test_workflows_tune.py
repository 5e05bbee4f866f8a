"""`taxharvest tune`: provenance of the tuned file, training seeds only."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from taxharvest.cli import app
from taxharvest.errors import InputError
from taxharvest.workflows.tune import tune, write_tuned


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_tune_records_its_provenance_and_uses_training_seeds_only(tmp_path):
    with pytest.raises(ValueError, match="reserved for evaluation"):
        tune("mfj-800k", seeds=(5,))
    entry = tune("mfj-800k", thresholds=(0.0, 0.2), cadences=("monthly",), seeds=(1000,),
                 n_assets=20, years=0.5)
    assert len(entry["grid"]) == 2 and entry["feasible"]
    assert entry["threshold"] in (0.0, 0.2) and entry["cadence"] == "monthly"
    assert entry["tax_alpha"] == max(g["tax_alpha"] for g in entry["grid"]
                                     if g["max_ex_ante_te"] <= 0.01)  # the best feasible point
    path = tmp_path / "tuned.yaml"
    write_tuned({"mfj-800k": entry}, "taxharvest tune --profile mfj-800k", path)
    written = yaml.safe_load(path.read_text())["profiles"]["mfj-800k"]
    assert written["command"] == "taxharvest tune --profile mfj-800k"
    assert written["seeds"] == [1000] and "date" in written
    result = cli("tune", "--profile", "mfj-800k", "--seed-start", "0", "--out", str(path))
    assert isinstance(result.exception, InputError) and "seed-start" in str(result.exception)


def test_packaged_tuned_file_is_tuning_output():
    data = yaml.safe_load((Path(__file__).parents[1] / "taxharvest/agents/data/tuned.yaml")
                          .read_text())
    for entry in data["profiles"].values():
        assert entry["command"].startswith("taxharvest tune")
        assert min(entry["seeds"]) >= 100 and len(entry["grid"]) == 18
        best = max(g["tax_alpha"] for g in entry["grid"] if g["max_ex_ante_te"] <= entry["te_limit"])
        assert entry["tax_alpha"] == best
