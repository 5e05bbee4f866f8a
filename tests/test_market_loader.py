"""Real-data loader on small crafted files: aliases, validation errors, listings, splits, gaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SP500_DIR

from taxharvest.market import DataError, corporate_action_summary, load_prices

REAL = SP500_DIR
DAYS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"]


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def prices_rows() -> list[str]:
    """AAA every day (2-for-1 split on day 3); BBB lists on day 2; CCC stops after day 3."""
    rows = []
    for i, day in enumerate(DAYS):
        rows.append(f"{day},AAA,{(100 + i) / (2 if i >= 3 else 1)},{'2.0' if i == 3 else ''}")
        if i >= 2:
            rows.append(f"{day},BBB,{50 + i},")
        if i <= 2:
            rows.append(f"{day},CCC,{20 - i},")
    return rows


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    prices = write(tmp_path / "prices.csv", "date,ticker,close,split", prices_rows())
    sectors = write(tmp_path / "sectors.csv", "ticker,name,sector",
                    ["AAA,Alpha Inc,Information Technology", "BBB,Beta Co,Health Care",
                     "CCC,Gamma plc,Energy", "ZZZ,Unused,Utilities"])
    return prices, sectors


def test_loads_listings_stops_and_splits(files):
    market = load_prices(*files)
    assert market.tickers == ("AAA", "BBB", "CCC") and market.n_days == 5
    assert market.sector_names[market.sectors[0]] == "Information Technology"
    assert np.isnan(market.prices[:2, 1]).all() and market.first_trading_index[1] == 2
    assert np.isnan(market.prices[3:, 2]).all()
    np.testing.assert_array_equal(market.last_trading_index, [4, 4, 2])
    assert market.prices[3, 0] == 51.5 and market.splits[3, 0] == 2.0
    assert market.total_returns[3, 0] == pytest.approx(103 / 102 - 1)  # no fake -50%
    assert market.total_returns[2, 1] == 0.0  # first trading day
    np.testing.assert_allclose(market.benchmark_weights, [0.5, 0, 0.5])
    assert np.all(market.regime == -1) and "prices.csv" in market.source
    assert market.proxy_names[market.sectors[0]] == "Information Technology basket"


def test_adjusted_close_and_dividends_give_total_returns(tmp_path, files):
    prices = write(tmp_path / "adj.csv", "Date,Symbol,Close,Adj Close,Dividends",
                   ["2024-01-02,AAA,10,9,", "2024-01-03,AAA,10,9.9,0.5"])
    sectors = write(tmp_path / "s.csv", "Symbol,GICS Sector", ["AAA,Technology"])
    market = load_prices(prices, sectors)
    assert market.total_returns[1, 0] == pytest.approx(0.1)
    assert market.dividends[1, 0] == 0.5 and market.prices[1, 0] == 10
    no_adj = write(tmp_path / "noadj.csv", "date,ticker,close,dividend",
                   ["2024-01-02,AAA,10,", "2024-01-03,AAA,10,0.5"])
    assert load_prices(no_adj, sectors).total_returns[1, 0] == pytest.approx(0.05)


def test_kaggle_style_name_column_and_sector_variants(tmp_path):
    prices = write(tmp_path / "all_stocks.csv", "date,open,high,low,close,volume,Name",
                   ["2013-02-08,1,1,1,15.07,100,AAL", "2013-02-08,1,1,1,45.1,100,AAPL"])
    sectors = write(tmp_path / "s.csv", "symbol,sector",
                    ["AAL,industrials", "AAPL,Information-Technology"])
    market = load_prices(prices, sectors)
    assert market.tickers == ("AAL", "AAPL")
    assert [market.sector_names[s] for s in market.sectors] == ["Industrials",
                                                                 "Information Technology"]


def test_unsorted_input_is_sorted(tmp_path, files):
    rows = prices_rows()
    shuffled = write(tmp_path / "shuffled.csv", "date,ticker,close,split",
                     [rows[i] for i in np.random.default_rng(0).permutation(len(rows))])
    np.testing.assert_array_equal(load_prices(shuffled, files[1]).prices,
                                  load_prices(*files).prices)


@pytest.mark.parametrize(("row", "replacement", "field", "message"), [
    (3, "2024-13-45,AAA,101,", "date", "unparseable date"),
    (4, "2024-01-03,BBB,,", "close", "positive"),
    (5, "2024-01-03,CCC,-3,", "close", "positive"),
    (5, "2024-01-03,CCC,abc,", "close", "positive"),
    (5, "2024-01-03,CCC,19,0", "split", "positive"),
    (5, "2024-01-03,AAA,19,", "date", "duplicate row"),
])
def test_row_errors_name_file_line_and_field(tmp_path, files, row, replacement, field, message):
    rows = prices_rows()
    rows[row - 2] = replacement  # header is line 1, so data row i sits on line i + 2
    path = write(tmp_path / "bad.csv", "date,ticker,close,split", rows)
    with pytest.raises(DataError, match=message) as caught:
        load_prices(path, files[1])
    error = caught.value
    assert (error.row, error.field, error.path) == (row, field, str(path))
    assert str(error).startswith(f"{path}, line {row}, field '{field}': ")
    assert "\n" not in str(error)


def test_blank_lines_keep_line_numbers(tmp_path, files):
    rows = prices_rows()
    rows.insert(1, "")
    rows[4] = "2024-01-03,CCC,oops,"
    with pytest.raises(DataError) as caught:
        load_prices(write(tmp_path / "blank.csv", "date,ticker,close,split", rows), files[1])
    assert caught.value.row == 6


def test_missing_column_and_missing_file(tmp_path, files):
    path = write(tmp_path / "nocol.csv", "date,ticker,price_usd", ["2024-01-02,AAA,1"])
    with pytest.raises(DataError, match="missing required column") as caught:
        load_prices(path, files[1])
    assert caught.value.field == "close" and caught.value.row is None
    with pytest.raises(DataError, match="file not found"):
        load_prices(tmp_path / "nope.csv", files[1])


def test_sector_errors(tmp_path, files):
    few = write(tmp_path / "few.csv", "ticker,sector", ["AAA,Energy"])
    with pytest.raises(DataError, match="2 ticker.*no sector: BBB, CCC") as caught:
        load_prices(files[0], few)
    assert caught.value.path == str(few) and caught.value.field == "ticker"
    odd = write(tmp_path / "odd.csv", "ticker,sector", ["AAA,Energy", "BBB,Crypto", "CCC,Energy"])
    with pytest.raises(DataError, match="unknown sector") as caught:
        load_prices(files[0], odd)
    assert (caught.value.row, caught.value.field) == (3, "sector")


def test_gaps_are_filled_up_to_the_limit(tmp_path, files):
    rows = [r for r in prices_rows() if not r.startswith("2024-01-04,AAA")]
    path = write(tmp_path / "gap.csv", "date,ticker,close,split", rows)
    market = load_prices(path, files[1])
    assert market.prices[2, 0] == market.prices[1, 0] and market.total_returns[2, 0] == 0.0
    assert market.total_returns[3, 0] == pytest.approx(103 / 101 - 1)
    with pytest.raises(DataError, match="no price for 1 trading days"):
        load_prices(path, files[1], max_gap_days=0)


def test_parquet_round_trip_and_row_numbers(tmp_path, files):
    frame = pd.read_csv(files[0])
    frame.to_parquet(tmp_path / "prices.parquet")
    from_csv, from_parquet = load_prices(*files), load_prices(tmp_path / "prices.parquet", files[1])
    for name in ("prices", "total_returns", "splits", "proxy_prices"):
        np.testing.assert_array_equal(getattr(from_csv, name), getattr(from_parquet, name))
    frame.loc[3, "close"] = -1.0
    frame.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad.parquet, row 4, field 'close'"):
        load_prices(tmp_path / "bad.parquet", files[1])


def test_benchmark_weights_file(tmp_path, files):
    weights = write(tmp_path / "w.csv", "Ticker,Weight", ["AAA,3", "CCC,1", "BBB,5", "QQQ,1"])
    with (pytest.warns(UserWarning, match="not in the price file: QQQ"),
          pytest.warns(UserWarning, match="not trading on day 0: BBB")):
        market = load_prices(*files, benchmark=weights)
    np.testing.assert_allclose(market.benchmark_weights, [0.75, 0, 0.25])


def test_user_proxies_replace_their_sector_basket(tmp_path, files):
    proxies = write(tmp_path / "etf.csv", "date,ticker,close,sector",
                    [f"{day},XLK,{200 + i}.0,Information Technology" for i, day in enumerate(DAYS)])
    market = load_prices(*files, proxies_path=proxies)
    tech = market.sectors[0]
    assert market.proxy_names[tech] == "XLK"
    np.testing.assert_allclose(market.proxy_prices[:, tech], [200, 201, 202, 203, 204])
    assert market.proxy_names[market.sectors[1]] == "Health Care basket"


@pytest.mark.skipif(not (REAL / "sp500_daily_dev_2010_2019.parquet").is_file(),
                    reason="real S&P 500 development set not present")
def test_real_development_set():
    market = load_prices(REAL / "sp500_daily_dev_2010_2019.parquet", REAL / "sectors.csv")
    assert market.n_assets == 501 and market.n_days == 2516
    assert market.dates[0] == np.datetime64("2010-01-04")
    assert market.dates[-1] == np.datetime64("2019-12-31")
    assert (market.first_trading_index > 0).sum() == 61 and np.isfinite(market.prices[-1]).all()
    trading = np.isfinite(market.prices[1:]) & np.isfinite(market.prices[:-1])
    paid = market.splits[1:] * (market.prices[1:] + market.dividends[1:]
                                + market.distributions[1:])
    np.testing.assert_allclose(((1 + market.total_returns[1:]) * market.prices[:-1])[trading],
                               paid[trading], rtol=1e-12)
    found = {(a.ticker, a.date): (a.kind, round(a.size, 4)) for a in market.corporate_actions}
    assert corporate_action_summary(market) == {"distribution-recorded-as-dividend": 52,
                                                "split": 1}
    assert found[("TMUS", "2013-05-01")] == ("distribution-recorded-as-dividend", 8.1)
    assert any(a[:4] == ("TMUS", "2013-05-01", "split", 0.5) for a in market.corporate_actions)
    assert found[("HLT", "2017-01-04")] == ("distribution-recorded-as-dividend", 24.48)
    assert found[("LDOS", "2013-09-30")] == ("distribution-recorded-as-dividend", 21.3549)
    # HBI's 4-for-1 split with its 3.0 dividend per new share reconciles exactly (9.4%)
    assert ("HBI", "2015-03-04") not in found
    hbi = market.tickers.index("HBI"), market.date_index("2015-03-04")
    assert market.dividends[hbi[1], hbi[0]] == 3.0 and market.splits[hbi[1], hbi[0]] == 4.0
