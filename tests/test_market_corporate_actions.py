"""Raw and adjusted prices reconciled: inferred splits and distributions, large recorded
dividends, strict mode, and the payout invariant on hand-built and random files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from taxharvest.errors import DataError, InputError
from taxharvest.market import (
    CorporateAction,
    MarketData,
    corporate_action_records,
    corporate_action_summary,
    load_prices,
)
from taxharvest.market.loader import RECONCILE_TOLERANCE, SPLIT_RATIOS
from taxharvest.market.universe import DISTRIBUTION, RECORDED_DIVIDEND, SPLIT

DAYS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
HEADER = "date,ticker,close,adj_close,dividend,split"


def assert_payouts_explain_returns(market: MarketData) -> None:
    """``(1 + r_t) P_{t-1} = s_t (P_t + dividend_t + distribution_t)`` on every trading day."""
    trading = np.isfinite(market.prices[1:]) & np.isfinite(market.prices[:-1])
    held = (1 + market.total_returns[1:]) * market.prices[:-1]
    paid = market.splits[1:] * (market.prices[1:] + market.dividends[1:]
                                + market.distributions[1:])
    np.testing.assert_allclose(held[trading], paid[trading], rtol=1e-12)
    assert np.all(market.distributions >= 0) and np.all(market.dividends >= 0)


def load(tmp_path: Path, rows: list[str], **options) -> MarketData:
    prices = tmp_path / "prices.csv"
    prices.write_text("\n".join([HEADER, *rows]) + "\n")
    tickers = sorted({row.split(",")[1] for row in rows})
    sectors = tmp_path / "sectors.csv"
    sectors.write_text("\n".join(["ticker,sector", *(f"{t},Energy" for t in tickers)]) + "\n")
    return load_prices(prices, sectors, **options)


def one_ticker(closes, adjusted, dividends=(), splits=()) -> list[str]:
    """Rows of ticker AAA; ``dividends``/``splits`` map a day index to the recorded value."""
    return [f"{day},AAA,{close},{adj},{dict(dividends).get(t, '')},{dict(splits).get(t, '')}"
            for t, (day, close, adj) in enumerate(zip(DAYS, closes, adjusted, strict=False))]


def test_a_dividend_payer_beside_a_non_payer(tmp_path):
    closes = [50, 50.5, 49.5, 50]
    adjusted = 48 * np.cumprod([1.0, (50.5 + 1.0) / 50, 49.5 / 50.5, 50 / 49.5])
    payer = one_ticker(closes, adjusted, dividends={1: 1.0})
    flat = [f"{day},BBB,20,20,," for day in DAYS]  # repeated prices, no payout
    market = load(tmp_path, payer + flat)
    assert market.corporate_actions == () and not market.distributions.any()
    assert market.dividends[1, 0] == 1.0 and not market.dividends[:, 1].any()
    assert market.total_returns[1, 0] == pytest.approx((50.5 + 1.0) / 50 - 1)
    np.testing.assert_array_equal(market.total_returns[:, 1], 0.0)
    assert_payouts_explain_returns(market)


def test_a_spin_off_day_is_a_value_preserving_distribution(tmp_path):
    market = load(tmp_path, one_ticker([40, 28, 28.5], [40, 40.4, 40.4 * 28.5 / 28]))
    (action,) = market.corporate_actions
    assert (action.ticker, action.date, action.kind) == ("AAA", DAYS[1], DISTRIBUTION)
    assert action.size == pytest.approx(40.4 - 28) and "31.0% of the previous close" in action.detail
    assert market.distributions[1, 0] == pytest.approx(12.4) and market.splits[1, 0] == 1
    assert market.total_returns[1, 0] == pytest.approx(0.01)  # no phantom -30%
    assert market.total_returns[2, 0] == pytest.approx(28.5 / 28 - 1)
    assert_payouts_explain_returns(market)


def test_a_missing_two_for_one_split_is_inferred(tmp_path):
    market = load(tmp_path, one_ticker([100, 51, 52], [100, 102, 104]))
    (action,) = market.corporate_actions
    assert (action.kind, action.size) == (SPLIT, 2.0) and "2-for-1 split" in action.detail
    np.testing.assert_array_equal(market.splits[:, 0], [1, 2, 1])
    assert not market.distributions.any()
    np.testing.assert_allclose(market.total_returns[1:, 0], [0.02, 52 / 51 - 1])
    assert_payouts_explain_returns(market)


def test_a_reverse_split_with_a_spin_off_takes_the_mildest_reverse_split(tmp_path):
    # the price doubles while the adjusted close gains 0.5%: a 1-for-3 reverse split (the
    # mildest below the unexplained ratio 0.47) and a distribution of the rest
    market = load(tmp_path, one_ticker([27, 58, 58], [100, 100.5, 100.5]))
    split, distribution = market.corporate_actions
    assert (split.kind, split.size) == (SPLIT, pytest.approx(1 / 3))
    assert "1-for-3 split" in split.detail
    assert distribution.kind == DISTRIBUTION
    assert distribution.size == pytest.approx(27 * 1.005 * 3 - 58)
    assert market.total_returns[1, 0] == pytest.approx(0.005)
    assert_payouts_explain_returns(market)


def test_a_recorded_split_with_a_recorded_spin_off_reconciles(tmp_path):
    # HLT 2017-01-04: 1-for-3 recorded, the spin-offs recorded as a dividend per new share
    adjusted = 56.339255 * (58 + 24.48) / (3 * 27.39)
    market = load(tmp_path, one_ticker([27.39, 58], [56.339255, adjusted],
                                       dividends={1: 24.48}, splits={1: 1 / 3}))
    (action,) = market.corporate_actions
    assert (action.kind, action.size) == (RECORDED_DIVIDEND, 24.48)
    assert "29.8% of the previous close" in action.detail
    assert market.dividends[1, 0] == 0 and market.distributions[1, 0] == 24.48
    assert_payouts_explain_returns(market)


def test_large_recorded_dividends_become_distributions_regular_ones_stay(tmp_path):
    closes, dividends = [60, 44, 43, 43], {1: 18.0, 3: 0.9}  # a 30% spin-off, then 2%
    adjusted = np.cumprod([1.0, (44 + 18) / 60, 43 / 44, (43 + 0.9) / 43])
    market = load(tmp_path, one_ticker(closes, adjusted, dividends=dividends))
    assert corporate_action_summary(market) == {RECORDED_DIVIDEND: 1}
    np.testing.assert_array_equal(market.distributions[:, 0], [0, 18, 0, 0])
    np.testing.assert_array_equal(market.dividends[:, 0], [0, 0, 0, 0.9])
    assert market.total_returns[1, 0] == pytest.approx(62 / 60 - 1)
    assert_payouts_explain_returns(market)
    kept = load(tmp_path, one_ticker(closes, adjusted, dividends=dividends),
                distribution_threshold=0.5)
    assert kept.corporate_actions == () and kept.dividends[1, 0] == 18.0


def test_strict_mode_names_the_file_ticker_date_and_row(tmp_path):
    rows = one_ticker([100, 51, 52], [100, 102, 104])
    with pytest.raises(DataError, match=r"AAA on 2024-01-03: .*unrecorded 2-for-1 split") as caught:
        load(tmp_path, rows, strict_data=True)
    error = caught.value
    assert isinstance(error, InputError) and error.path.endswith("prices.csv")
    assert (error.row, error.field) == (3, "adj_close") and "strict" in str(error)
    spin_off = one_ticker([60, 44], [1, 62 / 60], dividends={1: 18.0})
    assert len(load(tmp_path, spin_off, strict_data=True).corporate_actions) == 1  # recorded


def test_actions_follow_slices_and_are_checked(tmp_path):
    market = load(tmp_path, one_ticker([100, 51, 52, 26], [100, 102, 104, 104]))
    assert [a.date for a in market.corporate_actions] == [DAYS[1], DAYS[3]]
    later = market.slice(DAYS[2], DAYS[3])
    assert [a.date for a in later.corporate_actions] == [DAYS[3]] and later.splits[1, 0] == 2
    assert "(2024-01-04..2024-01-05)" in later.source
    records = corporate_action_records(market)
    assert records[0] | {"detail": ""} == {"ticker": "AAA", "date": DAYS[1], "kind": SPLIT,
                                           "size": 2.0, "detail": ""}
    given_action = CorporateAction("AAA", np.datetime64(DAYS[1]), DISTRIBUTION, 1, "by hand")
    assert replace(market, corporate_actions=(given_action,)).distributions[1, 0] == 1.0
    for bad in (given_action._replace(ticker="ZZZ"), given_action._replace(date="2024-01-06"),
                given_action._replace(size=0.0)):
        with pytest.raises(ValueError, match="corporate action"):
            replace(market, corporate_actions=(bad,))


def test_a_jump_no_split_explains_is_an_error(tmp_path):
    with pytest.raises(DataError, match="more than any split explains"):
        load(tmp_path, one_ticker([1, 500], [1, 1]))


@pytest.mark.parametrize(("content", "message"), [
    (HEADER + "\n", "no data rows"),
    (HEADER + "\n\n\n", "no data rows"),
    ("", "the file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", "binary content, not CSV text"),
])
def test_header_only_empty_and_binary_files(tmp_path, content, message):
    path = tmp_path / "prices.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    (tmp_path / "s.csv").write_text("ticker,sector\nAAA,Energy\n")
    with pytest.raises(DataError, match=message) as caught:
        load_prices(path, tmp_path / "s.csv")
    assert caught.value.path == str(path) and "\n" not in str(caught.value)


def test_messages_show_values_plainly_without_brackets(tmp_path):
    frame = pd.DataFrame({"date": DAYS[:2], "ticker": "AAA", "close": [10.0, np.nan]})
    frame.to_parquet(tmp_path / "p.parquet")
    (tmp_path / "s.csv").write_text("ticker,sector\nAAA,Energy\n")
    with pytest.raises(DataError, match="positive number, got an empty value$") as caught:
        load_prices(tmp_path / "p.parquet", tmp_path / "s.csv")
    assert (caught.value.row, caught.value.field) == (2, "close")
    (tmp_path / "b.csv").write_text(f"date,ticker,close\n{DAYS[0]},AAA,[1]\n")
    with pytest.raises(DataError, match=r"got '\(1\)'") as caught:
        load_prices(tmp_path / "b.csv", tmp_path / "s.csv")
    (tmp_path / "i.csv").write_text(f"date,ticker,close\n{DAYS[0]},AAA,inf\n")
    with pytest.raises(DataError, match="positive number"):
        load_prices(tmp_path / "i.csv", tmp_path / "s.csv")


def test_a_long_gap_message_helps_library_and_cli_users(tmp_path):
    rows = [row for row in one_ticker([10, 11, 12, 13], [10, 11, 12, 13]) if DAYS[1] not in row]
    rows += [f"{day},BBB,5,5,," for day in DAYS]
    with pytest.raises(DataError, match="AAA has no price for 1 trading days") as caught:
        load(tmp_path, rows, max_gap_days=0)
    assert "longer than 0 trading days" in str(caught.value)
    assert "pass a larger" not in str(caught.value)


PRICES = st.one_of(st.sampled_from([10.0, 10.5, 20.0, 20.0, 33.33]),
                   st.floats(0.5, 500, allow_nan=False))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(days=st.lists(st.tuples(PRICES, st.floats(0.2, 5.0), st.sampled_from([0.0, 0.0, 0.3, 9.0]),
                               st.sampled_from([1.0, 1.0, 1.0, 2.0, 0.5])), min_size=2, max_size=12))
def test_any_file_reconciles_to_payouts_that_explain_returns(tmp_path, days):
    """Arbitrary closes, adjusted returns, dividends and splits: either the invariant holds with
    non-negative payouts, or the day cannot be explained by any split."""
    frame = pd.DataFrame(days, columns=["close", "gross", "dividend", "split"])
    frame["adj_close"] = frame.close.iloc[0] * frame.gross.cumprod()
    frame["date"] = pd.bdate_range("2024-01-02", periods=len(frame))
    frame["ticker"] = "AAA"
    frame.drop(columns="gross").to_parquet(tmp_path / "p.parquet")
    (tmp_path / "s.csv").write_text("ticker,sector\nAAA,Energy\n")
    try:
        market = load_prices(tmp_path / "p.parquet", tmp_path / "s.csv")
    except DataError as error:
        assert "more than any split explains" in str(error)
        return
    assert_payouts_explain_returns(market)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(days=st.lists(st.tuples(
    st.sampled_from([0.0, 0.0, 0.0, -0.3, 0.05]),  # price return: flat days repeat prices
    st.sampled_from([0.0, 0.0, 0.02]),  # ordinary dividend, fraction of the value
    st.sampled_from([0.0, 0.0, 0.2, 0.6]),  # distribution, fraction of the value
    st.sampled_from([1, 1, 2, 3, 1 / 2, 10]),  # split
    st.sampled_from(["all", "no split", "no distribution", "nothing"])),  # what the file records
    min_size=1, max_size=10))
def test_true_actions_are_recovered_up_to_the_tolerance(tmp_path, days):
    """Prices built from known actions, some missing from the file: returns match the adjusted
    close, and an omitted split is found exactly where the distribution is not omitted too."""
    close, adjusted, rows, true_splits = 40.0, 40.0, [(40.0, 40.0, 0.0, 1.0)], [1.0]
    for move, dividend_share, distribution_share, split, record in days:
        value = close * (1 + move) / split  # per new share, before the day's payouts
        dividend, distribution = value * dividend_share, value * distribution_share
        new_close = round(value - dividend - distribution, 6)
        assume(new_close >= 0.01)  # distributions and splits can compound a price to nothing
        adjusted *= split * (new_close + dividend + distribution) / close
        distribution_recorded = record in ("all", "no split") or not distribution
        rows.append((new_close, adjusted,
                     dividend + (distribution if record in ("all", "no split") else 0.0),
                     split if record in ("all", "no distribution") else 1.0))
        true_splits.append(split if distribution_recorded else np.nan)
        close = new_close
    frame = pd.DataFrame(rows, columns=["close", "adj_close", "dividend", "split"])
    frame["date"] = pd.bdate_range("2024-01-02", periods=len(frame))
    frame["ticker"] = "AAA"
    frame.to_parquet(tmp_path / "p.parquet")
    (tmp_path / "s.csv").write_text("ticker,sector\nAAA,Energy\n")
    market = load_prices(tmp_path / "p.parquet", tmp_path / "s.csv")
    assert_payouts_explain_returns(market)
    gross = frame.adj_close.to_numpy()[1:] / frame.adj_close.to_numpy()[:-1]
    np.testing.assert_allclose(1 + market.total_returns[1:, 0], gross, rtol=RECONCILE_TOLERANCE)
    known = np.isfinite(true_splits)
    np.testing.assert_allclose(market.splits[known, 0], np.asarray(true_splits)[known])
    assert all(a.size in map(float, SPLIT_RATIOS) for a in market.corporate_actions
               if a.kind == SPLIT)
