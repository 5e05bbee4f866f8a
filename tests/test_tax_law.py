"""Tax calculator: hand-computed cases (2025 tables unless stated), table data, properties."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxharvest import errors
from taxharvest.tax.law import (
    FILINGS,
    PROFILES,
    IncomeOverride,
    TaxProfile,
    TaxSavingsTracker,
    TaxTableError,
    default_tables,
    get_profile,
    load_profile,
    load_tables,
    marginal_gain_rates,
    marginal_rates,
    profile_yaml,
    tax_for_year,
    tax_saving,
)

SINGLE = TaxProfile(name="single-test", filing="single", ordinary_income=60_000)
MFJ_240K = TaxProfile(name="mfj-240k", filing="mfj", ordinary_income=240_000)
# 2025 regular tax on taxable income, single: 10 % to 11,925, 12 % to 48,475, 22 % to 103,350.
SINGLE_48475 = 1_192.5 + 0.12 * (48_475 - 11_925)  # 5,578.50


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize(
    ("year", "filing", "top", "tax_at_top"),
    [  # cumulative tax at the start of the 37 % band, as printed in each Rev. Proc. §3.01
        (2024, "single", 609_350, 183_647.25),
        (2024, "mfj", 731_200, 196_669.50),
        (2025, "single", 626_350, 188_769.75),
        (2025, "mfj", 751_600, 202_154.50),
        (2026, "single", 640_600, 192_979.25),
        (2026, "mfj", 768_700, 206_583.50),
        (2026, "hoh", 640_600, 191_171.00),
        (2026, "mfs", 384_350, 103_291.75),
    ],
)
def test_tables_reproduce_published_cumulative_tax(year, filing, top, tax_at_top):
    law = default_tables().law(filing, year)
    assert law.ordinary.tops[-1] == top
    assert law.ordinary.tax(top) == pytest.approx(tax_at_top, abs=0.005)


def test_2025_tables_and_statutory_amounts():
    tables = default_tables()
    assert tables.years[2025].ordinary.thresholds["single"] == (
        11_925,
        48_475,
        103_350,
        197_300,
        250_525,
        626_350,
    )
    assert tables.years[2025].ordinary.thresholds["mfj"] == (
        23_850,
        96_950,
        206_700,
        394_600,
        501_050,
        751_600,
    )
    assert tables.years[2025].capital_gains.thresholds["single"] == (48_350, 533_400)
    assert tables.years[2025].capital_gains.thresholds["mfj"] == (96_700, 600_050)
    assert tables.niit.rate == 0.038
    assert tables.niit.thresholds == {
        "single": 200_000,
        "mfj": 250_000,
        "mfs": 125_000,
        "hoh": 200_000,
    }
    assert tables.capital_loss_limit["mfs"] == 1_500 and tables.capital_loss_limit["mfj"] == 3_000


def test_years_outside_tables_fixed_and_inflation():
    tables = default_tables()
    fixed_2030 = tables.law("mfj", 2030, "fixed")
    assert fixed_2030.base_year == 2026
    assert fixed_2030.ordinary.tops == tables.law("mfj", 2026).ordinary.tops
    assert tables.law("single", 2019, "fixed").base_year == 2024
    indexed = tables.law("mfj", 2028, "inflation", 0.025)
    assert indexed.ordinary.tops[0] == pytest.approx(24_800 * 1.025**2)
    assert indexed.capital_gains.tops[1] == pytest.approx(613_700 * 1.025**2)
    assert indexed.niit_threshold == 250_000 and indexed.loss_limit == 3_000  # never indexed
    assert tables.law("mfj", 2025, "inflation", 0.1).ordinary.tops[0] == 23_850  # table year as is


def test_describe_states_the_rule():
    fixed = PROFILES["mfj-800k"].describe()
    assert "unchanged" in fixed and "Rev. Proc. 2025-32" in fixed and "MAGI" in fixed
    indexed = PROFILES["mfj-800k"].model_copy(update={"indexing": "inflation"}).describe()
    assert "2.50% a year" in indexed and "never indexed" in indexed


def _write_bad_table(tmp_path: Path, old: str, new: str) -> Path:
    text = (resources.files("taxharvest.tax") / "data" / "tax_tables.yaml").read_text("utf-8")
    assert old in text
    path = tmp_path / "bad_tables.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("[23850, 96950,", "[23850, 9695,", "years.2025.ordinary.thresholds.mfj"),
        ("rates: [0.0, 0.15, 0.20]", "rates: [0.0, 0.15, 2.0]", "years.2024.capital_gains.rates.2"),
        ("        hoh:    [63000, 551350]\n", "", "years.2024.capital_gains.thresholds"),
        ("single: [11925, 48475, 103350,", "single: [48475, 103350,", "thresholds.single"),
        ("mfs: 1500", "mfs: -1500", "capital_loss_limit.mfs"),
    ],
)
def test_invalid_table_names_file_and_field(tmp_path, old, new, field):
    path = _write_bad_table(tmp_path, old, new)
    with pytest.raises(TaxTableError) as info:
        load_tables(path)
    assert "bad_tables.yaml" in str(info.value) and field in str(info.value)


def test_invalid_yaml_syntax(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("years: [2025: {", encoding="utf-8")
    with pytest.raises(errors.TaxTableError, match="broken.yaml") as info:
        load_tables(path)
    assert TaxTableError is errors.TaxTableError and isinstance(info.value, errors.InputError)


def test_missing_filing_status_is_named(tmp_path):
    path = _write_bad_table(tmp_path, "        hoh:    [63000, 551350]\n", "")
    with pytest.raises(TaxTableError, match="hoh"):
        load_tables(path)


# --------------------------------------------------------------------------- one year


def test_long_gain_straddling_zero_rate_threshold():
    profile = SINGLE.model_copy(update={"ordinary_income": 40_000})
    tax = tax_for_year(profile, 2025, long_gain=10_000)
    assert tax.federal_ordinary == pytest.approx(1_192.5 + 0.12 * (40_000 - 11_925))
    # 8,350 of the gain fills the 0 % band up to 48,350; the other 1,650 is taxed at 15 %
    assert tax.federal_capital_gains == pytest.approx(0.15 * (50_000 - 48_350))
    assert tax.niit == 0 and tax.state == 0


def test_single_60k_long_gain_entirely_at_15():
    tax = tax_for_year(SINGLE, 2025, long_gain=10_000)  # 60k already past the 0 % band
    assert tax.federal_ordinary == pytest.approx(SINGLE_48475 + 0.22 * (60_000 - 48_475))
    assert tax.federal_capital_gains == pytest.approx(1_500)
    assert tax.total == pytest.approx(8_114 + 1_500)


def test_worksheet_caps_gain_tax_at_regular_tax():
    # Gain between the 0 % top (48,350) and the 12 % top (48,475): 12 % beats 15 % (line 24).
    profile = SINGLE.model_copy(update={"ordinary_income": 48_360})
    tax = tax_for_year(profile, 2025, long_gain=100)
    assert tax.federal_capital_gains == pytest.approx(12.0)


def test_mfj_800k_large_loss_offset_and_carry_character():
    tax = tax_for_year("mfj-800k", 2025, long_gain=-150_000)  # outside 100k short-term gain
    assert (tax.net_short, tax.net_long) == (100_000, -150_000)
    assert tax.ordinary_offset == 3_000 and tax.taxable_income == 797_000
    assert (tax.carry_short_out, tax.carry_long_out) == (0, 47_000)
    expected = 202_154.5 + 0.37 * (797_000 - 751_600)
    assert tax.federal_ordinary == pytest.approx(expected)
    assert tax.federal_capital_gains == 0 and tax.niit == 0
    short = tax_for_year("mfj-800k", 2025, short_gain=-150_000)
    assert (short.carry_short_out, short.carry_long_out) == (47_000, 0)
    saving = tax_saving("mfj-800k", 2025, 0, -150_000)
    baseline = 202_154.5 + 0.37 * (900_000 - 751_600) + 0.038 * 100_000
    assert saving.saving == pytest.approx(baseline - expected)
    assert saving.carry_with == (0, 47_000) and saving.carry_base == (0, 0)


def test_mfs_loss_limit_is_1500():
    profile = TaxProfile(name="mfs", filing="mfs", ordinary_income=80_000)
    tax = tax_for_year(profile, 2025, short_gain=-10_000)
    assert tax.ordinary_offset == 1_500 and tax.carry_short_out == 8_500


@pytest.mark.parametrize(
    ("short", "long", "carry"),
    [(-10_000, -5_000, (7_000, 5_000)), (-2_000, -5_000, (0, 4_000)), (-1_000, -1_000, (0, 0))],
)
def test_short_term_loss_used_first(short, long, carry):
    tax = tax_for_year(SINGLE, 2025, short, long)
    assert (tax.carry_short_out, tax.carry_long_out) == carry


def test_loss_beyond_ordinary_income_is_not_used():
    # Carryover worksheet lines 1-4: with 1,000 of taxable income only 1,000 of the 3,000 is used.
    profile = SINGLE.model_copy(update={"ordinary_income": 1_000})
    tax = tax_for_year(profile, 2025, short_gain=-10_000)
    assert tax.taxable_income == 0 and tax.total == 0
    assert tax.carry_short_out == 9_000


def test_short_carry_in_nets_against_long_gain():
    tax = tax_for_year(SINGLE, 2025, long_gain=20_000, carry_short=5_000)
    assert (tax.net_short, tax.net_long) == (-5_000, 20_000)
    assert tax.net_capital_gain == 15_000  # only the long-term part left after netting
    assert tax.federal_capital_gains == pytest.approx(0.15 * 15_000)


def test_carryforward_across_years():
    first = tax_for_year("single-60k", 2025, long_gain=-20_000)
    assert (first.carry_short_out, first.carry_long_out) == (0, 17_000)
    assert first.total == pytest.approx(SINGLE_48475 + 0.22 * (57_000 - 48_475))
    second = tax_for_year(
        "single-60k", 2026, 0, 10_000, first.carry_short_out, first.carry_long_out
    )
    assert second.net_long == -7_000 and second.ordinary_offset == 3_000
    assert second.carry_long_out == 4_000
    assert second.total == pytest.approx(1_240 + 0.12 * 38_000 + 0.22 * (57_000 - 50_400))
    third = tax_for_year("single-60k", 2027, 0, 10_000, 0, second.carry_long_out)  # 2026 tables
    assert third.net_capital_gain == 6_000 and third.carry_long_out == 0
    assert third.federal_capital_gains == pytest.approx(900)


def test_niit_around_threshold():
    assert tax_for_year(MFJ_240K, 2025, long_gain=5_000).niit == 0  # MAGI 245k < 250k
    assert tax_for_year(MFJ_240K, 2025, long_gain=20_000).niit == pytest.approx(0.038 * 10_000)
    assert tax_for_year(MFJ_240K, 2025, long_gain=20_000, carry_long=8_000).niit == pytest.approx(
        0.038 * 2_000
    )
    rich = MFJ_240K.model_copy(update={"ordinary_income": 900_000})
    assert tax_for_year(rich, 2025, short_gain=50_000).niit == pytest.approx(0.038 * 50_000)
    # a net loss gives no NIIT and does not reduce tax on other income below the ordinary figure
    assert tax_for_year(rich, 2025, 10_000, -15_000).niit == 0


def test_state_rate_on_net_gains():
    tax = tax_for_year("mfj-800k-ca", 2025, long_gain=-150_000)
    assert tax.state == 0  # a net loss owes none; its ordinary offset is federal only
    gain = tax_for_year("mfj-800k-ca", 2025, long_gain=50_000)
    assert gain.state == pytest.approx(0.133 * 150_000)  # long and short taxed alike
    expected = 202_154.5 + 0.37 * (900_000 - 751_600) + 0.20 * 50_000 + 0.038 * 150_000
    assert gain.total == pytest.approx(expected + 0.133 * 150_000)
    carried = tax_for_year("mfj-800k-ca", 2025, carry_short=40_000)
    assert carried.state == pytest.approx(0.133 * 60_000)  # net of the carryforward


def test_income_schedule_overrides_a_year():
    profile = PROFILES["mfj-250k"].model_copy(
        update={"schedule": {2026: IncomeOverride(ordinary_income=500_000)}}
    )
    assert profile.for_year(2025).ordinary_income == 250_000
    income = profile.for_year(2026)
    assert (income.ordinary_income, income.outside_short_gain) == (500_000, 20_000)
    assert marginal_rates(profile, 2026)[0] == pytest.approx(0.35 + 0.038)  # 520k > 512,450


def test_negative_carry_rejected():
    with pytest.raises(ValueError, match="positive"):
        tax_for_year(SINGLE, 2025, carry_short=-1)


# --------------------------------------------------------------------------- profiles, rates


def test_unknown_profile_lists_valid_names():
    with pytest.raises(ValueError, match="unknown tax profile 'mfj-1m'") as info:
        get_profile("mfj-1m")
    assert all(name in str(info.value) for name in PROFILES)
    assert get_profile(PROFILES["mfj-800k"]) is PROFILES["mfj-800k"]


# (short, long) rate on a realized gain: the figures of the client-preset table.
PRESET_RATES = {
    "single-60k": (0.22, 0.15),
    "mfj-250k": (0.278, 0.188),
    "mfj-800k": (0.408, 0.238),
    "mfj-800k-ca": (0.541, 0.371),
}


@pytest.mark.parametrize("name", list(PRESET_RATES))
def test_preset_marginal_rates(name):
    short, long = PRESET_RATES[name]
    gain_short, gain_long = marginal_gain_rates(name, 2025)
    assert gain_short == pytest.approx(short, abs=0.005)
    assert gain_long == pytest.approx(long, abs=0.005)
    loss_short, loss_long = marginal_rates(name, 2025)
    assert loss_short == pytest.approx(short, abs=0.005)
    # A long-term loss offsets the outside short-term gain (or, with none, 3,000 of ordinary
    # income), so it saves the short-term rate this year, not the long-term rate.
    assert loss_long == pytest.approx(loss_short, abs=1e-9)


def test_marginal_rates_with_loss_already_harvested():
    # Past the 3,000 offset a further loss only grows the carryforward: worth nothing this year.
    assert marginal_rates("single-60k", 2025, short_gain=-5_000) == (0.0, 0.0)
    # A long-term loss against an outside long-term gain saves the long-term rate.
    profile = PROFILES["mfj-800k"].model_copy(
        update={"outside_short_gain": 0, "outside_long_gain": 100_000}
    )
    assert marginal_rates(profile, 2025)[1] == pytest.approx(0.238)


# --------------------------------------------------------------------------- savings


def test_tracker_savings_sum_to_difference_of_tax_streams():
    realized = {2025: (-30_000, -150_000), 2026: (0, 40_000), 2027: (5_000, -10_000)}
    tracker = TaxSavingsTracker("mfj-800k-ca")
    savings = [tracker.settle(year, s, lt) for year, (s, lt) in realized.items()]
    base_carry, with_carry = (0.0, 0.0), (0.0, 0.0)
    base_total = with_total = 0.0
    for year, (s, lt) in realized.items():
        base = tax_for_year("mfj-800k-ca", year, 0, 0, *base_carry)
        with_ = tax_for_year("mfj-800k-ca", year, s, lt, *with_carry)
        base_carry = (base.carry_short_out, base.carry_long_out)
        with_carry = (with_.carry_short_out, with_.carry_long_out)
        base_total, with_total = base_total + base.total, with_total + with_.total
    assert sum(savings) == pytest.approx(base_total - with_total)
    assert tracker.total_saving == pytest.approx(sum(savings))
    assert tracker.carry_with == with_carry and tracker.carry_base == (0, 0)
    assert [h.year for h in tracker.history] == list(realized)
    # 2025: 180k of losses absorb the 100k outside gain and 3k of income; 77k carries, long-term
    assert tracker.history[0].carry_with == (0, 77_000)


def test_tracker_rejects_out_of_order_years():
    tracker = TaxSavingsTracker("single-60k")
    tracker.settle(2025, 0, 0)
    with pytest.raises(ValueError, match="increasing"):
        tracker.settle(2025, 0, 0)
    with pytest.raises(ValueError, match="expected 2026"):
        tracker.settle(2027, 0, 0)


# --------------------------------------------------------------------------- properties

money = st.floats(-400_000, 400_000, allow_nan=False)
carry = st.floats(0, 300_000, allow_nan=False)
profiles = st.builds(
    TaxProfile,
    name=st.just("prop"),
    filing=st.sampled_from(FILINGS),
    ordinary_income=st.floats(0, 1_500_000, allow_nan=False),
    outside_short_gain=money,
    outside_long_gain=money,
    state_rate=st.floats(0, 0.15),
    indexing=st.sampled_from(["fixed", "inflation"]),
)
years = st.integers(2020, 2032)


@settings(max_examples=300, deadline=None)
@given(profiles, years, money, money, carry, carry, st.floats(0, 200_000), st.booleans())
def test_tax_non_decreasing_in_gains(profile, year, short, long, cs, cl, extra, on_short):
    before = tax_for_year(profile, year, short, long, cs, cl).total
    bumped = (short + extra, long) if on_short else (short, long + extra)
    assert tax_for_year(profile, year, *bumped, cs, cl).total >= before - 1e-6


@settings(max_examples=200, deadline=None)
@given(profiles, years, money, money, carry, carry)
def test_carryforwards_non_negative_and_conserved(profile, year, short, long, cs, cl):
    tax = tax_for_year(profile, year, short, long, cs, cl)
    assert tax.carry_short_out >= 0 and tax.carry_long_out >= 0
    net = tax.net_short + tax.net_long
    used = min(tax.ordinary_offset, profile.for_year(year).ordinary_income)
    assert tax.carry_short_out + tax.carry_long_out == pytest.approx(
        max(0.0, -net) - used, abs=1e-6
    )
    assert min(tax.total, tax.niit, tax.state, tax.federal_capital_gains) >= 0


@settings(max_examples=100, deadline=None)
@given(profiles, st.integers(2020, 2030))
def test_no_realizations_no_savings(profile, start):
    tracker = TaxSavingsTracker(profile)
    for year in range(start, start + 3):
        assert tracker.settle(year, 0.0, 0.0) == 0.0
    assert tracker.carry_base == tracker.carry_with


# --------------------------------------------------------------------------- profile files


@pytest.mark.parametrize("name", list(PROFILES))
def test_profile_file_printed_from_a_preset_gives_the_preset(tmp_path, name):
    path = tmp_path / "client.yaml"
    path.write_text(profile_yaml(name, header=f"printed from {name}"))
    loaded = get_profile(str(path))
    assert loaded == PROFILES[name]  # every field, the name included (the file's name key)
    for year in (2025, 2031):
        for args in ((0, 0, 0, 0), (-40_000, 15_000, 2_000, 9_000)):
            assert tax_for_year(loaded, year, *args) == tax_for_year(name, year, *args)
        assert tax_saving(loaded, year, -25_000, -5_000) == tax_saving(name, year, -25_000, -5_000)


def test_profile_file_round_trips_every_field(tmp_path):
    profile = TaxProfile(
        name="client 7", filing="hoh", ordinary_income=123_456.78, outside_short_gain=-1_500,
        outside_long_gain=0.1, state_rate=0.0525, carryforward_short=12_000.5,
        carryforward_long=3e6, indexing="inflation", inflation=0.031,
        schedule={2026: IncomeOverride(ordinary_income=40_000), 2030: IncomeOverride(
            outside_short_gain=5_000, outside_long_gain=-2_000)})
    path = tmp_path / "c.yml"
    path.write_text(profile_yaml(profile))
    assert load_profile(path) == profile


def test_profile_file_takes_its_name_from_the_file_and_defaults(tmp_path):
    path = tmp_path / "smith-family.yaml"
    path.write_text("filing: mfj  # the rest defaults\nordinary_income: 250_000\n")
    profile = get_profile(path)
    assert profile.name == "smith-family" and profile.ordinary_income == 250_000
    assert profile.carryforward == (0, 0) and profile.state_rate == 0


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("filing: mfj\nstate_rate: 0.05\nordinary_income: -5000\n",
         "line 3, field 'ordinary_income': must be >= 0, got -5000"),
        ("filing: joint\nordinary_income: 1\n", "line 1, field 'filing': must be 'single'"),
        ("filing: mfj\nordinary_income: yes\n",
         "line 2, field 'ordinary_income': must be a number, got 'yes'"),
        ("filing: mfj\nordinary_income: 1\ncarryforward_long: -3\n",
         "line 3, field 'carryforward_long': must be >= 0"),
        ("filing: mfj\nordinary_income: 1\nstate_rate: 13.3\n",
         "line 3, field 'state_rate': must be <= 1"),
        ("filing: mfj\nordinary_income: 1\nschedule:\n  2026:\n    ordinary_incme: 9\n",
         "line 5, field 'schedule.2026.ordinary_incme': unknown field; valid fields: "
         "ordinary_income"),
        ("filing: mfj\nordinary_income: 1\nschedule:\n  next: {}\n",
         "line 4, field 'schedule.next': must be a year"),
        ("filing: mfj\nordinary_income: 1\noutside_long_gain: .nan\n",
         "line 3, field 'outside_long_gain': must be a finite number"),
        ("ordinary_income: 1\n", "field 'filing': required"),
        ("filing: mfj\n  ordinary_income: 1: 2\n", "line 2: not valid YAML"),
        ("- mfj\n", "expected a mapping of profile fields"),
    ],
)
def test_bad_profile_file_names_file_line_and_field(tmp_path, text, where):
    path = tmp_path / "client.yaml"
    path.write_text(text)
    with pytest.raises(TaxTableError) as info:
        get_profile(str(path))
    assert str(info.value).startswith(f"{path}")
    assert where in str(info.value)
    assert isinstance(info.value, errors.InputError)


def test_missing_profile_file_is_an_input_error(tmp_path):
    with pytest.raises(TaxTableError, match="profile file not found"):
        get_profile(str(tmp_path / "nobody.yaml"))


def test_starting_carryforward_changes_the_first_years_saving():
    # mfj-250k (20,000 outside short-term gain, 24 % band, NIIT on gains above 250,000 of
    # taxable income), the portfolio realizes a 10,000 short-term loss in 2025.
    # Without a carryforward: the loss cuts the taxable gain 20,000 -> 10,000:
    # 10,000 x 24 % + NIIT 3.8 % x 10,000 = 2,780.
    fresh = TaxSavingsTracker("mfj-250k")
    assert fresh.settle(2025, -10_000, 0) == pytest.approx(2_780)
    # With 15,000 carried in: the baseline's gain is 5,000 (taxable 255,000, NIIT on 5,000);
    # with the loss the net is -5,000: 3,000 offsets income (taxable 247,000), 2,000 carries.
    # Saving = 24 % x (255,000 - 247,000) + 3.8 % x 5,000 = 1,920 + 190 = 2,110.
    client = PROFILES["mfj-250k"].model_copy(update={"carryforward_short": 15_000})
    tracker = TaxSavingsTracker(client)
    assert tracker.carry_base == tracker.carry_with == (15_000, 0)
    assert tracker.settle(2025, -10_000, 0) == pytest.approx(2_110)
    assert tracker.carry_base == (0, 0) and tracker.carry_with == (2_000, 0)
    # the same figure from the one-year function with the profile's carryforward on both sides
    assert tax_saving(client, 2025, -10_000, 0, client.carryforward,
                      client.carryforward).saving == pytest.approx(2_110)
    assert "carryforwards short/long 15,000/0" in client.describe()
